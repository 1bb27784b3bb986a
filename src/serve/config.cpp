#include "serve/config.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/error.h"
#include "explain/cam.h"

namespace dermal::serve {

namespace {

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// One raw value and where it came from, for messages.
struct Raw {
  std::string value, source;
};

[[noreturn]] void bad(const std::string& name, const Raw& raw, const std::string& expected) {
  throw Error(ErrorKind::invalid_input, name + "='" + raw.value + "' (from " + raw.source + ") is not valid: expected " +
                                            expected);
}

bool parse_bool(const std::string& name, const Raw& raw) {
  std::string v = lower(trim(raw.value));
  if (v == "1" || v == "true" || v == "yes" || v == "on") return true;
  if (v == "0" || v == "false" || v == "no" || v == "off") return false;
  bad(name, raw, "true or false (also 1/0, yes/no, on/off)");
}

int64_t parse_int(const std::string& name, const Raw& raw, int64_t lo, int64_t hi) {
  std::string v = trim(raw.value);
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno == ERANGE || x < lo || x > hi)
    bad(name, raw, "a whole number from " + std::to_string(lo) + " to " + std::to_string(hi));
  return x;
}

double parse_number(const std::string& name, const Raw& raw, double lo, double hi) {
  std::string v = trim(raw.value);
  char* end = nullptr;
  errno = 0;
  double x = std::strtod(v.c_str(), &end);
  std::ostringstream range;
  range << "a number greater than " << lo << " and at most " << hi;
  if (v.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(x) || x <= lo || x > hi) bad(name, raw, range.str());
  return x;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

}  // namespace

const char* log_level_name(LogLevel l) {
  switch (l) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warn";
    case LogLevel::error: return "error";
    case LogLevel::off: return "off";
  }
  return "info";
}

const std::vector<std::string>& config_names() {
  static const std::vector<std::string> names{
      "PRELOAD_MODEL", "ENABLE_GRADCAM", "MODEL_PATH",        "MODEL_CARD", "HOST",       "PORT",     "THREADS",
      "MAX_UPLOAD_MB", "MAX_IMAGE_PIXELS", "MAX_SOURCE_PIXELS", "MAX_DECODER_MB", "DISPLAY_SIZE", "MAX_QUEUE", "REQUEST_TIMEOUT_S", "CAM_METHOD", "LOG_LEVEL",
      "LESION_CHECK", "LESION_CHECK_THRESHOLD", "LESION_CHECK_FILE"};
  return names;
}

std::optional<std::string> process_env(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (!v) return std::nullopt;
  return std::string(v);
}

std::map<std::string, std::string> parse_env_file(const std::string& text, const std::string& path) {
  std::map<std::string, std::string> out;
  std::istringstream lines(text);
  std::string line;
  int number = 0;
  while (std::getline(lines, line)) {
    ++number;
    std::string s = trim(line);
    if (s.empty() || s[0] == '#') continue;
    if (s.rfind("export ", 0) == 0) s = trim(s.substr(7));
    const size_t eq = s.find('=');
    std::string key = eq == std::string::npos ? "" : trim(s.substr(0, eq));
    bool key_ok = !key.empty() && !std::isdigit(static_cast<unsigned char>(key[0]));
    for (char c : key) key_ok = key_ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
    if (!key_ok)
      throw Error(ErrorKind::invalid_input, path + " line " + std::to_string(number) + ": expected KEY=VALUE");
    std::string value = trim(s.substr(eq + 1));
    if (value.size() >= 2 && (value[0] == '"' || value[0] == '\'') && value.back() == value[0]) {
      value = value.substr(1, value.size() - 2);
    } else if (const size_t hash = value.find(" #"); hash != std::string::npos) {
      value = trim(value.substr(0, hash));  // an unquoted value ends at a comment
    }
    out[key] = value;
  }
  return out;
}

ServeConfig load_config(const ConfigSources& src) {
  std::map<std::string, std::string> file;
  std::error_code ec;
  if (!src.env_file.empty() && std::filesystem::is_regular_file(src.env_file, ec)) {
    file = parse_env_file(read_text(src.env_file), src.env_file);
  } else if (src.env_file_required) {
    throw Error(ErrorKind::invalid_input, "the env file '" + src.env_file + "' does not exist");
  }
  ServeConfig c;
  // The highest-precedence raw value of a setting, or nothing (the default stays).
  auto lookup = [&](const std::string& name) -> std::optional<Raw> {
    if (auto f = src.flags.find(name); f != src.flags.end()) return Raw{f->second, "the command line"};
    if (src.env)
      if (auto e = src.env(name)) return Raw{*e, "the environment"};
    if (auto f = file.find(name); f != file.end()) return Raw{f->second, src.env_file};
    return std::nullopt;
  };
  for (const auto& name : config_names()) {
    auto raw = lookup(name);
    c.sources[name] = !raw ? "default" : raw->source == "the command line" ? "flag"
                                       : raw->source == "the environment"  ? "environment"
                                                                           : ".env";
    if (!raw) continue;
    const Raw& r = *raw;
    if (name == "PRELOAD_MODEL") c.preload_model = parse_bool(name, r);
    else if (name == "ENABLE_GRADCAM") c.enable_gradcam = parse_bool(name, r);
    else if (name == "MODEL_PATH") c.model_path = trim(r.value);
    else if (name == "MODEL_CARD") c.card_path = trim(r.value);
    else if (name == "HOST") {
      c.host = trim(r.value);
      if (c.host.empty() || c.host.find_first_of(" /") != std::string::npos) bad(name, r, "an address such as 0.0.0.0 or 127.0.0.1");
    } else if (name == "PORT") c.port = static_cast<int>(parse_int(name, r, 0, 65535));
    else if (name == "THREADS") c.threads = static_cast<int>(parse_int(name, r, 0, 1024));
    else if (name == "MAX_UPLOAD_MB") c.max_upload_mb = parse_number(name, r, 0, 1024);
    else if (name == "MAX_IMAGE_PIXELS") c.max_image_pixels = parse_int(name, r, 1, 1'000'000'000);
    else if (name == "MAX_SOURCE_PIXELS") c.max_source_pixels = parse_int(name, r, 1, 4'000'000'000);
    else if (name == "MAX_DECODER_MB") c.max_decoder_mb = parse_number(name, r, 1, 65536);
    else if (name == "DISPLAY_SIZE") c.display_size = static_cast<int>(parse_int(name, r, 0, 65536));
    else if (name == "MAX_QUEUE") c.max_queue = static_cast<int>(parse_int(name, r, 0, 10'000));
    else if (name == "REQUEST_TIMEOUT_S") c.request_timeout_s = parse_number(name, r, 0, 3600);
    else if (name == "CAM_METHOD") {
      try {
        c.cam_method = explain::cam_method_name(explain::parse_cam_method(lower(trim(r.value))));
      } catch (const Error&) {
        std::string all;
        for (const auto& m : explain::cam_method_names()) all += (all.empty() ? "" : ", ") + m;
        bad(name, r, "one of " + all);
      }
    } else if (name == "LOG_LEVEL") {
      std::string v = lower(trim(r.value));
      if (v == "debug") c.log_level = LogLevel::debug;
      else if (v == "info") c.log_level = LogLevel::info;
      else if (v == "warn" || v == "warning") c.log_level = LogLevel::warn;
      else if (v == "error") c.log_level = LogLevel::error;
      else if (v == "off" || v == "none") c.log_level = LogLevel::off;
      else bad(name, r, "debug, info, warn, error or off");
    } else if (name == "LESION_CHECK") {
      c.lesion_check = lower(trim(r.value));
      if (c.lesion_check != "on" && c.lesion_check != "warn" && c.lesion_check != "off") bad(name, r, "on, warn or off");
    } else if (name == "LESION_CHECK_THRESHOLD") {
      c.lesion_check_threshold = trim(r.value) == "0" ? 0 : parse_number(name, r, 0, 1e6);
    } else if (name == "LESION_CHECK_FILE") {
      c.lesion_check_file = trim(r.value);
    }
  }
  return c;
}

std::map<std::string, std::string> config_values(const ServeConfig& c) {
  auto num = [](double v) {
    std::ostringstream s;
    s << v;
    return s.str();
  };
  return {{"PRELOAD_MODEL", c.preload_model ? "true" : "false"},
          {"ENABLE_GRADCAM", c.enable_gradcam ? "true" : "false"},
          {"MODEL_PATH", c.model_path},
          {"MODEL_CARD", c.card_path},
          {"HOST", c.host},
          {"PORT", std::to_string(c.port)},
          {"THREADS", std::to_string(c.threads)},
          {"MAX_UPLOAD_MB", num(c.max_upload_mb)},
          {"MAX_IMAGE_PIXELS", std::to_string(c.max_image_pixels)},
          {"MAX_SOURCE_PIXELS", std::to_string(c.max_source_pixels)},
          {"MAX_DECODER_MB", num(c.max_decoder_mb)},
          {"DISPLAY_SIZE", std::to_string(c.display_size)},
          {"MAX_QUEUE", std::to_string(c.max_queue)},
          {"REQUEST_TIMEOUT_S", num(c.request_timeout_s)},
          {"CAM_METHOD", c.cam_method},
          {"LOG_LEVEL", log_level_name(c.log_level)},
          {"LESION_CHECK", c.lesion_check},
          {"LESION_CHECK_THRESHOLD", num(c.lesion_check_threshold)},
          {"LESION_CHECK_FILE", c.lesion_check_file}};
}

}  // namespace dermal::serve
