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

[[noreturn]] void bad(const std::string& name, const std::string& value, const std::string& from,
                      const std::string& expected) {
  throw Error(ErrorKind::invalid_input, name + "='" + value + "' (from " + from + ") is not valid: expected " + expected);
}

std::string number_text(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// The table's rows by type, each bound to its ServeConfig member.
Setting boolean(const char* name, const char* flags, bool ServeConfig::*member, const char* help) {
  return {name, flags, SettingType::boolean, help,
          [=](ServeConfig& c, const std::string& value, const std::string& from) {
            const std::string v = lower(trim(value));
            if (v == "1" || v == "true" || v == "yes" || v == "on") c.*member = true;
            else if (v == "0" || v == "false" || v == "no" || v == "off") c.*member = false;
            else bad(name, value, from, "true or false (also 1/0, yes/no, on/off)");
          },
          [=](const ServeConfig& c) { return std::string(c.*member ? "true" : "false"); }};
}

template <typename Int>
Setting integer(const char* name, const char* flags, Int ServeConfig::*member, int64_t lo, int64_t hi, const char* help) {
  return {name, flags, SettingType::integer, help,
          [=](ServeConfig& c, const std::string& value, const std::string& from) {
            const std::string v = trim(value);
            char* end = nullptr;
            errno = 0;
            const long long x = std::strtoll(v.c_str(), &end, 10);
            if (v.empty() || *end != '\0' || errno == ERANGE || x < lo || x > hi)
              bad(name, value, from, "a whole number from " + std::to_string(lo) + " to " + std::to_string(hi));
            c.*member = static_cast<Int>(x);
          },
          [=](const ServeConfig& c) { return std::to_string(c.*member); }};
}

// A number in (lo, hi]; `zero_ok`: 0 is accepted too (it means "not set").
Setting number(const char* name, const char* flags, double ServeConfig::*member, double lo, double hi, const char* help,
               bool zero_ok = false) {
  return {name, flags, SettingType::number, help,
          [=](ServeConfig& c, const std::string& value, const std::string& from) {
            const std::string v = trim(value);
            char* end = nullptr;
            errno = 0;
            const double x = std::strtod(v.c_str(), &end);
            const bool ok = !v.empty() && *end == '\0' && errno != ERANGE && std::isfinite(x) &&
                            ((x > lo && x <= hi) || (zero_ok && x == 0));
            if (!ok)
              bad(name, value, from,
                  (zero_ok ? "0 or a number greater than " : "a number greater than ") + number_text(lo) + " and at most " +
                      number_text(hi));
            c.*member = x;
          },
          [=](const ServeConfig& c) { return number_text(c.*member); }};
}

Setting text(const char* name, const char* flags, std::string ServeConfig::*member, const char* help) {
  return {name, flags, SettingType::text, help,
          [=](ServeConfig& c, const std::string& value, const std::string&) { c.*member = trim(value); },
          [=](const ServeConfig& c) { return c.*member; }};
}

// One of `choices` (lower case).
Setting choice(const char* name, const char* flags, std::string ServeConfig::*member, std::vector<std::string> choices,
               const char* help) {
  return {name, flags, SettingType::choice, help,
          [=](ServeConfig& c, const std::string& value, const std::string& from) {
            const std::string v = lower(trim(value));
            if (std::find(choices.begin(), choices.end(), v) == choices.end()) {
              std::string all;
              for (size_t i = 0; i < choices.size(); ++i)
                all += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + choices[i];
              bad(name, value, from, all);
            }
            c.*member = v;
          },
          [=](const ServeConfig& c) { return c.*member; }};
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

const char* setting_source_name(SettingSource s) {
  switch (s) {
    case SettingSource::default_value: return "default";
    case SettingSource::env_file: return ".env";
    case SettingSource::environment: return "environment";
    case SettingSource::flag: return "flag";
  }
  return "default";
}

std::string Setting::default_value() const { return print(ServeConfig{}); }

const std::vector<Setting>& settings() {
  static const std::vector<Setting> table = [] {
    std::vector<Setting> t{
        boolean("PRELOAD_MODEL", "--preload-model", &ServeConfig::preload_model,
                "Load the model at startup (true) or on first use (false)"),
        boolean("ENABLE_GRADCAM", "--enable-gradcam", &ServeConfig::enable_gradcam, "Default of /api/predict's gradcam parameter"),
        text("MODEL_PATH", "--model,-m", &ServeConfig::model_path, "Model file (.onnx, .keras, .h5, TensorFlow.js model.json); empty: the bundled model"),
        text("MODEL_CARD", "--card", &ServeConfig::card_path, "Model card JSON; empty: the model's sidecar .json or metadata"),
        Setting{"HOST", "--host", SettingType::text, "Address to listen on",
                [](ServeConfig& c, const std::string& value, const std::string& from) {
                  c.host = trim(value);
                  if (c.host.empty() || c.host.find_first_of(" /") != std::string::npos)
                    bad("HOST", value, from, "an address such as 0.0.0.0 or 127.0.0.1");
                },
                [](const ServeConfig& c) { return c.host; }},
        integer("PORT", "--port,-p", &ServeConfig::port, 0, 65535, "Port (0: any free port)"),
        integer("THREADS", "--threads", &ServeConfig::threads, 0, 1024, "Compute threads (0: every core)"),
        number("MAX_UPLOAD_MB", "--max-upload-mb", &ServeConfig::max_upload_mb, 0, 1024, "Largest request body in MB (413 above)"),
        integer("MAX_IMAGE_PIXELS", "--max-image-pixels", &ServeConfig::max_image_pixels, 1, 1'000'000'000,
                "Largest decoded (working) width x height, after reduction while decoding (422 above)"),
        integer("MAX_SOURCE_PIXELS", "--max-source-pixels", &ServeConfig::max_source_pixels, 1, 4'000'000'000,
                "Largest width x height a file may declare when it is reduced while decoding (422 above)"),
        number("MAX_DECODER_MB", "--max-decoder-mb", &ServeConfig::max_decoder_mb, 1, 65536,
               "Memory a decoder may use besides the decoded image, in MiB (progressive JPEG, HEIC/AVIF, PNG with alpha)"),
        integer("DISPLAY_SIZE", "--display-size", &ServeConfig::display_size, 0, 65536,
                "Longer side images are decoded to (at least) and overlays drawn at (at most); 0: full size"),
        integer("MAX_QUEUE", "--max-queue", &ServeConfig::max_queue, 0, 10'000, "Requests waiting for the model before 503s"),
        number("REQUEST_TIMEOUT_S", "--request-timeout-s", &ServeConfig::request_timeout_s, 0, 3600,
               "Seconds a request may wait and compute (504 after)"),
        integer("MAX_CONNECTIONS", "--max-connections", &ServeConfig::max_connections, 1, 100'000,
                "Connections open at once, all clients (503 above)"),
        integer("MAX_CONNECTIONS_PER_CLIENT", "--max-connections-per-client", &ServeConfig::max_connections_per_client, 1,
                100'000, "Connections open at once from one client address (503 above)"),
        integer("LISTEN_BACKLOG", "--listen-backlog", &ServeConfig::listen_backlog, 1, 65'535,
                "Connections the kernel holds until the server accepts them (capped by net.core.somaxconn)"),
        number("HEADER_TIMEOUT_S", "--header-timeout-s", &ServeConfig::header_timeout_s, 0, 3600,
               "Seconds from a request's first byte to the end of its headers (408 after)"),
        number("BODY_TIMEOUT_S", "--body-timeout-s", &ServeConfig::body_timeout_s, 0, 3600,
               "Seconds from the end of a request's headers to the end of its body (408 after)"),
        number("KEEP_ALIVE_TIMEOUT_S", "--keep-alive-timeout-s", &ServeConfig::keep_alive_timeout_s, 0, 3600,
               "Seconds a connection may stay idle between requests"),
        integer("KEEP_ALIVE_MAX", "--keep-alive-max", &ServeConfig::keep_alive_max, 1, 1'000'000,
                "Requests on one connection"),
        number("RATE_LIMIT_PER_S", "--rate-limit-per-s", &ServeConfig::rate_limit_per_s, 0, 1e6,
               "Compute requests (predict, explain, infer) per client address per second, on average (429 above; 0: no limit)",
               true),
        integer("RATE_LIMIT_BURST", "--rate-limit-burst", &ServeConfig::rate_limit_burst, 1, 1'000'000,
                "Compute requests one client address may send at once"),
        number("MAX_BUFFERED_MB", "--max-buffered-mb", &ServeConfig::max_buffered_mb, 0, 65536,
               "Request bytes being received, all connections together, in MiB (reading pauses above)"),
        Setting{"CAM_METHOD", "--cam-method", SettingType::choice, "Default explanation method",
                [](ServeConfig& c, const std::string& value, const std::string& from) {
                  try {
                    c.cam_method = explain::cam_method_name(explain::parse_cam_method(lower(trim(value))));
                  } catch (const Error&) {
                    std::string all;
                    for (const auto& m : explain::cam_method_names()) all += (all.empty() ? "" : ", ") + m;
                    bad("CAM_METHOD", value, from, "one of " + all);
                  }
                },
                [](const ServeConfig& c) { return c.cam_method; }},
        Setting{"LOG_LEVEL", "--log-level", SettingType::choice, "debug, info, warn, error or off",
                [](ServeConfig& c, const std::string& value, const std::string& from) {
                  const std::string v = lower(trim(value));
                  if (v == "debug") c.log_level = LogLevel::debug;
                  else if (v == "info") c.log_level = LogLevel::info;
                  else if (v == "warn" || v == "warning") c.log_level = LogLevel::warn;
                  else if (v == "error") c.log_level = LogLevel::error;
                  else if (v == "off" || v == "none") c.log_level = LogLevel::off;
                  else bad("LOG_LEVEL", value, from, "debug, info, warn, error or off");
                },
                [](const ServeConfig& c) { return std::string(log_level_name(c.log_level)); }},
        choice("PRECISION", "--precision", &ServeConfig::precision, {"card", "f32", "bf16"},
               "Convolutions in f32 or bf16 (on CPUs with AVX-512 BF16; f32 elsewhere); card: the model card's"),
        choice("LESION_CHECK", "--lesion-check", &ServeConfig::lesion_check, {"on", "warn", "off"},
               "Is it a skin-lesion image? on (withhold the diagnosis when not), warn or off"),
        number("LESION_CHECK_THRESHOLD", "--check-threshold", &ServeConfig::lesion_check_threshold, 0, 1e6,
               "Lesion-check threshold (0: the fitted one)", true),
        text("LESION_CHECK_FILE", "--check", &ServeConfig::lesion_check_file,
             "Lesion-check statistics; empty: <model stem>.check.json beside the model"),
    };
    return t;
  }();
  return table;
}

const std::vector<std::string>& config_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& s : settings()) n.push_back(s.name);
    return n;
  }();
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
  for (const Setting& setting : settings()) {
    const std::string& name = setting.name;
    // The highest-precedence value of the setting, or nothing (the default stays).
    SettingSource source = SettingSource::default_value;
    std::string value, from;
    if (auto f = src.flags.find(name); f != src.flags.end()) {
      source = SettingSource::flag, value = f->second, from = "the command line";
    } else if (auto e = src.env ? src.env(name) : std::nullopt) {
      source = SettingSource::environment, value = *e, from = "the environment";
    } else if (auto f = file.find(name); f != file.end()) {
      source = SettingSource::env_file, value = f->second, from = src.env_file;
    }
    c.sources[name] = source;
    if (source != SettingSource::default_value) setting.read(c, value, from);
  }
  return c;
}

std::map<std::string, std::string> config_values(const ServeConfig& c) {
  std::map<std::string, std::string> out;
  for (const Setting& s : settings()) out[s.name] = s.print(c);
  return out;
}

}  // namespace dermal::serve
