// Starts the real server in this process on 127.0.0.1 and a free port, for tests that call it
// with a real HTTP client (httplib::Client) over the loopback socket.
//
//   ServeConfig c = test_config();
//   c.max_queue = 0;
//   RunningServer s(c);
//   auto res = s.client().Get("/health");
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "explain/classifier.h"
#include "serve/server.h"

namespace dermal::test {

// The bundled default model, its name (the OIP model name) and its square input size.
inline const std::string kBundledModelName = "skinnet_mnv2_ham_isic224";
constexpr int kBundledInputSize = 224;
inline std::string bundled_model() { return std::string(DERMAL_SOURCE_DIR) + "/models/" + kBundledModelName + ".onnx"; }

// Loopback, any free port, the bundled model, no log output, no rate limit (the tests send many
// requests from one address; Connections.RateLimit tests it): as flags, with neither the
// environment nor a .env file, so that the settings where the tests run cannot leak in.
inline serve::ServeConfig test_config() {
  serve::ConfigSources s;
  s.flags = {{"HOST", "127.0.0.1"}, {"PORT", "0"}, {"MODEL_PATH", bundled_model()}, {"LOG_LEVEL", "off"},
             {"RATE_LIMIT_PER_S", "0"}};
  s.env_file = "";
  return serve::load_config(s);
}

class RunningServer {
 public:
  explicit RunningServer(const serve::ServeConfig& c) : server(std::make_unique<serve::Server>(c)) {
    port = server->bind();
    thread = std::thread([this] { server->run(); });
  }
  ~RunningServer() { stop(); }
  void stop() {
    if (!thread.joinable()) return;
    server->shutdown();
    thread.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60);
    c.set_write_timeout(60);
    return c;
  }

  std::unique_ptr<serve::Server> server;
  int port = 0;
  std::thread thread;
};

inline nlohmann::json json_of(const httplib::Result& r) { return nlohmann::json::parse(r->body); }

// Holds the inference worker until release() (or destruction), to fill the queue on purpose.
class WorkerHold {
 public:
  explicit WorkerHold(serve::InferenceQueue& q) : state_(std::make_shared<State>()) {
    auto s = state_;
    if (!q.try_submit([s] {
          std::unique_lock<std::mutex> lock(s->m);
          s->running = true;
          s->cv.notify_all();
          s->cv.wait(lock, [&] { return s->released; });
        }))
      throw std::runtime_error("could not queue the holding job");
    std::unique_lock<std::mutex> lock(s->m);
    s->cv.wait(lock, [&] { return s->running; });
  }
  ~WorkerHold() { release(); }
  void release() {
    std::lock_guard<std::mutex> lock(state_->m);
    state_->released = true;
    state_->cv.notify_all();
  }

 private:
  struct State {
    std::mutex m;
    std::condition_variable cv;
    bool running = false, released = false;
  };
  std::shared_ptr<State> state_;
};

// A suite sharing one server on the bundled model, and a Classifier on the same model that
// computes the answers the server must give.
class ServedModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new RunningServer(test_config());
    reference_ = explain::Classifier::load(bundled_model()).release();
  }
  static void TearDownTestSuite() {
    delete server_;
    delete reference_;
    server_ = nullptr;
    reference_ = nullptr;
  }
  static httplib::Client client() { return server_->client(); }

  static inline RunningServer* server_ = nullptr;
  static inline explain::Classifier* reference_ = nullptr;
};

}  // namespace dermal::test
