// How routes are registered and answered (internal to serve/): handlers under a route name (its
// pattern, for logs and metrics), errors they throw mapped to statuses and JSON bodies, and the
// methods each path takes, so that a wrong method is a 405 and not a 404.
//
//   Router r(http, log);
//   r.post("/api/predict", "/api/predict", handler);   // handler may throw HttpError or dermal::Error
//   http.set_error_handler(... r.answer_refusal(req, res, "the request body is over ...") ...);
#pragma once

#include <httplib.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/error.h"
#include "serve/log.h"

namespace dermal::serve {

// An answer with an explicit status, thrown by handlers (and by jobs on the worker).
struct HttpError : std::runtime_error {
  HttpError(int s, const std::string& message, int retry = 0)
      : std::runtime_error(message), status(s), retry_after_s(retry) {}
  int status;
  int retry_after_s;  // > 0: sent as Retry-After
};

// The server's answers are JSON objects; errors are {"error": message}.
std::string to_json_text(const nlohmann::json& j);  // invalid UTF-8 replaced, never throws
void send_json(httplib::Response& res, const nlohmann::json& j, int status = 200);
void send_error(httplib::Response& res, int status, const std::string& message);

// dermal::Error kind -> status: invalid_input 400, too_large 413, resources 503, the rest 500.
int status_for(const Error& e);

class Router {
 public:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;
  Router(httplib::Server& http, Log& log) : http_(http), log_(log) {}

  void get(const std::string& pattern, const std::string& route, Handler h);
  void post(const std::string& pattern, const std::string& route, Handler h);
  // "GET, HEAD" style list of the methods that `path` takes; empty for an unknown path.
  std::string allowed_methods(const std::string& path) const;
  // httplib's own refusals (no route, body over the limit, malformed request) as JSON with a
  // message that says what to do; a path that exists under another method becomes a 405.
  // `too_large`: the 413's message (the connection layer's, ConnectionLimits::too_large_message).
  void answer_refusal(const httplib::Request& req, httplib::Response& res, const std::string& too_large) const;

 private:
  Handler wrap(const std::string& route, Handler h);
  struct Entry {
    std::string method, pattern;
  };
  httplib::Server& http_;
  Log& log_;
  std::vector<Entry> entries_;
};

}  // namespace dermal::serve
