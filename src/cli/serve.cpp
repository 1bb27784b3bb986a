// dermal serve [--model M] [--host H] [--port P] [...]: the web page and the HTTP API. Every
// flag has an environment/.env name (docs/api.md); flags win over the environment, which wins
// over the .env file. SIGTERM or SIGINT: finish in-flight requests, refuse new ones, exit 0.
#include <malloc.h>
#include <pthread.h>
#include <unistd.h>

#include <csignal>
#include <map>
#include <thread>

#include "cli/commands.h"
#include "cli/common.h"
#include "serve/server.h"

namespace dermal::cli {

namespace {

struct ServeOptions {
  std::map<std::string, std::string> values;    // setting name -> flag value
  std::map<std::string, CLI::Option*> options;  // setting name -> its flag
  std::string env_file = ".env";
  CLI::Option* env_file_option = nullptr;
};

int run_serve(ServeOptions& o) {
  // Signals go to one thread that waits for them; block them before any other thread exists so
  // that the worker, OpenMP and HTTP threads inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // glibc gives each thread that allocates its own heap arena (up to 8 per core); with 20 HTTP
  // threads that fragments into tens of MB of idle RSS. Two arenas are plenty for one worker.
  mallopt(M_ARENA_MAX, 2);

  serve::ConfigSources sources;
  for (const auto& [name, option] : o.options)
    if (option->count() > 0) sources.flags[name] = o.values[name];
  sources.env = serve::process_env;
  sources.env_file = o.env_file;
  sources.env_file_required = o.env_file_option->count() > 0;
  serve::ServeConfig config = serve::load_config(sources);
  if (config.model_path.empty()) config.model_path = default_model_path();
  config.bundled_model_dirs = bundled_model_dirs();

  serve::Server server(config);
  server.bind();
  std::thread([&server, signals] {
    int received = 0;
    sigwait(&signals, &received);
    server.shutdown();
    sigwait(&signals, &received);  // a second signal: stop waiting for in-flight requests
    std::fprintf(stderr, "dermal serve: second signal, exiting now\n");
    _exit(1);
  }).detach();
  server.run();
  return 0;
}

}  // namespace

Command add_serve(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  auto add = [&](const std::string& flags, const std::string& name, const std::string& help) {
    o->options[name] = app.add_option(flags, o->values[name], help + " [" + name + "]");
  };
  add("--model,-m", "MODEL_PATH", "Model file (.onnx, .keras, .h5); default: the bundled model");
  add("--card", "MODEL_CARD", "Model card JSON (default: the model's sidecar .json or metadata)");
  add("--host", "HOST", "Address to listen on (default 0.0.0.0)");
  add("--port,-p", "PORT", "Port (default 8000; 0: any free port)");
  add("--threads", "THREADS", "Compute threads (default 0: every core)");
  add("--preload-model", "PRELOAD_MODEL", "Load the model at startup (true) or on first use (false); default true");
  add("--enable-gradcam", "ENABLE_GRADCAM", "Default of /api/predict's gradcam parameter; default true");
  add("--max-upload-mb", "MAX_UPLOAD_MB", "Largest request body in MB (413 above); default 25");
  add("--max-image-pixels", "MAX_IMAGE_PIXELS",
      "Largest decoded (working) width x height, after reduction while decoding (422 above); default 16000000");
  add("--max-source-pixels", "MAX_SOURCE_PIXELS",
      "Largest width x height a file may declare when it is reduced while decoding (422 above); default 120000000");
  add("--max-decoder-mb", "MAX_DECODER_MB",
      "Memory a decoder may use besides the decoded image, in MiB (progressive JPEG, HEIC/AVIF, PNG with alpha); "
      "default 36");
  add("--display-size", "DISPLAY_SIZE",
      "Longer side images are decoded to (at least) and overlays drawn at (at most); 0: full size; default 1024");
  add("--max-queue", "MAX_QUEUE", "Requests waiting for the model before 503s; default 16");
  add("--request-timeout-s", "REQUEST_TIMEOUT_S", "Seconds a request may wait and compute (504 after); default 30");
  add("--cam-method", "CAM_METHOD", "Default explanation method; default gradcam");
  add("--log-level", "LOG_LEVEL", "debug, info, warn, error or off; default info");
  add("--lesion-check", "LESION_CHECK", "Is it a skin-lesion image? on (withhold the diagnosis when not), warn or off; default on");
  add("--check-threshold", "LESION_CHECK_THRESHOLD", "Lesion-check threshold; default 0: the fitted one");
  add("--check", "LESION_CHECK_FILE", "Lesion-check statistics; default: <model stem>.check.json beside the model");
  o->env_file_option = app.add_option("--env-file", o->env_file, "Settings file read under the environment (default: ./.env when present)");
  return [o] { return run_serve(*o); };
}

}  // namespace dermal::cli
