// Settings: flags over the environment over the .env file over defaults, and a malformed value
// stops startup with a message naming the setting and where it came from.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unistd.h>

#include "engine/error.h"
#include "serve/config.h"
#include "serve/inference_queue.h"
#include "error_check.h"

namespace dermal::test {
namespace {

using serve::ConfigSources;
using serve::load_config;

struct TempEnvFile {
  explicit TempEnvFile(const std::string& text) {
    static int counter = 0;
    path = (std::filesystem::temp_directory_path() /
            ("dermal_config_test_" + std::to_string(getpid()) + "_" + std::to_string(counter++) + ".env"))
               .string();
    std::ofstream(path) << text;
  }
  ~TempEnvFile() { std::filesystem::remove(path); }
  std::string path;
};

ConfigSources sources(const std::map<std::string, std::string>& env, const std::string& env_file = "") {
  ConfigSources s;
  s.env = [env](const std::string& k) -> std::optional<std::string> {
    auto it = env.find(k);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  s.env_file = env_file.empty() ? "/nonexistent/dermal/.env" : env_file;
  return s;
}

std::string error_of(const ConfigSources& s) {
  return expect_error([&] { load_config(s); }, {ErrorKind::invalid_input});
}

TEST(ServeConfig, Defaults) {
  serve::ServeConfig c = load_config(sources({}));
  EXPECT_TRUE(c.preload_model);
  EXPECT_TRUE(c.enable_gradcam);
  EXPECT_EQ(c.host, "0.0.0.0");
  EXPECT_EQ(c.port, 8000);
  EXPECT_EQ(c.threads, 0);
  EXPECT_EQ(c.max_upload_mb, 25);
  EXPECT_EQ(c.max_upload_bytes(), 25u << 20);
  EXPECT_EQ(c.max_image_pixels, 16'000'000);
  EXPECT_EQ(c.max_source_pixels, 120'000'000);
  EXPECT_EQ(c.display_size, 1024);
  EXPECT_EQ(c.max_decoder_mb, 36);
  EXPECT_EQ(c.max_queue, 16);
  EXPECT_EQ(c.request_timeout_s, 30);
  EXPECT_EQ(c.cam_method, "gradcam");
  EXPECT_EQ(c.log_level, serve::LogLevel::info);
  for (const auto& name : serve::config_names()) EXPECT_EQ(c.sources[name], serve::SettingSource::default_value) << name;
}

// docs/api.md's settings table is the settings table: the same names in the same order, the
// same flags, and each default as the table prints it (where the docs give one in backticks).
TEST(ServeConfig, DocsListEverySettingWithItsFlagsAndDefault) {
  std::ifstream f(std::string(DERMAL_SOURCE_DIR) + "/docs/api.md");
  std::string line;
  std::vector<std::vector<std::string>> rows;  // the cells of each row of the table under "| Name | Flag |"
  bool in_table = false;
  while (std::getline(f, line)) {
    if (line.rfind("| Name | Flag | Default |", 0) == 0) in_table = true;
    if (!in_table) continue;
    if (line.rfind("|", 0) != 0) break;
    if (line.rfind("| `", 0) != 0) continue;  // the header and its rule
    std::vector<std::string> cells;
    size_t start = 1;
    for (size_t bar; (bar = line.find(" | ", start)) != std::string::npos; start = bar + 3)
      cells.push_back(line.substr(start, bar - start));
    for (auto& c : cells) c.erase(0, c.find_first_not_of(' '));
    rows.push_back(cells);
  }
  const auto& table = serve::settings();
  ASSERT_EQ(rows.size(), table.size());
  for (size_t i = 0; i < table.size(); ++i) {
    const serve::Setting& s = table[i];
    ASSERT_GE(rows[i].size(), 3u) << s.name;
    EXPECT_EQ(rows[i][0], "`" + s.name + "`");
    std::string flags;  // "--model,-m" is documented as "`--model`, `-m`"
    for (size_t a = 0, b; a <= s.flags.size(); a = b + 1) {
      b = s.flags.find(',', a);
      if (b == std::string::npos) b = s.flags.size();
      flags += (flags.empty() ? "`" : ", `") + s.flags.substr(a, b - a) + "`";
    }
    EXPECT_EQ(rows[i][1], flags) << s.name;
    const std::string& documented = rows[i][2];
    if (!s.default_value().empty() && documented.rfind('`', 0) == 0)
      EXPECT_EQ(documented.substr(0, documented.find('`', 1) + 1), "`" + s.default_value() + "`") << s.name;
    else
      EXPECT_TRUE(s.default_value().empty()) << s.name << ": " << documented;  // an empty default is said in words
  }
}

TEST(ServeConfig, FlagsOverEnvironmentOverEnvFileOverDefaults) {
  TempEnvFile file("PORT=1111\nMAX_QUEUE=2\nTHREADS=3\nLOG_LEVEL=debug\n");
  ConfigSources s = sources({{"PORT", "2222"}, {"MAX_QUEUE", "5"}}, file.path);
  s.flags["PORT"] = "3333";
  serve::ServeConfig c = load_config(s);
  EXPECT_EQ(c.port, 3333);          // flag
  EXPECT_EQ(c.max_queue, 5);        // environment over .env
  EXPECT_EQ(c.threads, 3);          // .env over default
  EXPECT_EQ(c.log_level, serve::LogLevel::debug);
  EXPECT_EQ(c.request_timeout_s, 30);  // default
  EXPECT_EQ(c.sources["PORT"], serve::SettingSource::flag);
  EXPECT_EQ(c.sources["MAX_QUEUE"], serve::SettingSource::environment);
  EXPECT_EQ(c.sources["THREADS"], serve::SettingSource::env_file);
  EXPECT_EQ(c.sources["REQUEST_TIMEOUT_S"], serve::SettingSource::default_value);
}

TEST(ServeConfig, ValuesTheOldAppUsed) {
  // Django's .env wrote Python booleans; other spellings people use work too.
  for (const char* yes : {"True", "true", "1", "yes", "ON"})
    EXPECT_TRUE(load_config(sources({{"PRELOAD_MODEL", yes}})).preload_model) << yes;
  for (const char* no : {"False", "false", "0", "no", "off"})
    EXPECT_FALSE(load_config(sources({{"ENABLE_GRADCAM", no}})).enable_gradcam) << no;
  EXPECT_EQ(load_config(sources({{"CAM_METHOD", "Grad-CAM++"}})).cam_method, "gradcam++");
  EXPECT_EQ(load_config(sources({{"MAX_UPLOAD_MB", "2.5"}})).max_upload_bytes(), 2621440u);
  EXPECT_EQ(load_config(sources({{"LOG_LEVEL", "WARNING"}})).log_level, serve::LogLevel::warn);
  EXPECT_EQ(load_config(sources({{"PORT", " 9000 "}})).port, 9000);
}

TEST(ServeConfig, MalformedValuesNameTheSettingAndItsSource) {
  const std::vector<std::pair<std::string, std::string>> bad{
      {"PORT", "abc"},          {"PORT", "70000"},           {"PORT", "-1"},          {"PORT", "80.5"},
      {"PRELOAD_MODEL", "maybe"}, {"ENABLE_GRADCAM", ""},     {"THREADS", "many"},     {"THREADS", "-2"},
      {"MAX_UPLOAD_MB", "0"},   {"MAX_UPLOAD_MB", "ten"},    {"MAX_UPLOAD_MB", "nan"}, {"MAX_IMAGE_PIXELS", "0"},
      {"MAX_IMAGE_PIXELS", "1e6"}, {"MAX_SOURCE_PIXELS", "0"}, {"DISPLAY_SIZE", "-1"}, {"MAX_DECODER_MB", "0"}, {"DISPLAY_SIZE", "big"}, {"MAX_QUEUE", "1.5"},     {"MAX_QUEUE", "-1"},     {"REQUEST_TIMEOUT_S", "0"},
      {"REQUEST_TIMEOUT_S", "soon"}, {"CAM_METHOD", "magic"}, {"LOG_LEVEL", "loud"},   {"HOST", ""},
      {"HOST", "http://x"}};
  for (const auto& [name, value] : bad) {
    const std::string message = error_of(sources({{name, value}}));
    EXPECT_EQ(message.rfind(name + "='" + value + "' (from the environment)", 0), 0u) << name << "=" << value << ": " << message;
  }
  TempEnvFile file("THREADS=lots\n");
  EXPECT_NE(error_of(sources({}, file.path)).find("THREADS='lots' (from " + file.path + ")"), std::string::npos);
  ConfigSources flags = sources({});
  flags.flags["MAX_QUEUE"] = "x";
  EXPECT_NE(error_of(flags).find("MAX_QUEUE='x' (from the command line)"), std::string::npos);
}

TEST(ServeConfig, EnvFileSyntax) {
  auto vars = serve::parse_env_file(
      "# comment\n\nexport PORT=9000\nHOST = 127.0.0.1\nCAM_METHOD=\"eigencam\"\nMODEL_PATH='/m/a b.onnx'\n"
      "LOG_LEVEL=warn # trailing comment\nEMPTY=\nURL=http://x/#frag\r\n",
      "x.env");
  EXPECT_EQ(vars["PORT"], "9000");
  EXPECT_EQ(vars["HOST"], "127.0.0.1");
  EXPECT_EQ(vars["CAM_METHOD"], "eigencam");
  EXPECT_EQ(vars["MODEL_PATH"], "/m/a b.onnx");
  EXPECT_EQ(vars["LOG_LEVEL"], "warn");
  EXPECT_EQ(vars["EMPTY"], "");
  EXPECT_EQ(vars["URL"], "http://x/#frag");
  expect_error([] { serve::parse_env_file("PORT=1\nthis line is wrong\n", "x.env"); }, {}, {"x.env line 2"});
  EXPECT_THROW(serve::parse_env_file("=3\n", "x.env"), Error);
  EXPECT_THROW(serve::parse_env_file("9PORT=3\n", "x.env"), Error);
}

TEST(ServeConfig, NamedEnvFileMustExist) {
  ConfigSources s = sources({}, "/nonexistent/dermal/settings.env");
  EXPECT_NO_THROW(load_config(s));  // the default ./.env is optional
  s.env_file_required = true;
  EXPECT_NE(error_of(s).find("/nonexistent/dermal/settings.env"), std::string::npos);
}

TEST(InferenceQueue, RunsJobsInOrderOnOneThread) {
  serve::InferenceQueue q(8);
  std::vector<int> order;
  std::set<std::thread::id> threads;
  std::mutex m;
  std::vector<std::thread> callers;
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(q.run([&, i] {
                std::lock_guard<std::mutex> lock(m);
                order.push_back(i);
                threads.insert(std::this_thread::get_id());
              }, 10),
              serve::InferenceQueue::Outcome::done);
  }
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(threads.size(), 1u);
  EXPECT_NE(*threads.begin(), std::this_thread::get_id());
  EXPECT_THROW(q.run([] { throw Error(ErrorKind::invalid_input, "bad"); }, 10), Error);  // rethrown to the caller
  q.stop();
  EXPECT_EQ(q.run([] {}, 1), serve::InferenceQueue::Outcome::stopped);
}

}  // namespace
}  // namespace dermal::test
