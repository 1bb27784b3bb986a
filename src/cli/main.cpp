// dermal: skin-lesion classification with Grad-CAM explanations.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "cli/commands.h"
#include "engine/error.h"

int main(int argc, char** argv) {
  // OpenMP reads its wait policy when the library loads, before main. Its default lets compute
  // threads spin after each parallel region, stealing the cores that the server's HTTP threads
  // and PNG encoding need (measured on 2 shared cores: 3-10x slower requests). The server
  // re-executes itself with threads that sleep when idle, unless the user chose a policy.
  if (argc > 1 && std::strcmp(argv[1], "serve") == 0 && std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);  // on failure, carry on with the default policy
  }
  CLI::App app{"Dermal: skin-lesion classification with Grad-CAM explanations (not a medical device)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("dermal ") + DERMAL_VERSION);
  std::map<CLI::App*, dermal::cli::Command> commands;
  auto add = [&](dermal::cli::Command (*adder)(CLI::App&), const char* name, const char* help) {
    CLI::App* sub = app.add_subcommand(name, help);
    commands[sub] = adder(*sub);
  };
  add(dermal::cli::add_predict, "predict", "Classify images: the most likely lesion types");
  add(dermal::cli::add_explain, "explain", "Show which part of an image drove the answer (Grad-CAM family)");
  add(dermal::cli::add_eval, "eval", "Measure a model on a labelled image folder");
  add(dermal::cli::add_fit_check, "fit-check", "Fit the lesion check for a model from in-domain images");
  add(dermal::cli::add_serve, "serve", "Serve the web page and the HTTP API (docs/api.md)");
  add(dermal::cli::add_inspect, "inspect", "Show a model's inputs, outputs, layers, shapes and memory plan");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [sub, run] : commands)
      if (sub->parsed()) return run();
  } catch (const dermal::Error& e) {
    std::fprintf(stderr, "dermal: %s\n", e.what());
    switch (e.kind()) {
      case dermal::ErrorKind::invalid_input:
      case dermal::ErrorKind::too_large: return 2;
      case dermal::ErrorKind::invalid_model:
      case dermal::ErrorKind::unsupported: return 3;
      case dermal::ErrorKind::resources: return 71;  // sysexits' EX_OSERR: the machine, not the input
      case dermal::ErrorKind::internal: return 70;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dermal: unexpected error: %s\n", e.what());
    return 70;
  }
  return 1;
}
