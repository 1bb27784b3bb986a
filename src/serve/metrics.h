// Prometheus metrics (prometheus-cpp core; the text exposition is served on our own /metrics
// route, not by prometheus-cpp's civetweb exposer).
//
//   Metrics m;
//   m.count_request("/api/predict", 200, 0.023);
//   m.observe_stage("infer", 12.5);                     // milliseconds
//   m.count_connection(ConnectionEvent::timed_out_header);
//   std::string text = m.render({.queue_depth = 2, ...});
#pragma once

#include <memory>
#include <string>

#include "serve/http_core.h"

namespace dermal::serve {

class Metrics {
 public:
  struct Gauges {
    double queue_depth = 0;     // requests waiting for the model
    double inference_busy = 0;  // 1 while a request is being computed
    double rss_bytes = 0, peak_rss_bytes = 0;
    double model_loaded = 0;
  };

  Metrics();
  ~Metrics();

  // route: the route's pattern ("/v2/models/{name}/infer"), never the raw path, so that the
  // label set stays bounded; "unmatched" for 404s.
  void count_request(const std::string& route, int status, double seconds);
  // stage: decode, preprocess, infer, explain, encode, queue (time waiting for the worker).
  void observe_stage(const std::string& stage, double ms);
  // Connections (HttpCore): accepted, open, refused over a cap or unframeable, timed out.
  void count_connection(ConnectionEvent e);
  std::string render(const Gauges& g);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dermal::serve
