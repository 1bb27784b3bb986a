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
  prometheus::Counter& accepted = prometheus::BuildCounter()
                                      .Name("dermal_connections_accepted_total")
                                      .Help("Connections accepted")
                                      .Register(registry)
                                      .Add({});
  prometheus::Gauge& open = prometheus::BuildGauge()
                                .Name("dermal_connections_open")
                                .Help("Connections open: idle, sending a request, or being answered")
                                .Register(registry)
                                .Add({});
  prometheus::Family<prometheus::Counter>& refused =
      prometheus::BuildCounter()
          .Name("dermal_connections_refused_total")
          .Help("Connections answered and closed by the connection layer: over MAX_CONNECTIONS, over "
                "MAX_CONNECTIONS_PER_CLIENT, or a request that cannot be framed (bad_request)")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& timed_out =
      prometheus::BuildCounter()
          .Name("dermal_connections_timed_out_total")
          .Help("Requests not received in time: headers (HEADER_TIMEOUT_S) or body (BODY_TIMEOUT_S)")
          .Register(registry);
  prometheus::Counter& closed_idle = prometheus::BuildCounter()
                                         .Name("dermal_connections_closed_idle_total")
                                         .Help("Keep-alive connections closed after KEEP_ALIVE_TIMEOUT_S idle (normal)")
                                         .Register(registry)
                                         .Add({});
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

void Metrics::count_connection(ConnectionEvent e) {
  switch (e) {
    case ConnectionEvent::accepted:
      impl_->accepted.Increment();
      impl_->open.Increment();
      break;
    case ConnectionEvent::closed: impl_->open.Decrement(); break;
    case ConnectionEvent::refused_total: impl_->refused.Add({{"reason", "max_connections"}}).Increment(); break;
    case ConnectionEvent::refused_client: impl_->refused.Add({{"reason", "max_connections_per_client"}}).Increment(); break;
    case ConnectionEvent::bad_request: impl_->refused.Add({{"reason", "bad_request"}}).Increment(); break;
    case ConnectionEvent::timed_out_header: impl_->timed_out.Add({{"phase", "header"}}).Increment(); break;
    case ConnectionEvent::timed_out_body: impl_->timed_out.Add({{"phase", "body"}}).Increment(); break;
    case ConnectionEvent::closed_idle: impl_->closed_idle.Increment(); break;
  }
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
