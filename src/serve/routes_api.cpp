// POST /api/predict (JSON) and POST /api/explain (the overlay as a PNG): the image as multipart
// field `image` or as the raw body; options in the query string.
#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "explain/answer.h"
#include "serve/base64.h"
#include "serve/context.h"
#include "vision/colormap.h"
#include "vision/decode.h"

namespace dermal::serve {

namespace {

// What the query string asks, on top of ServeConfig's defaults.
struct ApiParams {
  explain::AnswerRequest answer;  // top_k, force, the map (method, layer, class) and its pictures
  bool overlay = true;            // the blended overlay (the page, which blends itself, says false)
  bool heatmap = false;           // the coloured heatmap alone (the page blends it itself)
  vision::ImageFormat overlay_format = vision::ImageFormat::jpeg;  // a photo: a tenth of the PNG's bytes
  int display_size = 0;           // the overlay's longer side at most (0: DISPLAY_SIZE; never above it)
};

[[noreturn]] void bad_param(const std::string& name, const std::string& value, const std::string& expected) {
  throw HttpError(400, "query parameter " + name + "='" + value.substr(0, 64) + "' is not valid: expected " + expected);
}

// A whole number from lo to hi (the request has the parameter); else 400 saying `expected`.
int int_param(const httplib::Request& req, const char* name, long lo, long hi, const char* expected) {
  const std::string v = req.get_param_value(name);
  char* end = nullptr;
  const long n = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || n < lo || n > hi) bad_param(name, v, expected);
  return static_cast<int>(n);
}

bool bool_param(const httplib::Request& req, const std::string& name, bool fallback) {
  if (!req.has_param(name.c_str())) return fallback;
  std::string v = req.get_param_value(name.c_str());
  for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (v == "1" || v == "true" || v == "yes" || v == "on" || v.empty()) return true;
  if (v == "0" || v == "false" || v == "no" || v == "off") return false;
  bad_param(name, v, "true or false");
}

ApiParams parse_params(const httplib::Request& req, const ServeConfig& config) {
  ApiParams p;
  explain::AnswerRequest& a = p.answer;
  a.explain = bool_param(req, "gradcam", config.enable_gradcam);
  a.include_cam = bool_param(req, "cam", false);
  a.cam.aug_smooth = bool_param(req, "aug_smooth", false);
  a.force = bool_param(req, "force", false);
  p.heatmap = bool_param(req, "heatmap", false);
  p.overlay = bool_param(req, "overlay", true);
  const std::string method = req.has_param("method") ? req.get_param_value("method") : config.cam_method;
  try {
    a.cam.method = explain::parse_cam_method(method);
  } catch (const Error& e) {
    throw HttpError(400, e.what());
  }
  if (req.has_param("class")) a.cam.target = req.get_param_value("class").substr(0, 64);
  if (req.has_param("layer")) a.cam.layer = req.get_param_value("layer").substr(0, 256);
  if (a.cam.target.empty()) a.cam.target = "top";
  if (a.cam.layer.empty()) a.cam.layer = "auto";
  if (req.has_param("top_k")) a.top_k = int_param(req, "top_k", 1, 1000, "a whole number of at least 1");
  if (req.has_param("overlay_format")) {
    const std::string v = req.get_param_value("overlay_format");
    if (v != "jpeg" && v != "png") bad_param("overlay_format", v, "jpeg or png");
    p.overlay_format = v == "jpeg" ? vision::ImageFormat::jpeg : vision::ImageFormat::png;
  }
  if (req.has_param("display_size"))
    p.display_size = int_param(req, "display_size", 16, 65536, "a whole number from 16 to 65536");
  if (req.has_param("alpha")) {
    const std::string v = req.get_param_value("alpha");
    char* end = nullptr;
    double alpha = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !(alpha >= 0 && alpha <= 1)) bad_param("alpha", v, "a number from 0 to 1");
    a.alpha = static_cast<float>(alpha);
  }
  if (req.has_param("colormap")) {
    try {
      a.colormap = vision::parse_colormap(req.get_param_value("colormap"));
    } catch (const Error& e) {
      throw HttpError(400, e.what());
    }
  }
  return p;
}

// The uploaded file: multipart field `image`, or the whole body. Kept in memory only.
std::string upload_bytes(const httplib::Request& req) {
  if (req.is_multipart_form_data()) {
    if (!req.has_file("image")) {
      std::string fields;
      for (const auto& [name, part] : req.files) fields += (fields.empty() ? "" : ", ") + name.substr(0, 32);
      throw HttpError(400, "no 'image' field in the form" + (fields.empty() ? std::string() : " (it has: " + fields + ")") +
                               "; send the file as multipart field 'image' or as the raw body");
    }
    std::string bytes = req.get_file_value("image").content;
    if (bytes.empty()) throw HttpError(400, "the 'image' field is empty (0 bytes)");
    return bytes;
  }
  if (req.body.empty()) throw HttpError(400, "no image: the request body is empty");
  // A form or JSON body is a client mistake worth naming, unless it is an image sent with the
  // wrong type (curl --data-binary says application/x-www-form-urlencoded).
  const std::string type = req.get_header_value("Content-Type");
  const bool image_bytes = vision::detect_format(reinterpret_cast<const uint8_t*>(req.body.data()), req.body.size()) !=
                           vision::ImageFormat::unknown;
  if (!image_bytes && (type.rfind("application/x-www-form-urlencoded", 0) == 0 || type.rfind("application/json", 0) == 0 ||
                       type.rfind("text/", 0) == 0))
    throw HttpError(400, "send the image as multipart field 'image' or as the raw body (Content-Type image/* or "
                         "application/octet-stream), not as " + type.substr(0, 64));
  return req.body;
}

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
