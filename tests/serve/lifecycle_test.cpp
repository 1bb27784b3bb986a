// The server under load and over its life: lazy loading, limits, a full queue, timeouts,
// draining on shutdown, and the real binary stopped by SIGTERM.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <regex>
#include <sstream>

#include "engine/dnnl_util.h"
#include "serve/serve_fixture.h"
#include "vision/image_files.h"

extern char** environ;

namespace dermal::test {
namespace {

std::string jpeg(const std::string& id = "ISIC_0024306") {
  Bytes b = read_bytes(ham_image(id));
  return std::string(b.begin(), b.end());
}

httplib::Result predict(const RunningServer& s, const std::string& query = "") {
  return s.client().Post(("/api/predict" + query).c_str(), jpeg(), "image/jpeg");
}

TEST(Lifecycle, LazyLoadingLoadsOnTheFirstRequestThatNeedsIt) {
  serve::ServeConfig c = test_config();
  c.preload_model = false;
  RunningServer s(c);
  auto cl = s.client();
  // Nothing has needed the model yet: health and readiness say so without loading it.
  auto v = json_of(cl.Get("/health?verbose=1"));
  EXPECT_EQ(v["model"]["loaded"], false);
  EXPECT_EQ(v["model"]["name"], kBundledModelName);
  EXPECT_EQ(v["config"]["PRELOAD_MODEL"], "false");
  auto ready = cl.Get("/v2/health/ready");
  EXPECT_EQ(ready->status, 200);  // it can take requests: the first one loads the model
  EXPECT_EQ(json_of(ready)["model_loaded"], false);
  EXPECT_EQ(cl.Get("/v2/models/" + kBundledModelName + "/ready")->status, 503);
  EXPECT_EQ(json_of(cl.Get("/memory-status"))["memory"]["model_loaded"], false);
  EXPECT_NE(cl.Get("/metrics")->body.find("dermal_model_loaded 0"), std::string::npos);
  EXPECT_FALSE(s.server->model().loaded());
  // The first prediction loads it and answers.
  auto r = predict(s);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json_of(r)["top"][0]["label"], "nv");
  EXPECT_TRUE(s.server->model().loaded());
  auto loaded = json_of(cl.Get("/health?verbose=1"));
  EXPECT_EQ(loaded["model"]["loaded"], true);
  EXPECT_EQ(loaded["model"]["precision"]["asked"], "f32");  // the bundled card says nothing: f32
  EXPECT_EQ(loaded["model"]["precision"]["running"], "f32");
  EXPECT_EQ(loaded["model"]["precision"]["note"], nullptr);
  EXPECT_DOUBLE_EQ(loaded["model"]["temperature"].get<double>(), 0.886);  // the bundled card's
  EXPECT_EQ(loaded["model"]["logit_offsets"], nlohmann::json::object());  // it ships none
  EXPECT_EQ(json_of(cl.Get("/v2/health/ready"))["model_loaded"], true);
  EXPECT_EQ(cl.Get("/v2/models/" + kBundledModelName + "/ready")->status, 200);
  EXPECT_GT(json_of(cl.Get("/memory-status"))["memory"]["model_weight_bytes"].get<size_t>(), 0u);
}

// PRECISION=bf16: the server's plans run bf16 where the CPU has it, and /health?verbose=1 says what
// runs (and why not, elsewhere). The answer is the f32 one's.
TEST(Lifecycle, Bf16PrecisionIsWhatHealthReports) {
  serve::ServeConfig c = test_config();
  c.precision = "bf16";
  RunningServer s(c);
  auto cl = s.client();
  auto r = predict(s);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json_of(r)["top"][0]["label"], "nv");
  auto p = json_of(cl.Get("/health?verbose=1"))["model"]["precision"];
  EXPECT_EQ(p["asked"], "bf16");
  EXPECT_EQ(p["cpu_isa"], engine::dnnl_util::cpu_isa_name());
  if (engine::dnnl_util::cpu_has_bf16()) {
    EXPECT_EQ(p["running"], "bf16");
    EXPECT_GT(p["bf16_convolutions"].get<int>(), 0);
    EXPECT_EQ(p["note"], nullptr);
  } else {
    EXPECT_EQ(p["running"], "f32");
    EXPECT_NE(p["note"].get<std::string>().find("no native bf16"), std::string::npos);
  }
}

TEST(Lifecycle, LazyMetadataRouteLoadsTheModel) {
  serve::ServeConfig c = test_config();
  c.preload_model = false;
  RunningServer s(c);
  auto r = s.client().Get("/v2/models/" + kBundledModelName);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json_of(r)["inputs"][0]["shape"], nlohmann::json({-1, 3, kBundledInputSize, kBundledInputSize}));
  EXPECT_TRUE(s.server->model().loaded());
}

TEST(Lifecycle, AModelThatDoesNotLoad) {
  serve::ServeConfig c = test_config();
  c.model_path = std::string(DERMAL_SOURCE_DIR) + "/models/no_such_model.onnx";
  EXPECT_THROW(serve::Server{c}, Error);  // preloading: startup fails
  c.preload_model = false;
  RunningServer s(c);  // lazy: the failure shows on first use, and readiness turns false
  auto r = predict(s);
  ASSERT_EQ(r->status, 500);
  EXPECT_NE(json_of(r)["error"].get<std::string>().find("could not be loaded"), std::string::npos);
  EXPECT_EQ(s.client().Get("/v2/health/ready")->status, 503);
  EXPECT_NE(json_of(s.client().Get("/health?verbose=1"))["model"]["load_error"], nullptr);
  EXPECT_EQ(s.client().Get("/health")->status, 200);  // alive all the same
}

TEST(Lifecycle, BodyOverTheUploadLimitIs413) {
  serve::ServeConfig c = test_config();
  c.max_upload_mb = 0.5;
  RunningServer s(c);
  std::string big(700 * 1024, 'x');
  for (const std::string& path : {std::string("/api/predict"), std::string("/api/explain"), "/v2/models/" + kBundledModelName + "/infer"}) {
    auto r = s.client().Post(path, big, "image/jpeg");
    ASSERT_TRUE(r) << path << ": " << httplib::to_string(r.error());
    EXPECT_EQ(r->status, 413) << path;
    EXPECT_NE(json_of(r)["error"].get<std::string>().find("MAX_UPLOAD_MB"), std::string::npos);
  }
  auto form = s.client().Post("/api/predict", httplib::MultipartFormDataItems{{"image", big, "big.jpg", "image/jpeg"}});
  ASSERT_TRUE(form);
  EXPECT_EQ(form->status, 413);
  EXPECT_EQ(predict(s)->status, 200);  // a normal one still goes through
}

TEST(Lifecycle, PixelLimitIs422) {
  serve::ServeConfig c = test_config();
  c.max_image_pixels = 100 * 100;  // the 200 x 150 image is over it
  RunningServer s(c);
  auto r = predict(s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 422) << r->body;
  EXPECT_NE(json_of(r)["error"].get<std::string>().find("over the limit of 10000 pixels"), std::string::npos) << r->body;
}

TEST(Lifecycle, FullQueueIs503WithRetryAfter) {
  serve::ServeConfig c = test_config();
  c.max_queue = 0;  // only the request being computed
  RunningServer s(c);
  {
    WorkerHold hold(s.server->queue());
    auto r = predict(s);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 503);
    EXPECT_GE(std::stoi(r->get_header_value("Retry-After")), 1);
    EXPECT_NE(json_of(r)["error"].get<std::string>().find("busy"), std::string::npos);
    // Routes that do not need the model still answer.
    EXPECT_EQ(s.client().Get("/health")->status, 200);
    EXPECT_NE(s.client().Get("/metrics")->body.find("dermal_inference_busy 1"), std::string::npos);
  }
  while (s.server->queue().busy()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(predict(s)->status, 200);
}

TEST(Lifecycle, QueueOfOneTakesOneMoreAndRefusesTheNext) {
  serve::ServeConfig c = test_config();
  c.max_queue = 1;
  RunningServer s(c);
  WorkerHold hold(s.server->queue());
  auto first = std::async(std::launch::async, [&] { return predict(s); });
  while (s.server->queue().waiting() < 1) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_NE(s.client().Get("/metrics")->body.find("dermal_queue_depth 1"), std::string::npos);
  auto second = predict(s);
  EXPECT_EQ(second->status, 503);
  hold.release();
  auto r = first.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_NE(s.client().Get("/metrics")->body.find("dermal_http_requests_total{route=\"/api/predict\",status=\"503\"} 1"),
            std::string::npos);
}

TEST(Lifecycle, RequestTimeoutIs504) {
  serve::ServeConfig c = test_config();
  c.request_timeout_s = 0.3;
  RunningServer s(c);
  WorkerHold hold(s.server->queue());
  const auto start = std::chrono::steady_clock::now();
  auto r = predict(s);
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 504);
  EXPECT_NE(json_of(r)["error"].get<std::string>().find("REQUEST_TIMEOUT_S"), std::string::npos);
  EXPECT_GE(waited, 0.25);
  EXPECT_LT(waited, 5.0);
  hold.release();
  // The dropped job did not wedge the worker (a quick job, not a prediction, which could itself
  // take longer than 0.3 s on a busy machine).
  EXPECT_EQ(s.server->queue().run([] {}, 30), serve::InferenceQueue::Outcome::done);
  EXPECT_EQ(s.server->queue().waiting(), 0u);
}

TEST(Lifecycle, ShutdownFinishesInFlightRequestsAndRefusesNewOnes) {
  RunningServer s(test_config());
  auto hold = std::make_unique<WorkerHold>(s.server->queue());
  auto in_flight = std::async(std::launch::async, [&] { return predict(s); });
  while (s.server->queue().waiting() < 1) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  s.server->shutdown();
  // New requests: the listening socket is closed (or, on a kept-alive connection, 503).
  auto refused = s.client().Get("/health");
  EXPECT_TRUE(!refused || refused->status == 503);
  hold->release();
  auto r = in_flight.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json_of(r)["top"][0]["label"], "nv");
  s.thread.join();  // run() returns once the in-flight request is answered
}

TEST(Lifecycle, ShutdownBeforeRunIsNotLost) {
  serve::Server server(test_config());
  server.bind();
  server.shutdown();
  server.run();  // returns at once
  SUCCEED();
}

// The real binary: start it on a free port, answer requests while one is in flight,
// SIGTERM it, and read its log.
struct Child {
  pid_t pid = -1;
  std::string log_path;

  std::string log() const {
    std::ifstream f(log_path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }
  int port() const {
    std::smatch m;
    const std::string text = log();
    return std::regex_search(text, m, std::regex("url=http://127\\.0\\.0\\.1:([0-9]+)")) ? std::stoi(m[1]) : 0;
  }
};

Child start_binary(const std::vector<std::string>& args, const std::string& log_path) {
  Child c;
  c.log_path = log_path;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  std::vector<char*> argv;
  std::string binary = DERMAL_BINARY;
  argv.push_back(binary.data());
  std::vector<std::string> copy = args;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  // The caller's environment without Dermal's settings, so that a PORT or MAX_QUEUE set where
  // the tests run cannot change what they check.
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string var = *e, name = var.substr(0, var.find('='));
    const auto& names = serve::config_names();
    if (std::find(names.begin(), names.end(), name) == names.end()) env.push_back(var);
  }
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn(&c.pid, binary.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  return c;
}

int wait_exit(pid_t pid, double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  int status = 0;
  while (std::chrono::steady_clock::now() < until) {
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

TEST(ServeBinary, SigtermDrainsAndLogsOneLinePerRequest) {
  const std::string log_path = (std::filesystem::temp_directory_path() / ("dermal_serve_" + std::to_string(getpid()) + ".log")).string();
  Child child = start_binary({"serve", "--host", "127.0.0.1", "--port", "0", "--model", bundled_model(), "--env-file",
                              std::string(DERMAL_SOURCE_DIR) + "/tests/data/serve/test.env"},
                             log_path);
  ASSERT_GT(child.pid, 0);
  int port = 0;
  for (int i = 0; i < 500 && port == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    port = child.port();
  }
  ASSERT_GT(port, 0) << child.log();
  httplib::Client cl("127.0.0.1", port);
  cl.set_read_timeout(60);
  const std::string image = jpeg();
  auto ok = cl.Post("/api/predict", httplib::Headers{{"X-Request-Id", "test-req-42"}}, image, "image/jpeg");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->get_header_value("X-Request-Id"), "test-req-42");
  // test.env set MAX_QUEUE=3 and CAM_METHOD=layercam: the .env file was read.
  auto v = json_of(cl.Get("/health?verbose=1"));
  EXPECT_EQ(v["config"]["MAX_QUEUE"], "3");
  EXPECT_EQ(v["config_sources"]["MAX_QUEUE"], ".env");
  EXPECT_EQ(json_of(ok)["gradcam"]["method"], "layercam");
  // A request in flight when SIGTERM arrives: its body half sent. It must still be answered.
  std::string head = "POST /api/predict?gradcam=false HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
                     "Content-Length: " + std::to_string(image.size()) + "\r\nConnection: close\r\n\r\n";
  int sock = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string first = head + image.substr(0, image.size() / 2), rest = image.substr(image.size() / 2);
  ASSERT_EQ(send(sock, first.data(), first.size(), 0), static_cast<ssize_t>(first.size()));
  // Awaited: the server holds the half-sent request (its connection counted, besides the asking one).
  for (int i = 0; i < 500; ++i) {
    auto h = cl.Get("/health?verbose=1");
    if (h && json_of(h)["connections"]["open"].get<int>() >= 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(child.pid, SIGTERM);
  // Awaited, not slept on: the drain's log line, then the listener closing. Meanwhile a new
  // request is refused, with 503 until the listener has closed, then with no connection at all.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (child.log().find("event=draining") == std::string::npos && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_NE(child.log().find("event=draining"), std::string::npos) << child.log();
  httplib::Client late("127.0.0.1", port);
  late.set_connection_timeout(1);
  bool closed = false;
  while (!closed && std::chrono::steady_clock::now() < until) {
    auto r = late.Get("/health");
    closed = !r;
    if (r) {
      EXPECT_EQ(r->status, 503) << r->body;
    }
  }
  EXPECT_TRUE(closed) << "the listener was still open 10 s after SIGTERM";
  ASSERT_EQ(send(sock, rest.data(), rest.size(), 0), static_cast<ssize_t>(rest.size()));
  std::string answer;
  char buf[4096];
  for (ssize_t n; (n = recv(sock, buf, sizeof buf, 0)) > 0;) answer.append(buf, static_cast<size_t>(n));
  close(sock);
  EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer.substr(0, 200);
  EXPECT_NE(answer.find("\"probabilities\""), std::string::npos);
  EXPECT_EQ(wait_exit(child.pid, 30), 0) << child.log();
  const std::string log = child.log();
  EXPECT_NE(log.find("event=draining"), std::string::npos) << log;
  EXPECT_NE(log.find("event=stopped"), std::string::npos) << log;
  // One line per request: id, route, status and timings; never the image.
  std::istringstream lines(log);
  std::string line;
  int predict_lines = 0;
  while (std::getline(lines, line)) {
    if (line.find("route=/api/predict") == std::string::npos) continue;
    ++predict_lines;
    EXPECT_NE(line.find("status=200"), std::string::npos) << line;
    EXPECT_NE(line.find("infer_ms="), std::string::npos) << line;
    EXPECT_NE(line.find("decode_ms="), std::string::npos) << line;
    EXPECT_NE(line.find(" id="), std::string::npos) << line;
  }
  EXPECT_EQ(predict_lines, 2);
  EXPECT_NE(log.find("id=test-req-42"), std::string::npos);
  EXPECT_EQ(log.find(image.substr(0, 16)), std::string::npos);
  EXPECT_EQ(log.find("/9j/"), std::string::npos);  // a base64 JPEG's first bytes
  std::remove(log_path.c_str());
}

TEST(ServeBinary, MalformedSettingStopsStartupNamingIt) {
  const std::string log_path = (std::filesystem::temp_directory_path() / ("dermal_serve_bad_" + std::to_string(getpid()) + ".log")).string();
  Child flag = start_binary({"serve", "--port", "eighty", "--model", bundled_model()}, log_path);
  EXPECT_EQ(wait_exit(flag.pid, 20), 2);
  EXPECT_NE(flag.log().find("PORT='eighty' (from the command line)"), std::string::npos) << flag.log();
  Child file = start_binary({"serve", "--model", bundled_model(), "--env-file",
                             std::string(DERMAL_SOURCE_DIR) + "/tests/data/serve/bad.env"},
                            log_path);
  EXPECT_EQ(wait_exit(file.pid, 20), 2);
  EXPECT_NE(file.log().find("PRELOAD_MODEL='sometimes'"), std::string::npos) << file.log();
  Child missing = start_binary({"serve", "--env-file", "/no/such/file.env"}, log_path);
  EXPECT_EQ(wait_exit(missing.pid, 20), 2);
  std::remove(log_path.c_str());
}

}  // namespace
}  // namespace dermal::test
