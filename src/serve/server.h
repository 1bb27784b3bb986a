// `dermal serve`: the web page, the JSON API, health, memory and metrics routes, and the Open
// Inference Protocol v2 routes, on cpp-httplib. One inference runs at a time on all the cores;
// the HTTP threads parse, queue and wait. See docs/api.md for every route.
//
//   serve::ServeConfig config = serve::load_config(sources);
//   serve::Server server(config);          // loads the model now when PRELOAD_MODEL is true
//   int port = server.bind();              // PORT 0: any free port
//   std::thread t([&] { server.run(); });  // serves until shutdown()
//   ...
//   server.shutdown();                     // refuse new requests, finish in-flight ones
//   t.join();
#pragma once

#include <memory>

#include "serve/config.h"
#include "serve/inference_queue.h"
#include "serve/model_host.h"

namespace dermal::serve {

class Server {
 public:
  explicit Server(const ServeConfig& config);
  ~Server();

  // Binds HOST:PORT and returns the port. Throws Error(invalid_input) when it cannot.
  int bind();
  // Serves until shutdown(); returns once in-flight requests have been answered and the
  // inference worker has finished.
  void run();
  // From any thread (not from a signal handler): new requests get 503, the listening socket
  // closes, requests already read are answered.
  void shutdown();

  const ServeConfig& config() const;
  ModelHost& model();
  InferenceQueue& queue();  // tests hold the worker with a job of their own

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dermal::serve
