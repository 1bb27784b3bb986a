#include "serve/page.h"

#include <cstdlib>
#include <sstream>

#include "explain/cam.h"
#include "serve/context.h"

namespace dermal::serve {

std::string choose_language(const std::string& accept_language) {
  // "vi-VN,vi;q=0.9,en-US;q=0.8": the language range with the highest q (first wins ties).
  std::string best = "en";
  double best_q = -1;
  std::stringstream ranges(accept_language);
  std::string range;
  while (std::getline(ranges, range, ',')) {
    std::string tag = range.substr(0, range.find(';'));
    tag.erase(0, tag.find_first_not_of(' '));
    tag.erase(tag.find_last_not_of(' ') + 1);
    double q = 1;
    if (auto at = range.find("q="); at != std::string::npos) q = std::atof(range.c_str() + at + 2);
    std::string primary = tag.substr(0, tag.find('-'));
    for (auto& c : primary) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if ((primary == "vi" || primary == "en") && q > best_q && q > 0) {
      best = primary;
      best_q = q;
    }
  }
  return best;
}

std::string render_page(const std::string& lang, const std::string& config_json) {
  std::string page(kWebPage);
  auto fill = [&](const std::string& key, const std::string& value) {
    for (size_t at = page.find(key); at != std::string::npos; at = page.find(key, at + value.size()))
      page.replace(at, key.size(), value);
  };
  fill("{{LANG}}", lang);
  fill("{{CONFIG}}", config_json);
  return page;
}

namespace {

std::string method_label(const std::string& name) {
  if (name == "gradcam") return "Grad-CAM";
  if (name == "gradcam++") return "Grad-CAM++";
  if (name == "hirescam") return "HiResCAM";
  if (name == "xgradcam") return "XGrad-CAM";
  if (name == "layercam") return "LayerCAM";
  if (name == "eigencam") return "Eigen-CAM";
  if (name == "scorecam") return "Score-CAM (slow)";
  return name;
}

}  // namespace

void add_page_routes(Router& r, Context& ctx) {
  r.get("/", "/", [&ctx](const httplib::Request& req, httplib::Response& res) {
    std::string lang = req.has_param("lang") ? req.get_param_value("lang") : choose_language(req.get_header_value("Accept-Language"));
    if (lang != "vi") lang = "en";
    nlohmann::json methods = nlohmann::json::array();
    for (const auto& m : explain::cam_method_names()) methods.push_back({{"name", m}, {"label", method_label(m)}});
    nlohmann::json config{{"lang", lang},
                          {"model", ctx.model.name()},
                          {"methods", methods},
                          {"method", ctx.config.cam_method},
                          {"gradcam", ctx.config.enable_gradcam},
                          {"max_upload_mb", ctx.config.max_upload_mb}};
    // Inside <script>: "</" must not appear; JSON allows "<\/".
    std::string json = to_json_text(config);
    for (size_t at = json.find("</"); at != std::string::npos; at = json.find("</", at + 3)) json.replace(at, 2, "<\\/");
    res.headers.erase("Content-Security-Policy");  // the default one forbids the page's own script
    res.set_header("Content-Security-Policy",
                   "default-src 'none'; img-src 'self' data: blob:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
                   "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'");
    res.set_header("Vary", "Accept-Language");
    res.set_content(render_page(lang, json), "text/html; charset=utf-8");
  });
}

}  // namespace dermal::serve
