// The HTTP path of an untrusted request up to the point where the worker takes over: the event
// loop's framing (serve::parse_request_head: Content-Length, chunked, Expect), then cpp-httplib's
// request parsing (request line, headers, query string, multipart forms) and Dermal's reading of
// what it parsed: the API's query parameters and upload (serve/api_request.cpp) and the Open
// Inference Protocol's infer body (serve/oip_request.cpp, base64 images included).
//
// Built twice: `http_request` takes whole requests; `multipart` takes the body of a multipart
// upload to /api/predict (FUZZ_MULTIPART_BODY), so that mutations go into the form itself.
// cpp-httplib is Debian's shared library, built without coverage instrumentation: libFuzzer
// sees Dermal's side of the parsing, not httplib's internals (ASan still checks every access
// Dermal makes to what httplib hands it).
#include <httplib.h>

#include "fuzz/fuzz_common.h"
#include "serve/api_request.h"
#include "serve/base64.h"
#include "serve/http_core.h"
#include "serve/oip_request.h"
#include "serve/router.h"

using namespace dermal;

namespace {

// One received request for process_request, as the event loop hands it over; the answer is
// counted and dropped.
class BufferStream : public serve::ReceivedRequestStream {
 public:
  using ReceivedRequestStream::ReceivedRequestStream;
  bool is_writable() const override { return true; }
  ssize_t write(const char*, size_t size) override {
    written += size;
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = "192.0.2.1";
    port = 40000;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 8000;
  }
  socket_t socket() const override { return INVALID_SOCKET; }
  size_t written = 0;
};

// A handler's own refusals (HttpError 4xx, dermal::Error) are answers; anything else is a finding.
template <typename F>
void handle(F&& body) {
  try {
    fuzz::refusals_allowed(body);
  } catch (const serve::HttpError& e) {
    if (e.status < 400 || e.status >= 500) fuzz::finding("HttpError " + std::to_string(e.status) + " from parsing: " + e.what());
  }
}

class FuzzServer : public httplib::Server {
 public:
  FuzzServer() {
    const serve::ConnectionLimits limits;
    set_payload_max_length(limits.max_body_bytes);
    auto api = [this](const httplib::Request& req, httplib::Response& res) {
      handle([&] {
        serve::ApiParams p = serve::parse_params(req, config_);
        const std::string bytes = serve::upload_bytes(req);
        if (bytes.empty()) fuzz::finding("upload_bytes returned no bytes");
        (void)p;
      });
      res.status = 200;
    };
    Post("/api/predict", api);
    Post("/api/explain", api);
    Post(R"(/v2/models/([^/]+)(?:/versions/([^/]+))?/infer)", [](const httplib::Request& req, httplib::Response& res) {
      handle([&] {
        serve::InferJob job = serve::parse_infer_request(req.body);
        for (const auto& s : job.input.strings) (void)serve::base64_decode(s);
      });
      res.status = 200;
    });
    Get("/health", [](const httplib::Request&, httplib::Response& res) { res.set_content("{}", "application/json"); });
  }

  void serve_request(const std::string& request) {
    BufferStream stream(request);
    bool closed = false;
    process_request(stream, /*close_connection=*/true, closed, nullptr);
  }

 private:
  serve::ServeConfig config_;
};

// The event loop's framing, as HttpCore::advance does it: a complete head within the header
// limit, its Content-Length, the Expect line taken out. False for what the loop would refuse
// or still wait for.
bool frame(std::string& request) {
  const serve::ConnectionLimits limits;
  const size_t end = request.find("\r\n\r\n");
  if (end == std::string::npos || end + 4 > limits.max_header_bytes) return false;
  const serve::RequestHead head = serve::parse_request_head(std::string_view(request).substr(0, end + 4));
  if (head.refusal) {
    if (head.refusal != 400 && head.refusal != 411) fuzz::finding("refusal " + std::to_string(head.refusal));
    return false;
  }
  if (head.body_bytes > limits.max_body_bytes) return false;
  size_t header_len = end + 4;
  if (head.expect_at != std::string::npos) {
    if (head.expect_at + head.expect_len > end + 2) fuzz::finding("the Expect line runs past the head");
    request.erase(head.expect_at, head.expect_len);
    header_len -= head.expect_len;
  }
  if (request.size() < header_len + head.body_bytes) return false;  // the loop would wait for the rest
  request.resize(header_len + head.body_bytes);                     // the rest is the next request
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static FuzzServer* server = new FuzzServer;
#ifdef FUZZ_MULTIPART_BODY
  const std::string body(reinterpret_cast<const char*>(data), size);
  std::string request = "POST /api/predict?gradcam=0&top_k=3 HTTP/1.1\r\nHost: dermal\r\n"
                        "Content-Type: multipart/form-data; boundary=dermalfuzz\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\n\r\n" + body;
#else
  std::string request(reinterpret_cast<const char*>(data), size);
#endif
  if (!frame(request)) return 0;
  server->serve_request(request);
  return 0;
}
