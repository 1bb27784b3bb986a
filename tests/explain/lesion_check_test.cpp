// The lesion check against its definitions: the Mahalanobis distance of a shrunk covariance in
// closed form (diagonal data), the nearest class mean, the pass quantile per source, the per-channel
// statistics; its file refused when malformed. Then the bundled model with its fitted statistics:
// the eight sample photos Debian ships with python3-skimage refused, real held-out lesion images
// passed, and a model without statistics reported as unchecked, never silently passed.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "error_check.h"
#include "explain/classifier.h"
#include "explain/lesion_check.h"

namespace dermal::test {
namespace {

using explain::LesionFeatures;

LesionFeatures features(std::vector<double> content, std::vector<double> appearance) {
  return {std::move(content), std::move(appearance), {}};
}

// Two-dimensional data whose mean and covariance are known exactly: (+-a, 0) and (0, +-b), k times.
std::vector<LesionFeatures> cross(double a, double b, int k) {
  std::vector<LesionFeatures> out;
  for (int i = 0; i < k; ++i)
    for (auto [x, y] : {std::pair{a, 0.0}, {-a, 0.0}, {0.0, b}, {0.0, -b}}) out.push_back(features({x, y}, {x, y}));
  return out;
}

TEST(LesionCheck, MahalanobisOfTheShrunkCovarianceInClosedForm) {
  const double a = 2, b = 0.5;
  const int k = 10, n = 4 * k;
  auto fit = cross(a, b, k);
  auto stats = explain::fit_lesion_check(fit, std::vector<int>(fit.size(), 0), cross(a, b, 5),
                                         std::vector<int>(20, 0), 0.9);
  // Population covariance diag(a^2/2, b^2/2), shrunk towards its mean variance by d / (n + d).
  const double s = 2.0 / (n + 2), mean_var = (a * a + b * b) / 4;
  const double vx = (1 - s) * a * a / 2 + s * mean_var, vy = (1 - s) * b * b / 2 + s * mean_var;
  for (auto [x, y] : {std::pair{1.0, 0.0}, {0.0, 1.0}, {0.3, -0.7}, {-3.0, 2.0}}) {
    const double expected = x * x / vx + y * y / vy;
    EXPECT_NEAR(stats.content.distance({x, y}) * stats.content.scale, expected, 1e-5 * expected) << x << "," << y;
    EXPECT_NEAR(stats.appearance.distance({x, y}) * stats.appearance.scale, expected, 1e-5 * expected);
  }
}

TEST(LesionCheck, ContentDistanceIsToTheNearestClassMean) {
  std::mt19937 rng(3);
  std::normal_distribution<double> noise(0, 1);
  std::vector<LesionFeatures> fit, calibration;
  std::vector<int> classes;
  for (int i = 0; i < 400; ++i) {
    const int c = i % 2;
    const double centre = c ? 50 : -50;
    fit.push_back(features({centre + noise(rng), noise(rng)}, {noise(rng), noise(rng)}));
    classes.push_back(c);
    if (i < 100) calibration.push_back(features({centre + noise(rng), noise(rng)}, {noise(rng), noise(rng)}));
  }
  auto stats = explain::fit_lesion_check(fit, classes, calibration, std::vector<int>(100, 0), 0.99);
  ASSERT_EQ(stats.content.means.size(), 2u);
  // Near either class mean: close; halfway between them: far, though it is the overall mean.
  EXPECT_LT(stats.content.distance({49.5, 0.2}), 1.0);
  EXPECT_LT(stats.content.distance({-50.3, -0.4}), 1.0);
  EXPECT_GT(stats.content.distance({0, 0}), 100.0);
}

TEST(LesionCheck, ThresholdLetsThePassShareOfEverySourcePass) {
  std::mt19937 rng(11);
  std::normal_distribution<double> noise(0, 1);
  std::vector<LesionFeatures> fit, calibration;
  std::vector<int> groups;
  for (int i = 0; i < 3000; ++i) fit.push_back(features({noise(rng), noise(rng), noise(rng)}, {noise(rng), noise(rng)}));
  // Source 1 is wider than source 0 (another camera): its own quantile must set the scale.
  for (int i = 0; i < 2000; ++i) {
    const int g = i < 1500 ? 0 : 1;
    const double w = g ? 1.4 : 1.0;
    calibration.push_back(features({w * noise(rng), w * noise(rng), w * noise(rng)}, {noise(rng), noise(rng)}));
    groups.push_back(g);
  }
  auto stats = explain::fit_lesion_check(fit, std::vector<int>(fit.size(), 0), calibration, groups, 0.99);
  for (int g : {0, 1}) {
    int passed = 0, total = 0;
    for (size_t i = 0; i < calibration.size(); ++i)
      if (groups[i] == g) {
        ++total;
        passed += stats.content.distance(calibration[i].content) <= 1.0;
      }
    EXPECT_GE(static_cast<double>(passed) / total, 0.99 - 1e-9) << "source " << g;
  }
  // The narrow source passes more: the wide one set the scale.
  int narrow = 0;
  for (size_t i = 0; i < 1500; ++i) narrow += stats.content.distance(calibration[i].content) <= 1.0;
  EXPECT_GT(narrow / 1500.0, 0.999);
}

TEST(LesionCheck, ChannelStatisticsByDefinition) {
  // Two channels of a 2x2 plane: the mean and the sample standard deviation (n - 1).
  const float x[8] = {1, 2, 3, 4, 10, 10, 10, 10};
  auto m = explain::channel_means_and_stds(x, 2, 4);
  ASSERT_EQ(m.size(), 4u);
  EXPECT_DOUBLE_EQ(m[0], 2.5);
  EXPECT_DOUBLE_EQ(m[1], 10);
  EXPECT_NEAR(m[2], std::sqrt(5.0 / 3.0), 1e-12);
  EXPECT_DOUBLE_EQ(m[3], 0);
}

TEST(LesionCheck, ResultsAndTheirJson) {
  auto fit = cross(1, 1, 10);
  auto stats = explain::fit_lesion_check(fit, std::vector<int>(fit.size(), 0), cross(1, 1, 5), std::vector<int>(20, 0), 0.99);
  auto near = explain::run_lesion_check(stats, features({0.1, 0.1}, {0.1, 0.1}), explain::LesionCheckMode::on);
  EXPECT_TRUE(near.available && near.passed);
  auto far = explain::run_lesion_check(stats, features({30, 0}, {0, 0}), explain::LesionCheckMode::on);
  EXPECT_FALSE(far.passed);
  EXPECT_TRUE(far.withholds_diagnosis());
  ASSERT_EQ(far.parts.size(), 2u);  // the parts the statistics hold, each with its distance
  EXPECT_EQ(far.parts[0].first, "content");
  EXPECT_EQ(far.score, far.parts[0].second);
  EXPECT_GT(far.parts[0].second, far.parts[1].second);
  auto j = explain::lesion_check_json(far);
  EXPECT_EQ(j["passed"], false);
  EXPECT_EQ(j["threshold"], 1.0);
  EXPECT_NE(j["reason"].get<std::string>().find("does not look like a skin-lesion image"), std::string::npos);
  // warn shows the answer; a threshold override moves the line.
  EXPECT_FALSE(explain::run_lesion_check(stats, features({30, 0}, {0, 0}), explain::LesionCheckMode::warn).withholds_diagnosis());
  EXPECT_TRUE(explain::run_lesion_check(stats, features({30, 0}, {0, 0}), explain::LesionCheckMode::on, 1e6).passed);
  auto off = explain::run_lesion_check(stats, features({30, 0}, {0, 0}), explain::LesionCheckMode::off);
  EXPECT_FALSE(off.available);
  EXPECT_FALSE(off.withholds_diagnosis());
  EXPECT_TRUE(explain::lesion_check_json(off)["passed"].is_null());
}

TEST(LesionCheck, FileRoundTripAndRefusals) {
  auto fit = cross(2, 0.5, 10);
  auto stats = explain::fit_lesion_check(fit, std::vector<int>(fit.size(), 0), cross(2, 0.5, 5), std::vector<int>(20, 0), 0.95);
  stats.content_layers = {"c"};
  stats.appearance_layers = {"a1", "a2"};
  const std::string text = explain::lesion_check_to_json(stats);
  auto back = explain::parse_lesion_check(text, "test");
  EXPECT_EQ(back.content_layers, std::vector<std::string>{"c"});
  EXPECT_EQ(back.appearance_layers, (std::vector<std::string>{"a1", "a2"}));
  for (auto [x, y] : {std::pair{1.0, 0.0}, {0.3, -0.7}})
    EXPECT_NEAR(back.content.distance({x, y}), stats.content.distance({x, y}), 1e-5 * stats.content.distance({x, y}));
  const auto bad = {ErrorKind::invalid_model};
  expect_error([] { explain::parse_lesion_check("{not json", "f"); }, bad, {"not valid JSON"});
  expect_error([] { explain::parse_lesion_check("{\"labels\": []}", "f"); }, bad, {"not a lesion-check file"});
  auto j = nlohmann::json::parse(text);
  j["lesion_check_version"] = 99;
  expect_error([&] { explain::parse_lesion_check(j.dump(), "f"); }, bad, {"version 99"});
  j = nlohmann::json::parse(text);
  j["content"]["precision_upper"].erase(0);
  expect_error([&] { explain::parse_lesion_check(j.dump(), "f"); }, bad, {"content", "wrong length"});
  j = nlohmann::json::parse(text);
  j["appearance"]["scale"] = -1;
  expect_error([&] { explain::parse_lesion_check(j.dump(), "f"); }, bad, {"appearance", "scale"});
  j = nlohmann::json::parse(text);
  j["content"]["means"][0][0] = "x";
  expect_error([&] { explain::parse_lesion_check(j.dump(), "f"); }, bad, {"content"});
  expect_error([] { explain::load_lesion_check("/nonexistent/x.check.json"); }, bad, {"cannot open"});
  // A backbone is named, never a path into the machine; its name and layers go together.
  j = nlohmann::json::parse(text);
  j["backbone_file"] = "../../etc/x.onnx";
  j["backbone_layers"] = {"b"};
  j["backbone"] = j["appearance"];
  expect_error([&] { explain::parse_lesion_check(j.dump(), "f"); }, bad, {"file name, not a path"});
  j["backbone_file"] = "x.onnx";
  j.erase("backbone_layers");
  expect_error([&] { explain::parse_lesion_check(j.dump(), "f"); }, bad, {"go together"});
  // Version 1 files (content and appearance only, both required then) still read.
  j = nlohmann::json::parse(text);
  j["lesion_check_version"] = 1;
  EXPECT_EQ(explain::parse_lesion_check(j.dump(), "f").content.dims, 2);
  expect_error([] { explain::fit_lesion_check({}, {}, {}, {}, 0.99); }, {ErrorKind::invalid_input}, {"at least 30"});
}

// The bundled model and its fitted statistics, on real images.
const std::string kModel = std::string(DERMAL_SOURCE_DIR) + "/models/skinnet_mnv2_ham_isic224.onnx";

explain::LesionCheckResult check_file(explain::Classifier& clf, const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), {});
  EXPECT_FALSE(bytes.empty()) << path;
  explain::Timings t;
  return clf.predict(clf.decode(bytes.data(), bytes.size(), t), t).lesion_check;
}

// The backbone against PyTorch (tools/lesion_check/export_backbone.py --compare wrote the reference
// from the same weights, with PIL's resize): the features the check reads, for lesion images and
// photos alike.
TEST(LesionBackbone, FeaturesMatchPyTorch) {
  auto backbone = explain::LesionBackbone::load(std::string(DERMAL_SOURCE_DIR) + "/models/lesion_backbone_mnv2_112.onnx", {});
  EXPECT_EQ(backbone->layers(), (std::vector<std::string>{"block_3", "block_12"}));
  EXPECT_EQ(backbone->channels(), 32 + 96);
  std::ifstream f(std::string(DERMAL_SOURCE_DIR) + "/tests/data/explain/lesion_backbone_reference.json");
  const auto ref = nlohmann::json::parse(f)["features"];
  ASSERT_EQ(ref.size(), 6u);
  for (const auto& [name, expected] : ref.items()) {
    const std::string path = name.rfind("ISIC_", 0) == 0 ? std::string(DERMAL_SHARED_DIR) + "/data/ham10000/images/" + name
                                                          : "/usr/lib/python3/dist-packages/skimage/data/" + name;
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
    const auto got = backbone->features(vision::decode_image(bytes.data(), bytes.size()));
    ASSERT_EQ(got.size(), expected.size()) << name;
    double worst = 0, largest = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      worst = std::max(worst, std::abs(got[i] - expected[i].get<double>()));
      largest = std::max(largest, std::abs(expected[i].get<double>()));
    }
    EXPECT_LT(worst, 2e-3 * largest) << name << ": largest feature " << largest;
  }
}

// The eight sample photos of the issue: a cat, a coffee cup, an astronaut, a rocket, grass, bricks,
// a camera man and the Hubble deep field.
TEST(LesionCheckBundled, RefusesDebianSamplePhotos) {
  auto clf = explain::Classifier::load(kModel);
  ASSERT_NE(clf->lesion_check(), nullptr) << "models/skinnet_mnv2_ham_isic224.check.json is missing";
  ASSERT_NE(clf->lesion_backbone(), nullptr);
  const std::string dir = "/usr/lib/python3/dist-packages/skimage/data/";
  for (const char* name : {"chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "grass.png", "brick.png",
                           "camera.png", "hubble_deep_field.jpg"}) {
    auto r = check_file(*clf, dir + name);
    EXPECT_TRUE(r.available) << name;
    EXPECT_FALSE(r.passed) << name << ": score " << r.score << " threshold " << r.threshold;
    EXPECT_TRUE(r.withholds_diagnosis()) << name;
  }
}

// Test-split images only (never fitted on): 100 spread evenly over HAM10000's and over the ISIC
// 2017 part's (every class). Over the whole splits (tools/lesion_check/measure.py) 99.7% and
// 96.1% pass.
TEST(LesionCheckBundled, PassesHeldOutLesionImages) {
  auto clf = explain::Classifier::load(kModel);
  auto pass_rate = [&](const std::string& csv, const std::string& images, auto is_test) {
    std::ifstream list(csv);
    std::vector<std::string> ids;
    for (std::string line; std::getline(list, line);)
      if (is_test(line)) ids.push_back(line.substr(0, line.find(',')));
    EXPECT_GE(ids.size(), 100u) << csv;
    int passed = 0;
    for (size_t i = 0; i < 100; ++i) passed += check_file(*clf, images + ids[ids.size() * i / 100] + ".jpg").passed;
    return passed / 100.0;
  };
  const std::string shared = DERMAL_SHARED_DIR;
  EXPECT_GE(pass_rate(shared + "/data/ham10000/metadata.csv", shared + "/data/ham10000/images/",
                      [](const std::string& l) { return l.find(",test,") != std::string::npos; }),
            0.97);
  EXPECT_GE(pass_rate(std::string(DERMAL_SOURCE_DIR) + "/tools/train/isic2017_split.csv", shared + "/data/isic2017/images/",
                      [](const std::string& l) { return l.size() > 5 && l.substr(l.size() - 5) == ",test"; }),
            0.95);
}

TEST(LesionCheckBundled, ModelWithoutStatisticsIsReportedUnchecked) {
  const std::string other = std::string(DERMAL_SHARED_DIR) + "/models/mobilenet_v2_ham192.onnx";
  auto clf = explain::Classifier::load(other);
  EXPECT_EQ(clf->lesion_check(), nullptr);
  auto r = check_file(*clf, "/usr/lib/python3/dist-packages/skimage/data/coffee.png");
  EXPECT_FALSE(r.available);
  EXPECT_FALSE(r.withholds_diagnosis());
  EXPECT_NE(r.reason.find("fit-check"), std::string::npos) << r.reason;
  EXPECT_TRUE(explain::lesion_check_json(r)["passed"].is_null());
  // Statistics read from another model's layers are refused at load, naming the layer.
  auto fit = cross(1, 1, 10);
  auto stats = explain::fit_lesion_check(fit, std::vector<int>(fit.size(), 0), cross(1, 1, 5), std::vector<int>(20, 0), 0.99);
  stats.content_layers = {"/blocks/blocks.7/Relu_1_output_0"};
  stats.appearance_layers = {"/blocks/blocks.1/Relu_1_output_0"};
  const auto foreign_file = std::filesystem::temp_directory_path() / "dermal_foreign.check.json";
  std::ofstream(foreign_file) << explain::lesion_check_to_json(stats);
  explain::LesionCheckOptions foreign;
  foreign.path = foreign_file.string();
  expect_error([&] { explain::Classifier::load(other, "", {}, foreign); }, {ErrorKind::invalid_model},
               {"do not fit this model", "blocks.7"});
  std::filesystem::remove(foreign_file);
}

// A check that reads the backbone needs the image: given only the classifier's input tensor (the
// OIP route's way in) it says so, and never passes.
TEST(LesionCheckBundled, TensorInputIsReportedUnchecked) {
  auto clf = explain::Classifier::load(kModel);
  std::ifstream in("/usr/lib/python3/dist-packages/skimage/data/coffee.png", std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
  explain::Timings t;
  auto r = clf->predict_input(clf->input_tensor(clf->decode(bytes.data(), bytes.size(), t)), t).lesion_check;
  EXPECT_FALSE(r.available);
  EXPECT_FALSE(r.withholds_diagnosis());
  EXPECT_NE(r.reason.find("reads the image"), std::string::npos) << r.reason;
}

}  // namespace
}  // namespace dermal::test
