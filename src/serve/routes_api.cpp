// POST /api/predict (JSON) and POST /api/explain (the overlay as a PNG): the image as multipart
// field `image` or as the raw body; options in the query string.
#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "serve/base64.h"
#include "serve/context.h"
#include "vision/colormap.h"
#include "vision/decode.h"
#include "vision/encode.h"
#include "vision/overlay.h"

namespace dermal::serve {

namespace {

constexpr int kOverlayJpegQuality = 90;

struct ApiParams {
  bool gradcam = true;
  explain::ExplainRequest explain;
  int top_k = 3;
  float alpha = 0.4f;
  vision::Colormap colormap = vision::Colormap::jet;
  bool heatmap = false;  // also return the coloured heatmap alone (the page blends it itself)
  bool overlay = true;   // return the blended overlay (the page, which blends itself, says false)
  bool overlay_jpeg = true;  // overlay_format: jpeg (a photo: a tenth of the PNG's bytes) or png
  bool force = false;    // answer even when the lesion check withholds the diagnosis
  int display_size = 0;  // the overlay's longer side at most (0: DISPLAY_SIZE; never above it)
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
  p.gradcam = bool_param(req, "gradcam", config.enable_gradcam);
  p.heatmap = bool_param(req, "heatmap", false);
  p.overlay = bool_param(req, "overlay", true);
  p.explain.aug_smooth = bool_param(req, "aug_smooth", false);
  p.force = bool_param(req, "force", false);
  const std::string method = req.has_param("method") ? req.get_param_value("method") : config.cam_method;
  try {
    p.explain.method = explain::parse_cam_method(method);
  } catch (const Error& e) {
    throw HttpError(400, e.what());
  }
  if (req.has_param("class")) p.explain.target = req.get_param_value("class").substr(0, 64);
  if (req.has_param("layer")) p.explain.layer = req.get_param_value("layer").substr(0, 256);
  if (p.explain.target.empty()) p.explain.target = "top";
  if (p.explain.layer.empty()) p.explain.layer = "auto";
  if (req.has_param("top_k")) p.top_k = int_param(req, "top_k", 1, 1000, "a whole number of at least 1");
  if (req.has_param("overlay_format")) {
    const std::string v = req.get_param_value("overlay_format");
    if (v != "jpeg" && v != "png") bad_param("overlay_format", v, "jpeg or png");
    p.overlay_jpeg = v == "jpeg";
  }
  if (req.has_param("display_size"))
    p.display_size = int_param(req, "display_size", 16, 65536, "a whole number from 16 to 65536");
  if (req.has_param("alpha")) {
    const std::string v = req.get_param_value("alpha");
    char* end = nullptr;
    double a = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !(a >= 0 && a <= 1)) bad_param("alpha", v, "a number from 0 to 1");
    p.alpha = static_cast<float>(a);
  }
  if (req.has_param("colormap")) {
    try {
      p.colormap = vision::parse_colormap(req.get_param_value("colormap"));
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
  // results
  std::string model;
  explain::Timings timings;
  int width = 0, height = 0;                   // the image as sent
  int decoded_width = 0, decoded_height = 0;   // as decoded (reduced while decoding when big)
  int overlay_width = 0, overlay_height = 0;   // the display size the maps were drawn at
  explain::Prediction prediction;
  bool explained = false;
  std::string method, layer, class_code;
  int class_index = 0;
  std::vector<uint8_t> overlay, heatmap_png;  // the overlay as params.overlay_jpeg says
};

void compute(Context& ctx, Job& job) {
  explain::Classifier& clf = loaded_classifier(ctx);
  job.model = ctx.model.name();
  vision::SourceSize source;
  vision::Image image = decode_upload(clf, job.bytes, job.timings, &source);
  job.bytes = std::string();  // the upload is not needed any more: free it before the work
  job.width = source.width;
  job.height = source.height;
  job.decoded_width = image.width;
  job.decoded_height = image.height;
  if (!job.params.gradcam) {
    job.prediction = clf.predict(image, job.timings);
    return;
  }
  // The maps at the display size: DISPLAY_SIZE, or smaller when the request asks.
  const int display_size = job.params.display_size > 0 && (clf.working_side() <= 0 || job.params.display_size < clf.working_side())
                               ? job.params.display_size
                               : clf.working_side();
  auto start = Clock::now();
  const vision::Image display = vision::fit_within(image, display_size);
  job.timings["display"] = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  job.overlay_width = display.width;
  job.overlay_height = display.height;
  explain::Explanation e = clf.explain(image, job.params.explain, job.timings, display.width, display.height);
  job.prediction = e.prediction;
  job.explained = true;
  job.method = e.method;
  job.layer = e.layer;
  job.class_code = e.class_code;
  job.class_index = e.class_index;
  start = Clock::now();
  vision::Image heat = vision::colorize(e.heatmap, job.params.colormap);
  if (job.params.overlay) {
    const vision::Image blended = vision::blend(display, heat, job.params.alpha);
    job.overlay = job.params.overlay_jpeg ? vision::encode_jpeg(blended, kOverlayJpegQuality) : vision::encode_png(blended);
  }
  if (job.params.heatmap) job.heatmap_png = vision::encode_png(heat);
  job.timings["encode"] = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::shared_ptr<Job> run_job(Context& ctx, const httplib::Request& req, bool force_gradcam) {
  auto job = std::make_shared<Job>();
  job->params = parse_params(req, ctx.config);
  if (force_gradcam) {
    job->params.gradcam = job->params.overlay = true;
    job->params.overlay_jpeg = req.get_param_value("overlay_format") == "jpeg";  // /api/explain: PNG unless asked
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

nlohmann::json timings_json(const explain::Timings& stages) {
  nlohmann::json j = nlohmann::json::object();
  double total = 0;
  for (const auto& [stage, ms] : stages) {
    j[stage] = std::round(ms * 1000) / 1000;
    total += ms;
  }
  j["total"] = std::round(total * 1000) / 1000;
  return j;
}

bool withheld(const Job& job) { return job.prediction.lesion_check.withholds_diagnosis() && !job.params.force; }

void predict_route(Context& ctx, const httplib::Request& req, httplib::Response& res) {
  auto job = run_job(ctx, req, false);
  const auto& stages = current_request().stages;
  const auto& p = job->prediction;
  nlohmann::json j;
  j["model"] = job->model;
  j["image"] = {{"width", job->width}, {"height", job->height},
                {"decoded", {{"width", job->decoded_width}, {"height", job->decoded_height}}}};
  j["lesion_check"] = explain::lesion_check_json(p.lesion_check);
  j["diagnosis_withheld"] = withheld(*job);
  j["top"] = nlohmann::json::array();
  if (withheld(*job)) {  // no class, no probabilities, no map: nothing to mistake for an answer
    j["probabilities"] = nullptr;
    j["gradcam"] = nullptr;
    j["timings_ms"] = timings_json(stages);
    j["request_id"] = current_request().id;
    res.set_header("Server-Timing", server_timing(stages));
    return send_json(res, j);
  }
  const size_t k = std::min<size_t>(static_cast<size_t>(job->params.top_k), p.ranked.size());
  for (size_t i = 0; i < k; ++i)
    j["top"].push_back({{"label", p.ranked[i].code},
                        {"name", p.ranked[i].name},
                        {"malignant", p.ranked[i].malignant},
                        {"probability", p.ranked[i].probability}});
  j["probabilities"] = nlohmann::json::object();
  for (const auto& c : p.ranked) j["probabilities"][c.code] = c.probability;
  if (job->explained) {
    const auto& label = *std::find_if(p.ranked.begin(), p.ranked.end(),
                                      [&](const explain::ClassScore& c) { return c.index == job->class_index; });
    j["gradcam"] = {{"method", job->method},
                    {"layer", job->layer},
                    {"class", job->class_code},
                    {"class_name", label.name},
                    {"class_probability", label.probability},
                    {"alpha", std::round(job->params.alpha * 1000) / 1000},
                    {"colormap", vision::colormap_name(job->params.colormap)},
                    {"width", job->overlay_width},
                    {"height", job->overlay_height}};
    if (job->params.overlay)
      j["gradcam"][job->params.overlay_jpeg ? "overlay_jpeg" : "overlay_png"] =
          base64_encode(job->overlay.data(), job->overlay.size());
    if (job->params.heatmap)
      j["gradcam"]["heatmap_png"] = base64_encode(job->heatmap_png.data(), job->heatmap_png.size());
  } else {
    j["gradcam"] = nullptr;
  }
  j["timings_ms"] = timings_json(stages);
  j["request_id"] = current_request().id;
  res.set_header("Server-Timing", server_timing(stages));
  send_json(res, j);
}

void explain_route(Context& ctx, const httplib::Request& req, httplib::Response& res) {
  auto job = run_job(ctx, req, true);
  if (withheld(*job))
    throw HttpError(422, "not explained: the image " + job->prediction.lesion_check.reason +
                             " (add force=1 to explain it anyway)");
  const auto& stages = current_request().stages;
  res.set_header("Server-Timing", server_timing(stages));
  res.set_header("X-Dermal-Class", job->class_code);
  res.set_header("X-Dermal-Method", job->method);
  res.set_header("X-Dermal-Layer", job->layer);
  char prob[32];
  std::snprintf(prob, sizeof prob, "%.6f", job->prediction.probabilities[static_cast<size_t>(job->class_index)]);
  res.set_header("X-Dermal-Probability", prob);
  res.set_content(std::string(job->overlay.begin(), job->overlay.end()), job->params.overlay_jpeg ? "image/jpeg" : "image/png");
}

}  // namespace

void add_api_routes(Router& r, Context& ctx) {
  r.post("/api/predict", "/api/predict", [&ctx](const httplib::Request& req, httplib::Response& res) { predict_route(ctx, req, res); });
  r.post("/api/explain", "/api/explain", [&ctx](const httplib::Request& req, httplib::Response& res) { explain_route(ctx, req, res); });
}

}  // namespace dermal::serve
