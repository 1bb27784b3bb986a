// What the route files share (internal to serve/): the server's state, the per-request scope
// the log line is built from, and the worker; the router and error statuses are in router.h.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "explain/classifier.h"
#include "serve/config.h"
#include "serve/inference_queue.h"
#include "serve/log.h"
#include "serve/metrics.h"
#include "serve/model_host.h"
#include "serve/rate_limit.h"
#include "serve/router.h"

namespace dermal::serve {

using Clock = std::chrono::steady_clock;

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
  RateLimiter rate_limit;
  Clock::time_point started = Clock::now();
  std::atomic<bool> draining{false};
  std::function<int()> open_connections = [] { return 0; };  // set by the server: its connection layer's count
};

// Runs `work` on the inference worker within REQUEST_TIMEOUT_S: throws HttpError 503 (queue
// full or shutting down, with Retry-After) or 504; rethrows what `work` throws. Adds the wait
// to the request's "queue" stage. `work` must own its data (see InferenceQueue::run).
void run_on_worker(Context& ctx, std::function<void()> work);

// Before a route that computes: a token from the client address's bucket, else HttpError 429
// with Retry-After.
void check_rate_limit(Context& ctx, const httplib::Request& req);

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
