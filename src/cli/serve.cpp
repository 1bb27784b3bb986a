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
  for (const serve::Setting& setting : serve::settings()) {
    const std::string def = setting.default_value();
    const char* type = setting.type == serve::SettingType::boolean ? "BOOL"
                       : setting.type == serve::SettingType::integer ? "INT"
                       : setting.type == serve::SettingType::number  ? "NUMBER"
                                                                      : "TEXT";
    o->options[setting.name] =
        app.add_option(setting.flags, o->values[setting.name],
                       setting.help + (def.empty() ? "" : "; default " + def) + " [" + setting.name + "]")
            ->type_name(type);
  }
  o->env_file_option = app.add_option("--env-file", o->env_file, "Settings file read under the environment (default: ./.env when present)");
  return [o] { return run_serve(*o); };
}

}  // namespace dermal::cli
