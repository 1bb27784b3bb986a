// The server's connection handling, in front of cpp-httplib's request processing.
//
// httplib on its own gives each connection a thread from a fixed pool while it reads the request,
// with a read timeout that each trickled byte renews: 40 slowloris connections took the whole
// service down. Here instead:
// - One event-loop thread (epoll) owns every connection while it is idle or still sending its
//   request. It reads the request line, headers and body without a thread per connection, under a
//   deadline for the whole header and one for the whole body (a trickled byte renews nothing).
// - Only a complete request reaches the pool of HTTP threads, which runs httplib's own parsing,
//   routing and response writing on it (Server::process_request over the buffered bytes).
// - Connections are capped in total and per client address. Between requests a keep-alive
//   connection goes back to the event loop, idle for at most keep_alive_timeout_s and serving at
//   most keep_alive_max requests.
// The event loop answers its own refusals (503 over a cap, 408 past a deadline, 413, 431, 411,
// 400) with Connection: close, and reports each to `on_event` for /metrics.
//
//   HttpCore http(limits, threads, on_event);   // then httplib's usual bind / listen_after_bind
//   http.begin_drain();                         // on SIGTERM: close idle connections, keep the rest
//   http.stop();  ...  http.wait_drained();     // after listen_after_bind returns
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace dermal::serve {

struct ConnectionLimits {
  int max_connections = 512;            // open at once, all clients (503 above)
  int max_connections_per_client = 32;  // open at once from one address (503 above)
  int listen_backlog = 511;             // connections the kernel holds before they are accepted
  double header_timeout_s = 10;         // from a request's first byte to the end of its headers (408)
  double body_timeout_s = 60;           // from the end of the headers to the end of the body (408)
  double keep_alive_timeout_s = 5;      // idle between requests before the connection is closed
  int keep_alive_max = 100;             // requests on one connection
  size_t max_header_bytes = 16 << 10;   // request line and headers (431 above)
  size_t max_body_bytes = 25u << 20;    // Content-Length (413 above)
  size_t max_buffered_bytes = 64u << 20;  // requests being received, all connections: reading pauses above
  double write_timeout_s = 10;          // sending a response
  std::string too_large_message = "the request body is over the upload limit";  // the 413's message
};

enum class ConnectionEvent {
  accepted,
  closed,            // any connection closed, whatever the reason (for the open count)
  refused_total,     // over max_connections
  refused_client,    // over max_connections_per_client
  timed_out_header,  // header deadline passed
  timed_out_body,    // body deadline passed
  closed_idle,       // keep-alive idle time over (normal)
  bad_request,       // unframeable: malformed, too large, chunked
};
const char* connection_event_name(ConnectionEvent e);

// A request's head (request line and headers, up to and including the blank line) as the event
// loop frames it: the length of the body to wait for, and whether the client waits for
// "100 Continue" first. Untrusted bytes: fuzzed by fuzz/http_request.cpp.
struct RequestHead {
  int refusal = 0;       // 0, or the status to refuse the request with (400, 411)
  std::string message;   // the refusal's message
  size_t body_bytes = 0;  // Content-Length (0 without one)
  size_t expect_at = std::string::npos, expect_len = 0;  // the "Expect: 100-continue" line
};
RequestHead parse_request_head(std::string_view head);

// The read side of a stream over one complete request already received (what the event loop
// hands to httplib's process_request); the write side is the subclass's.
class ReceivedRequestStream : public httplib::Stream {
 public:
  explicit ReceivedRequestStream(const std::string& request) : request_(request) {}
  bool is_readable() const override { return pos_ < request_.size(); }
  ssize_t read(char* ptr, size_t size) override;

 private:
  const std::string& request_;
  size_t pos_ = 0;
};

class HttpCore : public httplib::Server {
 public:
  HttpCore(const ConnectionLimits& limits, int threads, std::function<void(ConnectionEvent)> on_event);
  ~HttpCore() override;

  // Idle connections are closed now; those sending a request finish it (within their deadlines)
  // and are closed after their answer. New connections are refused once stop() closes the listener.
  void begin_drain();
  // Binds HOST:PORT (port 0: any free port) and listens with limits().listen_backlog; returns the
  // port, or -1 when it cannot bind.
  int bind_and_listen(const std::string& host, int port);
  // After listen_after_bind has returned: waits until no connection is left, then stops the loop.
  void wait_drained();
  int open_connections() const;
  const ConnectionLimits& limits() const { return limits_; }

 private:
  struct Connection;
  using Clock = std::chrono::steady_clock;

  bool process_and_close_socket(socket_t sock) override;  // httplib's accept loop hands us each socket
  void event_loop();
  void on_readable(Connection& c);
  bool advance(Connection& c);   // frames the request received so far; false once handed over or closed
  void dispatch(Connection& c);  // a complete request: to the pool
  void serve(Connection* c, std::string request);
  void rearm(Connection& c);
  void refuse(Connection& c, int status, const std::string& message, ConnectionEvent e);
  void close_connection(int fd);  // with mutex_ held
  void worker();

  ConnectionLimits limits_;
  std::function<void(ConnectionEvent)> on_event_;
  int epoll_fd_ = -1, wake_fd_ = -1;
  std::atomic<bool> draining_{false}, stopping_{false};
  mutable std::mutex mutex_;
  std::condition_variable drained_;
  std::map<int, std::unique_ptr<Connection>> connections_;  // by fd
  std::map<std::string, int> per_client_;
  size_t buffered_ = 0;  // bytes held in connections' buffers
  std::thread loop_;
  // The HTTP threads and the complete requests waiting for them.
  std::mutex jobs_mutex_;
  std::condition_variable jobs_cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> workers_;
};

}  // namespace dermal::serve
