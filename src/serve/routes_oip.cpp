// Open Inference Protocol v2 (KServe, Seldon, Triton's HTTP API): server and model health,
// metadata, and inference with FP32 tensors in and out. Extension: an input named "image" of
// datatype BYTES holds encoded image files (JPEG, PNG, WebP) as base64 strings, preprocessed
// per the model card like /api/predict.
#include <cmath>

#include "serve/base64.h"
#include "serve/context.h"
#include "serve/oip_request.h"

namespace dermal::serve {

namespace {

constexpr int kMaxBatch = 64;
constexpr const char* kVersion = "1";

// The model named in the path, or a 404 naming the one this server serves.
void check_model(Context& ctx, const httplib::Request& req) {
  const std::string name = req.matches[1];
  const std::string version = req.matches.size() > 2 ? std::string(req.matches[2]) : "";
  if (name != ctx.model.name())
    throw HttpError(404, "unknown model '" + name.substr(0, 64) + "' (this server serves '" + ctx.model.name() + "')");
  if (!version.empty() && version != kVersion)
    throw HttpError(404, "unknown version '" + version.substr(0, 16) + "' of model '" + name + "' (it has version 1)");
}

bool server_ready(Context& ctx) {
  if (ctx.draining) return false;
  const auto s = ctx.model.snapshot();
  // Lazy loading: ready to take requests (the first one loads the model) until a load fails.
  return s.loaded || (!ctx.config.preload_model && s.load_error.empty());
}

nlohmann::json tensor_meta(const std::string& name, const std::string& datatype, std::vector<int64_t> shape) {
  return {{"name", name}, {"datatype", datatype}, {"shape", shape}};
}

[[noreturn]] void bad_request(const std::string& message) { throw HttpError(400, message); }

void append(InferJob& job, const explain::Prediction& p) {
  for (double v : p.logits) job.logits.push_back(static_cast<float>(v));
  for (double v : p.probabilities) job.probabilities.push_back(static_cast<float>(v));
}

// On the worker: checks the input against the model and runs it, one image at a time.
void compute(Context& ctx, InferJob& job) {
  explain::Classifier& clf = loaded_classifier(ctx);
  const auto& card = clf.card();
  const InferInput& in = job.input;
  const int64_t classes = static_cast<int64_t>(card.labels.size());
  const int64_t n = in.shape[0];
  if (n < 1 || n > kMaxBatch) bad_request("the batch (first dimension) must be 1 to " + std::to_string(kMaxBatch));
  if (in.name == "image") {
    if (in.datatype != "BYTES" || !(in.shape.size() == 1 || (in.shape.size() == 2 && in.shape[1] == 1)))
      bad_request("input 'image' must be BYTES of shape [N] (or [N, 1]): base64 image files");
    for (const auto& text : in.strings) {
      std::vector<uint8_t> bytes;
      try {
        bytes = base64_decode(text);
      } catch (const Error& e) {
        bad_request(std::string("input 'image': ") + e.what());
      }
      if (bytes.empty()) bad_request("input 'image': an element is empty (0 bytes)");
      vision::Image img = decode_upload(clf, std::string(bytes.begin(), bytes.end()), job.timings);
      append(job, clf.predict(img, job.timings));
    }
  } else if (in.name == card.input_name) {
    const auto& p = card.preprocess;
    const std::vector<int64_t> item = p.nhwc ? std::vector<int64_t>{p.height, p.width, p.channels}
                                             : std::vector<int64_t>{p.channels, p.height, p.width};
    if (in.datatype != "FP32" || in.shape.size() != 4 || !std::equal(item.begin(), item.end(), in.shape.begin() + 1))
      bad_request("input '" + in.name + "' must be FP32 of shape [N, " + std::to_string(item[0]) + ", " + std::to_string(item[1]) +
                  ", " + std::to_string(item[2]) + "]");
    const size_t per = static_cast<size_t>(item[0] * item[1] * item[2]);
    for (int64_t b = 0; b < n; ++b) {
      std::vector<float> values(in.floats.begin() + b * per, in.floats.begin() + (b + 1) * per);
      engine::Shape shape{1, item[0], item[1], item[2]};
      append(job, clf.predict_input(engine::Tensor::from_floats(shape, values), job.timings));
    }
  } else {
    bad_request("unknown input '" + in.name + "' (the model takes '" + card.input_name + "' FP32, or 'image' BYTES)");
  }
  job.out_shape = {n, classes};
}

void infer(Context& ctx, const httplib::Request& req, httplib::Response& res) {
  check_model(ctx, req);
  check_rate_limit(ctx, req);
  auto job = std::make_shared<InferJob>(parse_infer_request(req.body));
  run_on_worker(ctx, [&ctx, job] { compute(ctx, *job); });
  for (const auto& [stage, ms] : job->timings) current_request().stages[stage] = ms;
  nlohmann::json out{{"model_name", ctx.model.name()}, {"model_version", kVersion}, {"outputs", nlohmann::json::array()}};
  if (!job->id.empty()) out["id"] = job->id;
  for (const auto& name : job->outputs) {
    nlohmann::json t = tensor_meta(name, "FP32", job->out_shape);
    t["data"] = name == "logits" ? job->logits : job->probabilities;
    out["outputs"].push_back(t);
  }
  send_json(res, out);
}

void model_metadata(Context& ctx, const httplib::Request& req, httplib::Response& res) {
  check_model(ctx, req);
  // Inputs and outputs come from the card, which needs the model: this loads it when lazy.
  run_on_worker(ctx, [&ctx] { loaded_classifier(ctx); });
  const auto s = ctx.model.snapshot();
  const int64_t classes = static_cast<int64_t>(s.labels.size());
  const std::vector<int64_t> input = s.layout == "nhwc" ? std::vector<int64_t>{-1, s.input_height, s.input_width, s.input_channels}
                                                        : std::vector<int64_t>{-1, s.input_channels, s.input_height, s.input_width};
  nlohmann::json image = tensor_meta("image", "BYTES", {-1});
  image["parameters"] = {{"content", "encoded image files (JPEG, PNG, WebP), base64 in JSON"}};
  nlohmann::json labels = nlohmann::json::array();
  for (const auto& l : s.labels) labels.push_back(l.code);
  send_json(res, {{"name", ctx.model.name()},
                  {"versions", {kVersion}},
                  {"platform", "dermal_" + s.format},
                  {"inputs", {tensor_meta(s.input_name, "FP32", input), image}},
                  {"outputs", {tensor_meta("logits", "FP32", {-1, classes}), tensor_meta("probabilities", "FP32", {-1, classes})}},
                  {"parameters", {{"labels", labels}}}});
}

}  // namespace

void add_oip_routes(Router& r, Context& ctx) {
  r.get("/v2", "/v2", [](const httplib::Request&, httplib::Response& res) {
    send_json(res, {{"name", "dermal"}, {"version", DERMAL_VERSION}, {"extensions", {"image_bytes_input"}}});
  });
  r.get("/v2/health/live", "/v2/health/live",
        [](const httplib::Request&, httplib::Response& res) { send_json(res, {{"live", true}}); });
  r.get("/v2/health/ready", "/v2/health/ready", [&ctx](const httplib::Request&, httplib::Response& res) {
    const bool ready = server_ready(ctx);
    send_json(res, {{"ready", ready}, {"model_loaded", ctx.model.loaded()}, {"draining", ctx.draining.load()}},
              ready ? 200 : 503);
  });
  const std::string model = "/v2/models/([^/]+)(?:/versions/([^/]+))?";
  r.get(model, "/v2/models/{name}", [&ctx](const httplib::Request& req, httplib::Response& res) { model_metadata(ctx, req, res); });
  r.get(model + "/ready", "/v2/models/{name}/ready", [&ctx](const httplib::Request& req, httplib::Response& res) {
    check_model(ctx, req);
    const bool loaded = ctx.model.loaded() && !ctx.draining;
    send_json(res, {{"name", ctx.model.name()}, {"ready", loaded}}, loaded ? 200 : 503);
  });
  r.post(model + "/infer", "/v2/models/{name}/infer",
         [&ctx](const httplib::Request& req, httplib::Response& res) { infer(ctx, req, res); });
}

}  // namespace dermal::serve
