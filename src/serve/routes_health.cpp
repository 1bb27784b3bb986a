// GET /health (?verbose=1), GET /memory-status, GET /metrics: what the app Dermal replaces
// exposed, and what an orchestrator or Prometheus scrapes.
#include "engine/dnnl_util.h"
#include "serve/context.h"
#include "serve/memory.h"

namespace dermal::serve {

namespace {

double mb(uint64_t bytes) { return std::round(static_cast<double>(bytes) / (1024.0 * 1024.0) * 100) / 100; }

bool verbose(const httplib::Request& req) {
  if (!req.has_param("verbose")) return false;
  const std::string v = req.get_param_value("verbose");
  return !(v == "0" || v == "false" || v == "no" || v == "off");
}

void health(Context& ctx, const httplib::Request& req, httplib::Response& res) {
  nlohmann::json j{{"status", "ok"}};
  if (!verbose(req)) return send_json(res, j);
  const auto s = ctx.model.snapshot();
  nlohmann::json labels = nlohmann::json::array();
  for (const auto& l : s.labels) labels.push_back({{"code", l.code}, {"name", l.name}, {"malignant", l.malignant}});
  j["version"] = DERMAL_VERSION;
  j["uptime_s"] = std::round(std::chrono::duration<double>(Clock::now() - ctx.started).count() * 10) / 10;
  j["model"] = {{"name", ctx.model.name()},
                {"path", ctx.model.path()},
                {"loaded", s.loaded},
                {"load_ms", s.loaded ? nlohmann::json(std::round(s.load_ms * 10) / 10) : nlohmann::json(nullptr)},
                {"load_error", s.load_error.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.load_error)},
                {"labels", labels}};
  if (s.loaded) {
    j["model"]["format"] = s.format;
    j["model"]["explain_layer"] = s.explain_layer;
    // How logits become the probabilities it reports: softmax(logits / T + offsets).
    j["model"]["temperature"] = s.temperature;
    j["model"]["logit_offsets"] = nlohmann::json::object();
    for (const auto& [code, b] : s.logit_offsets) j["model"]["logit_offsets"][code] = b;
    // What runs: bf16 asked for on a CPU without it runs f32, and says why. Grad-CAM's backward is
    // f32 either way.
    j["model"]["precision"] = {{"asked", s.precision.asked},
                               {"running", s.precision.running},
                               {"bf16_convolutions", s.precision.bf16_convolutions},
                               {"note", s.precision.note.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.precision.note)},
                               {"cpu_isa", engine::dnnl_util::cpu_isa_name()}};
    j["model"]["input"] = {{"name", s.input_name}, {"width", s.input_width}, {"height", s.input_height},
                               {"channels", s.input_channels}, {"layout", s.layout}};
    j["lesion_check"] = s.lesion_check;
  }
  j["threads"] = {{"compute", ctx.config.threads > 0 ? ctx.config.threads : engine::dnnl_util::threads()},
                  {"http", ctx.config.http_threads()}};
  j["queue"] = {{"waiting", ctx.queue.waiting()}, {"busy", ctx.queue.busy()}, {"max", ctx.config.max_queue}};
  j["connections"] = {{"open", ctx.open_connections()},
                      {"max", ctx.config.max_connections},
                      {"max_per_client", ctx.config.max_connections_per_client},
                      {"listen_backlog", ctx.config.listen_backlog}};
  j["draining"] = ctx.draining.load();
  for (const auto& [name, value] : config_values(ctx.config)) j["config"][name] = value;
  for (const auto& [name, source] : ctx.config.sources) j["config_sources"][name] = setting_source_name(source);
  send_json(res, j);
}

void memory_status(Context& ctx, httplib::Response& res) {
  const MemoryStatus m = read_memory_status();
  const auto s = ctx.model.snapshot();
  nlohmann::json mem{{"rss_mb", mb(m.rss_bytes)},
                     {"peak_rss_mb", mb(m.peak_rss_bytes)},
                     {"virtual_mb", mb(m.virtual_bytes)},
                     {"cgroup_limit_mb", m.cgroup_limit_bytes ? nlohmann::json(mb(m.cgroup_limit_bytes)) : nlohmann::json(nullptr)},
                     {"cgroup_usage_mb", m.cgroup_usage_bytes ? nlohmann::json(mb(m.cgroup_usage_bytes)) : nlohmann::json(nullptr)},
                     {"model_loaded", s.loaded},
                     {"model_weight_bytes", s.weight_bytes},
                     {"planned_activation_bytes", s.planned_activation_bytes}};
  send_json(res, {{"memory", mem}});
}

void metrics(Context& ctx, httplib::Response& res) {
  const MemoryStatus m = read_memory_status();
  Metrics::Gauges g;
  g.queue_depth = static_cast<double>(ctx.queue.waiting());
  g.inference_busy = ctx.queue.busy() ? 1 : 0;
  g.rss_bytes = static_cast<double>(m.rss_bytes);
  g.peak_rss_bytes = static_cast<double>(m.peak_rss_bytes);
  g.model_loaded = ctx.model.loaded() ? 1 : 0;
  res.set_content(ctx.metrics.render(g), "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace

void add_health_routes(Router& r, Context& ctx) {
  r.get("/health", "/health", [&ctx](const httplib::Request& req, httplib::Response& res) { health(ctx, req, res); });
  r.get("/memory-status", "/memory-status", [&ctx](const httplib::Request&, httplib::Response& res) { memory_status(ctx, res); });
  r.get("/metrics", "/metrics", [&ctx](const httplib::Request&, httplib::Response& res) { metrics(ctx, res); });
}

}  // namespace dermal::serve
