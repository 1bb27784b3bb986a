#include "serve/api_request.h"

#include <cstdlib>

#include "serve/router.h"
#include "vision/colormap.h"
#include "vision/decode.h"

namespace dermal::serve {

namespace {

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

}  // namespace

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

}  // namespace dermal::serve
