// What the route files share (internal to serve/): the server's state, the per-request scope
// the log line is built from, the router that remembers routes for 405s, and the mapping of
// errors to HTTP statuses.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "explain/classifier.h"
#include "serve/config.h"
#include "serve/inference_queue.h"
#include "serve/log.h"
#include "serve/metrics.h"
#include "serve/model_host.h"

namespace dermal::serve {

using Clock = std::chrono::steady_clock;

// An answer with an explicit status, thrown by handlers (and by jobs on the worker).
struct HttpError : std::runtime_error {
  HttpError(int s, const std::string& message, int retry = 0)
      : std::runtime_error(message), status(s), retry_after_s(retry) {}
  int status;
  int retry_after_s;  // > 0: sent as Retry-After
};

// One request, from the pre-routing hook to the log line. httplib serves a request on one
// thread from start to end, so a thread-local holds it.
struct RequestScope {
  bool active = false;
  std::string id;
  std::string route = "unmatched";  // the route's pattern, set by the router
  Clock::time_point start;
  explain::Timings stages;          // milliseconds: queue, decode, preprocess, infer, explain, encode
};
RequestScope& current_request();

struct Context {
  explicit Context(const ServeConfig& c);

  ServeConfig config;
  Log log;
  Metrics metrics;
  ModelHost model;
  InferenceQueue queue;
  Clock::time_point started = Clock::now();
  std::atomic<bool> draining{false};
};

// The server's answers are JSON objects; errors are {"error": message}.
std::string to_json_text(const nlohmann::json& j);  // invalid UTF-8 replaced, never throws
void send_json(httplib::Response& res, const nlohmann::json& j, int status = 200);
void send_error(httplib::Response& res, int status, const std::string& message);

// Registers handlers under a route name (its pattern, for logs and metrics), answers errors
// they throw with the right status, and remembers which methods each path takes (405).
class Router {
 public:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;
  Router(httplib::Server& http, Context& ctx) : http_(http), ctx_(ctx) {}

  void get(const std::string& pattern, const std::string& route, Handler h);
  void post(const std::string& pattern, const std::string& route, Handler h);
  // "GET, HEAD" style list of the methods that `path` takes; empty for an unknown path.
  std::string allowed_methods(const std::string& path) const;

 private:
  Handler wrap(const std::string& route, Handler h);
  struct Entry {
    std::string method, pattern;
  };
  httplib::Server& http_;
  Context& ctx_;
  std::vector<Entry> entries_;
};

// dermal::Error kind -> status: invalid_input 400, too_large 413, the rest 500.
int status_for(const Error& e);

// Runs `work` on the inference worker within REQUEST_TIMEOUT_S: throws HttpError 503 (queue
// full or shutting down, with Retry-After) or 504; rethrows what `work` throws. Adds the wait
// to the request's "queue" stage. `work` must own its data (see InferenceQueue::run).
void run_on_worker(Context& ctx, std::function<void()> work);

// On the worker: the classifier, loading it now if needed; a failed load is a 500.
explain::Classifier& loaded_classifier(Context& ctx);
// On the worker: decodes untrusted bytes; anything undecodable or over the pixel limit is a 422.
vision::Image decode_upload(explain::Classifier& clf, const std::string& bytes, explain::Timings& timings,
                            vision::SourceSize* source = nullptr);

void add_page_routes(Router& r, Context& ctx);
void add_api_routes(Router& r, Context& ctx);
void add_health_routes(Router& r, Context& ctx);
void add_oip_routes(Router& r, Context& ctx);

}  // namespace dermal::serve
