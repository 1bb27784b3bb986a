#include "serve/http_core.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <tuple>
#include <nlohmann/json.hpp>
#include <sstream>

namespace dermal::serve {

namespace {

// httplib's accept loop hands each socket to its task queue; ours runs the hand-over at once on
// the accept thread (it only registers the socket with the event loop).
class InlineQueue : public httplib::TaskQueue {
 public:
  void enqueue(std::function<void()> fn) override { fn(); }
  void shutdown() override {}
};

// The address and port of one end of a socket (getpeername or getsockname), as text.
std::pair<std::string, int> socket_address(int fd, int (*get)(int, sockaddr*, socklen_t*)) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (get(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return {"unknown", 0};
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    return {text, ntohs(a->sin_port)};
  }
  if (addr.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
    return {text, ntohs(a->sin6_port)};
  }
  return {"unknown", 0};
}

// One complete request, already received, for httplib's process_request: reads come from the
// buffer, writes go to the socket within the write timeout.
class RequestStream : public ReceivedRequestStream {
 public:
  RequestStream(int fd, const std::string& request, const std::string& ip, int port, double write_timeout_s)
      : ReceivedRequestStream(request), fd_(fd), ip_(ip), port_(port), write_timeout_s_(write_timeout_s) {}

  bool is_writable() const override { return true; }
  ssize_t write(const char* ptr, size_t size) override {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(write_timeout_s_);
    size_t sent = 0;
    while (sent < size) {
      const ssize_t n = ::send(fd_, ptr + sent, size - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        if (left.count() <= 0) return -1;  // a client that does not read its answer
        pollfd p{fd_, POLLOUT, 0};
        ::poll(&p, 1, static_cast<int>(left.count()));
      } else {
        return -1;
      }
    }
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = ip_;
    port = port_;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    std::tie(ip, port) = socket_address(fd_, getsockname);
    if (ip == "unknown") ip.clear();
  }
  socket_t socket() const override { return fd_; }

 private:
  int fd_;
  std::string ip_;
  int port_;
  double write_timeout_s_;
};

const char* reason_phrase(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

// The answer to a request the event loop refuses (Connection: close), sent without blocking: it
// is small enough for any socket buffer.
void send_refusal(int fd, int status, const std::string& message) {
  const std::string body = nlohmann::json{{"error", message}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) +
                    "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n" +
                    (status == 503 ? "Retry-After: 5\r\n" : "") + "\r\n" + body;
  (void)::send(fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

// Before closing a refused connection: the write side closed and what the client already sent
// read away, so that the close does not reset the answer out of the client's hands.
void linger_close(int fd) {
  ::shutdown(fd, SHUT_WR);
  char sink[4096];
  for (int i = 0; i < 64 && ::recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; ++i) {
  }
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string seconds_text(double s) {
  std::ostringstream out;
  out << s;
  return out.str();
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

}  // namespace

const char* connection_event_name(ConnectionEvent e) {
  switch (e) {
    case ConnectionEvent::accepted: return "accepted";
    case ConnectionEvent::closed: return "closed";
    case ConnectionEvent::refused_total: return "refused_total";
    case ConnectionEvent::refused_client: return "refused_client";
    case ConnectionEvent::timed_out_header: return "timed_out_header";
    case ConnectionEvent::timed_out_body: return "timed_out_body";
    case ConnectionEvent::closed_idle: return "closed_idle";
    case ConnectionEvent::bad_request: return "bad_request";
  }
  return "unknown";
}

ssize_t ReceivedRequestStream::read(char* ptr, size_t size) {
  size = std::min(size, request_.size() - pos_);
  std::memcpy(ptr, request_.data() + pos_, size);
  pos_ += size;
  return static_cast<ssize_t>(size);
}

RequestHead parse_request_head(std::string_view head) {
  RequestHead h;
  bool has_length = false;
  const size_t end = head.find("\r\n\r\n");  // where the blank line starts
  if (end == std::string_view::npos) return {400, "the request head is incomplete"};
  for (size_t at = head.find("\r\n") + 2; at < end + 2;) {
    const size_t eol = head.find("\r\n", at);
    const std::string line(head.substr(at, eol - at));
    const size_t colon = line.find(':');
    const std::string name = lower(trim(line.substr(0, colon == std::string::npos ? 0 : colon)));
    const std::string value = colon == std::string::npos ? "" : trim(line.substr(colon + 1));
    if (name == "content-length") {
      const bool digits = !value.empty() && value.size() <= 12 &&
                          std::all_of(value.begin(), value.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
      const size_t n = digits ? std::stoull(value) : 0;
      if (!digits || (has_length && n != h.body_bytes)) return {400, "malformed Content-Length"};
      h.body_bytes = n;
      has_length = true;
    } else if (name == "transfer-encoding") {
      return {411, "send the body with a Content-Length (chunked uploads are not accepted)"};
    } else if (name == "expect" && lower(value) == "100-continue") {
      h.expect_at = at;
      h.expect_len = eol + 2 - at;
    }
    at = eol + 2;
  }
  return h;
}

struct HttpCore::Connection {
  enum class Phase { idle, header, body, discard, busy };  // discard: a refused body read away
  int fd = -1;
  std::string ip;
  int port = 0;
  std::string buf;  // received, not yet handed over
  Phase phase = Phase::idle;
  size_t header_len = 0, body_len = 0;
  size_t discard_left = 0;
  Clock::time_point deadline;
  int served = 0;
  bool paused = false;  // not read while the buffered bytes are over the limit
};

HttpCore::HttpCore(const ConnectionLimits& limits, int threads, std::function<void(ConnectionEvent)> on_event)
    : limits_(limits), on_event_(std::move(on_event)) {
  new_task_queue = [] { return new InlineQueue; };
  set_keep_alive_timeout(static_cast<time_t>(std::max(1.0, limits.keep_alive_timeout_s)));  // said in Keep-Alive headers
  set_keep_alive_max_count(static_cast<size_t>(std::max(1, limits.keep_alive_max)));
  set_payload_max_length(limits.max_body_bytes);
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) throw std::runtime_error(std::string("epoll: ") + std::strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_fd_;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  loop_ = std::thread([this] { event_loop(); });
  for (int i = 0; i < std::max(1, threads); ++i) workers_.emplace_back([this] { worker(); });
}

int HttpCore::bind_and_listen(const std::string& host, int port) {
  const int bound = port == 0 ? bind_to_any_port(host) : (bind_to_port(host, port) ? port : -1);
  if (bound <= 0) return -1;
  // httplib listens with a backlog of 5: a burst of new clients while the accept thread waits for
  // a core (the model computing on both) overflows it, and the kernel drops their handshakes,
  // which clients retry only after 1 s, then 3 s. Listening again on the socket sets the backlog.
  if (::listen(svr_sock_, std::max(1, limits_.listen_backlog)) != 0) return -1;
  return bound;
}

HttpCore::~HttpCore() {
  stopping_ = true;
  const uint64_t one = 1;
  (void)::write(wake_fd_, &one, sizeof one);
  if (loop_.joinable()) loop_.join();
  {
    std::lock_guard<std::mutex> lock(jobs_mutex_);
    jobs_cv_.notify_all();
  }
  for (auto& w : workers_) w.join();
  std::lock_guard<std::mutex> lock(mutex_);
  while (!connections_.empty()) close_connection(connections_.begin()->first);
  ::close(epoll_fd_);
  ::close(wake_fd_);
}

int HttpCore::open_connections() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int>(connections_.size());
}

bool HttpCore::process_and_close_socket(socket_t sock) {
  auto [ip, port] = socket_address(sock, getpeername);
  std::lock_guard<std::mutex> lock(mutex_);
  if (draining_) {
    ::close(sock);
    return true;
  }
  const bool over_total = static_cast<int>(connections_.size()) >= limits_.max_connections;
  const bool over_client = per_client_[ip] >= limits_.max_connections_per_client;
  if (over_total || over_client) {
    send_refusal(sock, 503,
                 over_total ? "too many connections (MAX_CONNECTIONS=" + std::to_string(limits_.max_connections) + "); retry later"
                            : "too many connections from " + ip + " (MAX_CONNECTIONS_PER_CLIENT=" +
                                  std::to_string(limits_.max_connections_per_client) + ")");
    linger_close(sock);
    ::close(sock);
    if (per_client_[ip] == 0) per_client_.erase(ip);
    on_event_(over_total ? ConnectionEvent::refused_total : ConnectionEvent::refused_client);
    return true;
  }
  fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK);
  int yes = 1;  // headers and body go out in separate writes: no Nagle delay between them
  setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
  auto c = std::make_unique<Connection>();
  c->fd = sock;
  c->ip = ip;
  c->port = port;
  c->deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(limits_.header_timeout_s));
  ++per_client_[ip];
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
  ev.data.fd = sock;
  connections_[sock] = std::move(c);
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, sock, &ev);
  on_event_(ConnectionEvent::accepted);
  return true;
}

void HttpCore::rearm(Connection& c) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
  ev.data.fd = c.fd;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
}

void HttpCore::close_connection(int fd) {
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  Connection& c = *it->second;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  ::close(fd);
  buffered_ -= std::min(buffered_, c.buf.size());
  if (--per_client_[c.ip] <= 0) per_client_.erase(c.ip);
  connections_.erase(it);
  on_event_(ConnectionEvent::closed);
  if (draining_ && connections_.empty()) drained_.notify_all();
}

void HttpCore::refuse(Connection& c, int status, const std::string& message, ConnectionEvent e) {
  send_refusal(c.fd, status, message);
  linger_close(c.fd);
  on_event_(e);
  close_connection(c.fd);
}

void HttpCore::event_loop() {
  epoll_event events[64];
  while (!stopping_) {
    // 50 ms: deadlines are checked at least this often.
    const int n = epoll_wait(epoll_fd_, events, 64, 50);
    std::lock_guard<std::mutex> lock(mutex_);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_fd_) {
        uint64_t count;
        (void)::read(wake_fd_, &count, sizeof count);
        continue;
      }
      auto it = connections_.find(fd);
      if (it != connections_.end() && it->second->phase != Connection::Phase::busy) on_readable(*it->second);
    }
    const auto now = Clock::now();
    std::vector<int> idle_over, header_over, body_over, discarded, resume;
    for (auto& [fd, c] : connections_) {
      if (c->phase == Connection::Phase::busy) continue;
      const bool nothing_sent = c->phase == Connection::Phase::idle;
      if (draining_ && nothing_sent) idle_over.push_back(fd);
      else if ((draining_ || now >= c->deadline) && c->phase == Connection::Phase::discard) discarded.push_back(fd);  // answered
      else if (now >= c->deadline) (nothing_sent ? idle_over : c->phase == Connection::Phase::header ? header_over : body_over).push_back(fd);
      else if (c->paused && buffered_ < limits_.max_buffered_bytes) resume.push_back(fd);
    }
    for (int fd : idle_over) {
      on_event_(ConnectionEvent::closed_idle);
      close_connection(fd);
    }
    for (int fd : discarded) close_connection(fd);
    for (int fd : header_over)
      refuse(*connections_.at(fd), 408,
             "the request headers did not arrive within HEADER_TIMEOUT_S=" + seconds_text(limits_.header_timeout_s) + " s",
             ConnectionEvent::timed_out_header);
    for (int fd : body_over)
      refuse(*connections_.at(fd), 408,
             "the request body did not arrive within BODY_TIMEOUT_S=" + seconds_text(limits_.body_timeout_s) + " s",
             ConnectionEvent::timed_out_body);
    for (int fd : resume) {
      Connection& c = *connections_.at(fd);
      c.paused = false;
      rearm(c);
    }
  }
}

void HttpCore::on_readable(Connection& c) {
  char chunk[64 << 10];
  for (;;) {
    if (c.phase == Connection::Phase::body && buffered_ >= limits_.max_buffered_bytes) {
      c.paused = true;  // the event loop re-arms it once other requests have been handed over
      return;
    }
    const ssize_t r = ::recv(c.fd, chunk, sizeof chunk, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (r <= 0) {  // the client closed (or the connection failed): nothing to answer
      close_connection(c.fd);
      return;
    }
    if (c.phase == Connection::Phase::discard) {
      c.discard_left -= std::min(c.discard_left, static_cast<size_t>(r));
      if (c.discard_left == 0) {
        ::shutdown(c.fd, SHUT_WR);
        close_connection(c.fd);
        return;
      }
      continue;
    }
    if (c.phase == Connection::Phase::idle) {
      c.phase = Connection::Phase::header;
      c.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(limits_.header_timeout_s));
    }
    c.buf.append(chunk, static_cast<size_t>(r));
    buffered_ += static_cast<size_t>(r);
    if (!advance(c)) return;
  }
  rearm(c);
}

// Frames the request in c.buf: the end of its headers, then its body's length. False once the
// connection was handed over or closed.
bool HttpCore::advance(Connection& c) {
  if (c.phase == Connection::Phase::header) {
    const size_t end = c.buf.find("\r\n\r\n");
    if (end == std::string::npos || end + 4 > limits_.max_header_bytes) {
      if (c.buf.size() <= limits_.max_header_bytes) return true;
      refuse(c, 431, "the request line and headers are over " + std::to_string(limits_.max_header_bytes) + " bytes",
             ConnectionEvent::bad_request);
      return false;
    }
    const RequestHead head = parse_request_head(std::string_view(c.buf).substr(0, end + 4));
    if (head.refusal) {
      refuse(c, head.refusal, head.message, ConnectionEvent::bad_request);
      return false;
    }
    const size_t body = head.body_bytes, expect_at = head.expect_at, expect_len = head.expect_len;
    if (body > limits_.max_body_bytes) {
      if (expect_at != std::string::npos) {  // the client waits: it never sends the body
        refuse(c, 413, limits_.too_large_message, ConnectionEvent::bad_request);
        return false;
      }
      // The body is on its way: answer now, then read it away without keeping it (within the body
      // deadline), so that the client, which reads only after sending, gets the 413.
      send_refusal(c.fd, 413, limits_.too_large_message);
      on_event_(ConnectionEvent::bad_request);
      const size_t here = c.buf.size() - (end + 4);
      c.discard_left = body - std::min(body, here);
      buffered_ -= std::min(buffered_, c.buf.size());
      c.buf.clear();
      c.buf.shrink_to_fit();
      c.phase = Connection::Phase::discard;
      c.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(limits_.body_timeout_s));
      if (c.discard_left == 0) {
        linger_close(c.fd);
        close_connection(c.fd);
        return false;
      }
      return true;
    }
    size_t header_len = end + 4;
    if (expect_at != std::string::npos) {
      // The client waits for 100 Continue before sending the body: say it here, and take the
      // header out so that httplib does not say it again once the body is in.
      c.buf.erase(expect_at, expect_len);
      buffered_ -= expect_len;
      header_len -= expect_len;
      if (body > 0 && c.buf.size() < header_len + body) {
        static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
        (void)::send(c.fd, kContinue, sizeof kContinue - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      }
    }
    c.header_len = header_len;
    c.body_len = body;
    c.phase = Connection::Phase::body;
    c.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(limits_.body_timeout_s));
  }
  if (c.buf.size() < c.header_len + c.body_len) return true;
  dispatch(c);
  return false;
}

void HttpCore::dispatch(Connection& c) {
  const size_t total = c.header_len + c.body_len;
  std::string request = std::move(c.buf);
  c.buf = request.substr(total);  // a pipelined next request, if any
  request.resize(total);
  buffered_ -= std::min(buffered_, total);
  c.phase = Connection::Phase::busy;
  Connection* conn = &c;
  std::lock_guard<std::mutex> lock(jobs_mutex_);
  jobs_.push_back([this, conn, request = std::move(request)]() mutable { serve(conn, std::move(request)); });
  jobs_cv_.notify_one();
}

void HttpCore::serve(Connection* c, std::string request) {
  const bool last = draining_ || c->served + 1 >= limits_.keep_alive_max;
  bool client_closes = false;
  RequestStream stream(c->fd, request, c->ip, c->port, limits_.write_timeout_s);
  const bool ok = process_request(stream, last, client_closes, nullptr);
  request = std::string();
  std::lock_guard<std::mutex> lock(mutex_);
  ++c->served;
  if (!ok || last || client_closes || draining_ || stopping_) {
    close_connection(c->fd);
    return;
  }
  const bool waiting = c->buf.empty();
  c->phase = waiting ? Connection::Phase::idle : Connection::Phase::header;
  c->deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                                   waiting ? limits_.keep_alive_timeout_s : limits_.header_timeout_s));
  if (!waiting && !advance(*c)) return;  // the next request was already here
  rearm(*c);
}

void HttpCore::worker() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(jobs_mutex_);
      jobs_cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, nothing left
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

void HttpCore::begin_drain() {
  draining_ = true;
  const uint64_t one = 1;
  (void)::write(wake_fd_, &one, sizeof one);
}

void HttpCore::wait_drained() {
  begin_drain();
  const double bound = limits_.header_timeout_s + limits_.body_timeout_s + limits_.write_timeout_s + 5;
  std::unique_lock<std::mutex> lock(mutex_);
  drained_.wait_for(lock, std::chrono::duration<double>(bound), [&] { return connections_.empty(); });
}

}  // namespace dermal::serve
