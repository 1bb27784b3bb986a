// POST /api/predict (JSON) and POST /api/explain (the overlay as a PNG): the image as multipart
// field `image` or as the raw body; options in the query string.
#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "explain/answer.h"
#include "serve/api_request.h"
#include "serve/base64.h"
#include "serve/context.h"
#include "vision/colormap.h"
#include "vision/decode.h"

namespace dermal::serve {

namespace {

// What the worker computes for one request.
struct Job {
  std::string bytes;
  ApiParams params;
  std::string model;
  explain::Answer answer;
  explain::Timings timings;
};

void compute(Context& ctx, Job& job) {
  explain::Classifier& clf = loaded_classifier(ctx);
  job.model = ctx.model.name();
  vision::SourceSize source;
  vision::Image image = decode_upload(clf, job.bytes, job.timings, &source);
  job.bytes = std::string();  // the upload is not needed any more: free it before the work
  // The maps at the display size: DISPLAY_SIZE, or smaller when the request asks.
  explain::AnswerRequest& req = job.params.answer;
  const int asked = job.params.display_size;
  req.display_size = asked > 0 && (clf.working_side() <= 0 || asked < clf.working_side()) ? asked : clf.working_side();
  if (job.params.overlay) req.overlay = job.params.overlay_format;
  if (job.params.heatmap) req.heatmap = vision::ImageFormat::png;
  job.answer = explain::answer(clf, image, source, req, job.timings);
}

std::shared_ptr<Job> run_job(Context& ctx, const httplib::Request& req, bool force_gradcam) {
  check_rate_limit(ctx, req);
  auto job = std::make_shared<Job>();
  job->params = parse_params(req, ctx.config);
  if (force_gradcam) {  // /api/explain: the overlay itself, PNG unless asked
    job->params.answer.explain = job->params.overlay = true;
    if (!req.has_param("overlay_format")) job->params.overlay_format = vision::ImageFormat::png;
  }
  job->bytes = upload_bytes(req);
  run_on_worker(ctx, [&ctx, job] { compute(ctx, *job); });
  for (const auto& [stage, ms] : job->timings) current_request().stages[stage] = ms;
  return job;
}

// "queue;dur=0.1, decode;dur=1.3, ..." (the Server-Timing header browsers' dev tools show).
std::string server_timing(const explain::Timings& stages) {
  std::string out;
  char buf[64];
  for (const auto& [stage, ms] : stages) {
    std::snprintf(buf, sizeof buf, "%s%s;dur=%.2f", out.empty() ? "" : ", ", stage.c_str(), ms);
    out += buf;
  }
  return out;
}

void predict_route(Context& ctx, const httplib::Request& req, httplib::Response& res) {
  auto job = run_job(ctx, req, false);
  const auto& stages = current_request().stages;  // the worker's stages and the queue wait
  const explain::Answer& a = job->answer;
  nlohmann::json j = explain::answer_json(a, job->params.answer, stages);
  j["model"] = job->model;
  if (a.explanation) {
    if (!a.overlay.empty())
      j["gradcam"][job->params.overlay_format == vision::ImageFormat::jpeg ? "overlay_jpeg" : "overlay_png"] =
          base64_encode(a.overlay.data(), a.overlay.size());
    if (!a.heatmap.empty()) j["gradcam"]["heatmap_png"] = base64_encode(a.heatmap.data(), a.heatmap.size());
  }
  j["request_id"] = current_request().id;
  res.set_header("Server-Timing", server_timing(stages));
  send_json(res, j);
}

void explain_route(Context& ctx, const httplib::Request& req, httplib::Response& res) {
  auto job = run_job(ctx, req, true);
  const explain::Answer& a = job->answer;
  if (a.diagnosis_withheld)
    throw HttpError(422, "not explained: the image " + a.prediction.lesion_check.reason +
                             " (add force=1 to explain it anyway)");
  const auto& stages = current_request().stages;
  res.set_header("Server-Timing", server_timing(stages));
  res.set_header("X-Dermal-Class", a.explanation->class_code);
  res.set_header("X-Dermal-Method", a.explanation->method);
  res.set_header("X-Dermal-Layer", a.explanation->layer);
  char prob[32];
  std::snprintf(prob, sizeof prob, "%.6f", a.prediction.probabilities[static_cast<size_t>(a.explanation->class_index)]);
  res.set_header("X-Dermal-Probability", prob);
  res.set_content(std::string(a.overlay.begin(), a.overlay.end()), vision::image_format_mime(job->params.overlay_format));
}

}  // namespace

void add_api_routes(Router& r, Context& ctx) {
  r.post("/api/predict", "/api/predict", [&ctx](const httplib::Request& req, httplib::Response& res) { predict_route(ctx, req, res); });
  r.post("/api/explain", "/api/explain", [&ctx](const httplib::Request& req, httplib::Response& res) { explain_route(ctx, req, res); });
}

}  // namespace dermal::serve
