// The server's configuration: command-line flags over the environment over a `.env` file over
// defaults, one name for each setting (the names the Django app it replaces used where it had
// them). A malformed value stops startup with a message naming the setting and where it came from.
//
//   serve::ConfigSources src;
//   src.flags["PORT"] = "9000";                       // from --port
//   src.env = [](const std::string& k) { ... };      // getenv, or a map in tests
//   src.env_file = ".env";
//   serve::ServeConfig c = serve::load_config(src);  // throws Error(invalid_input) on bad values
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace dermal::serve {

enum class LogLevel { debug, info, warn, error, off };
const char* log_level_name(LogLevel l);

// Where a setting's value came from, lowest precedence first.
enum class SettingSource { default_value, env_file, environment, flag };
const char* setting_source_name(SettingSource s);  // "default", ".env", "environment", "flag"

struct ServeConfig {
  bool preload_model = true;        // PRELOAD_MODEL: false loads on the first request that needs it
  bool enable_gradcam = true;       // ENABLE_GRADCAM: default of /api/predict's `gradcam`
  std::string model_path;           // MODEL_PATH: the CLI fills in the bundled default model
  std::string card_path;            // MODEL_CARD: empty = beside the model
  std::string host = "0.0.0.0";     // HOST
  int port = 8000;                  // PORT: 0 = any free port (tests)
  int threads = 0;                  // THREADS: compute threads, 0 = every core
  double max_upload_mb = 25;        // MAX_UPLOAD_MB: request body limit (413 above); a 50 MP phone JPEG is 10-20 MB
  // MAX_IMAGE_PIXELS: width*height of the decoded working image (422 above): big photos are
  // reduced while decoding (JPEG, WebP, PNG), so this bounds memory, not the photo's size.
  int64_t max_image_pixels = 16'000'000;
  int64_t max_source_pixels = 120'000'000;  // MAX_SOURCE_PIXELS: what a file may declare when it is reduced
  double max_decoder_mb = 36;       // MAX_DECODER_MB: a decoder's own memory (progressive JPEG, HEIC, PNG with alpha)
  int display_size = 1024;          // DISPLAY_SIZE: the longer side images are decoded to and overlays drawn at
  int max_queue = 16;               // MAX_QUEUE: requests waiting for the model (503 above)
  // Connections (serve/http_core.h): caps, and deadlines that trickled bytes cannot renew.
  int max_connections = 512;        // MAX_CONNECTIONS: open at once (503 above)
  int max_connections_per_client = 32;  // MAX_CONNECTIONS_PER_CLIENT: open at once from one address
  int listen_backlog = 511;         // LISTEN_BACKLOG: connections the kernel holds until accepted
  double header_timeout_s = 10;     // HEADER_TIMEOUT_S: a request's whole line and headers (408 after)
  double body_timeout_s = 60;       // BODY_TIMEOUT_S: a request's whole body (408 after)
  double keep_alive_timeout_s = 5;  // KEEP_ALIVE_TIMEOUT_S: idle between requests
  int keep_alive_max = 100;         // KEEP_ALIVE_MAX: requests on one connection
  double max_buffered_mb = 64;      // MAX_BUFFERED_MB: requests being received, all connections together
  double rate_limit_per_s = 1;      // RATE_LIMIT_PER_S: compute requests per client address per second (0: no limit)
  int rate_limit_burst = 20;        // RATE_LIMIT_BURST: compute requests one address may send at once
  double request_timeout_s = 30;    // REQUEST_TIMEOUT_S: queue wait plus work (504 above)
  std::string cam_method = "gradcam";  // CAM_METHOD: default explanation method
  LogLevel log_level = LogLevel::info; // LOG_LEVEL: debug | info | warn | error | off
  std::string precision = "card";   // PRECISION: card | f32 | bf16 (the convolutions'; card: the model card's, else f32)
  std::string lesion_check = "on";  // LESION_CHECK: on | warn | off (docs/lesion_check.md)
  double lesion_check_threshold = 0;   // LESION_CHECK_THRESHOLD: 0 = the fitted one
  std::string lesion_check_file;    // LESION_CHECK_FILE: empty = <model stem>.check.json beside the model
  std::vector<std::string> bundled_model_dirs;  // the CLI fills these in: where the check's backbone is found

  std::map<std::string, SettingSource> sources;  // setting -> where its value came from

  size_t max_upload_bytes() const { return static_cast<size_t>(max_upload_mb * 1024 * 1024); }
  int http_threads() const { return std::max(8, max_queue + 4); }  // enough to answer 503s quickly
};

// The one table of settings: what `dermal serve --help`, load_config, /health?verbose=1, the
// debug log line and docs/api.md's table are made from. Each reads its value into ServeConfig
// (throwing invalid_input that names the setting, its value, where it came from and what was
// expected) and prints it back; its default is what it prints for ServeConfig{}.
enum class SettingType { boolean, integer, number, text, choice };
struct Setting {
  std::string name;   // PORT: the environment and .env name
  std::string flags;  // "--port,-p": the command-line flag(s)
  SettingType type;
  std::string help;   // one line, without the default
  std::function<void(ServeConfig&, const std::string& value, const std::string& from)> read;
  std::function<std::string(const ServeConfig&)> print;
  std::string default_value() const;
};
const std::vector<Setting>& settings();
// Every setting's name, in the table's order (the order /health?verbose=1 shows them).
const std::vector<std::string>& config_names();

struct ConfigSources {
  std::map<std::string, std::string> flags;                            // by setting name
  std::function<std::optional<std::string>(const std::string&)> env;  // null: no environment
  std::string env_file = ".env";
  bool env_file_required = false;  // true when the user named the file: missing is an error
};

// The process environment, for ConfigSources::env.
std::optional<std::string> process_env(const std::string& name);

// Parses `.env` text: KEY=VALUE lines, '#' comments, optional `export `, optional quotes.
// Throws invalid_input naming the line for a line that is none of these.
std::map<std::string, std::string> parse_env_file(const std::string& text, const std::string& path);

ServeConfig load_config(const ConfigSources& sources);

// The effective settings as name -> printable value (nothing secret is configured here).
std::map<std::string, std::string> config_values(const ServeConfig& c);

}  // namespace dermal::serve
