#include "serve/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <sstream>

namespace dermal::serve {

namespace {
// Seconds: from a fraction of a millisecond (decode of a small file) to a slow Score-CAM.
const prometheus::Histogram::BucketBoundaries kBuckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                       0.1,    0.25,  0.5,    1,     2.5,  5,     10};
}  // namespace

struct Metrics::Impl {
  prometheus::Registry registry;
  prometheus::Family<prometheus::Counter>& requests = prometheus::BuildCounter()
                                                          .Name("dermal_http_requests_total")
                                                          .Help("HTTP requests by route and status")
                                                          .Register(registry);
  prometheus::Family<prometheus::Histogram>& latency = prometheus::BuildHistogram()
                                                           .Name("dermal_http_request_duration_seconds")
                                                           .Help("Time from request headers to response, by route")
                                                           .Register(registry);
  prometheus::Family<prometheus::Histogram>& stages =
      prometheus::BuildHistogram()
          .Name("dermal_stage_duration_seconds")
          .Help("Time per pipeline stage: queue, decode, preprocess, infer, explain, encode")
          .Register(registry);
  prometheus::Gauge& queue_depth = prometheus::BuildGauge()
                                       .Name("dermal_queue_depth")
                                       .Help("Requests waiting for the inference worker")
                                       .Register(registry)
                                       .Add({});
  prometheus::Gauge& busy = prometheus::BuildGauge()
                                .Name("dermal_inference_busy")
                                .Help("1 while the inference worker computes a request")
                                .Register(registry)
                                .Add({});
  prometheus::Family<prometheus::Gauge>& memory = prometheus::BuildGauge()
                                                      .Name("dermal_process_memory_bytes")
                                                      .Help("Process memory: resident (rss) and peak resident (peak_rss)")
                                                      .Register(registry);
  prometheus::Gauge& rss = memory.Add({{"kind", "rss"}});
  prometheus::Gauge& peak_rss = memory.Add({{"kind", "peak_rss"}});
  prometheus::Gauge& loaded = prometheus::BuildGauge()
                                  .Name("dermal_model_loaded")
                                  .Help("1 once the model is loaded (PRELOAD_MODEL=false loads it on first use)")
                                  .Register(registry)
                                  .Add({});
};

Metrics::Metrics() : impl_(std::make_unique<Impl>()) {}
Metrics::~Metrics() = default;

void Metrics::count_request(const std::string& route, int status, double seconds) {
  impl_->requests.Add({{"route", route}, {"status", std::to_string(status)}}).Increment();
  impl_->latency.Add({{"route", route}}, kBuckets).Observe(seconds);
}

void Metrics::observe_stage(const std::string& stage, double ms) {
  impl_->stages.Add({{"stage", stage}}, kBuckets).Observe(ms / 1000.0);
}

std::string Metrics::render(const Gauges& g) {
  impl_->queue_depth.Set(g.queue_depth);
  impl_->busy.Set(g.inference_busy);
  impl_->rss.Set(g.rss_bytes);
  impl_->peak_rss.Set(g.peak_rss_bytes);
  impl_->loaded.Set(g.model_loaded);
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, impl_->registry.Collect());
  return out.str();
}

}  // namespace dermal::serve
