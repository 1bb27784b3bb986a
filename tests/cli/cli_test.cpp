// The dermal command as a user runs it: real images from ../shared, JSON that parses, files
// written where asked, clear errors and exit codes for bad input.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/dnnl_util.h"
#include "vision/decode.h"

namespace dermal::test {
namespace {

const std::string kImages = std::string(DERMAL_SHARED_DIR) + "/data/ham10000/images/";

struct CliRun {
  int status;
  std::string out;
};

// env: VAR=value settings for this run only ("" for none).
CliRun dermal(const std::string& args, const std::string& env = "") {
  std::string cmd = env + " " + std::string(DERMAL_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf{};
  while (size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(Cli, PredictJsonLines) {
  CliRun r = dermal("predict --json --top-k 2 " + kImages + "ISIC_0024306.jpg " + kImages + "ISIC_0024307.jpg");
  ASSERT_EQ(r.status, 0) << r.out;
  std::istringstream lines(r.out);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line);
    ASSERT_EQ(j["top"].size(), 2u);
    double sum = 0;
    for (auto& [label, p] : j["probabilities"].items()) sum += p.get<double>();
    EXPECT_NEAR(sum, 1.0, 1e-6);
    EXPECT_EQ(j["probabilities"].size(), 7u);
    EXPECT_GE(j["top"][0]["probability"].get<double>(), j["top"][1]["probability"].get<double>());
    EXPECT_TRUE(j["timings_ms"].contains("infer"));
    ++n;
  }
  EXPECT_EQ(n, 2);
}

// The operating point (a card's logit_offsets, here --logit-offsets) is a prior shift (Saerens et
// al., 2002): an offset b on mel multiplies melanoma's odds against every other class by e^b and
// leaves the odds among the others as they were.
TEST(Cli, LogitOffsetsShiftOneClassesOdds) {
  auto probabilities = [](const std::string& offsets) {
    CliRun r = dermal("predict --json --lesion-check off --logit-offsets " + offsets + " " + kImages + "ISIC_0024306.jpg");
    EXPECT_EQ(r.status, 0) << r.out;
    return nlohmann::json::parse(r.out)["probabilities"];
  };
  const nlohmann::json p = probabilities("none"), q = probabilities("mel=0.7");
  const double nv = p["nv"].get<double>(), nv_q = q["nv"].get<double>();
  EXPECT_NEAR((q["mel"].get<double>() / nv_q) / (p["mel"].get<double>() / nv), std::exp(0.7), 1e-4);
  for (const char* code : {"akiec", "bcc", "bkl", "df", "vasc"})
    EXPECT_NEAR((q[code].get<double>() / nv_q) / (p[code].get<double>() / nv), 1.0, 1e-4) << code;
  EXPECT_GT(q["mel"].get<double>(), p["mel"].get<double>());

  CliRun r = dermal("predict --logit-offsets mel=high " + kImages + "ISIC_0024306.jpg");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.out.find("--logit-offsets: 'mel=high' is not CODE=NUMBER"), std::string::npos) << r.out;
  r = dermal("predict --logit-offsets melanoma=1 " + kImages + "ISIC_0024306.jpg");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("logit_offsets names 'melanoma', which is not one of its labels"), std::string::npos) << r.out;
}

// inspect: the plan's figures, and with --profile every kernel's time, slowest first.
TEST(Cli, InspectProfilesTheKernels) {
  CliRun r = dermal("inspect --json --profile 3 --threads 1 " + std::string(DERMAL_SHARED_DIR) + "/models/resnet18_ham192.onnx");
  ASSERT_EQ(r.status, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["plan"]["fused_adds"], 8);  // every residual Add rides on the convolution before it
  // layer1's four 64-channel 3x3 convolutions run Winograd (oneDNN has it for AVX-512 only) and
  // pass the three tensors between them blocked.
  const bool winograd = j["plan"]["winograd_convolutions"] == 4;
  if (!winograd) EXPECT_EQ(j["plan"]["winograd_convolutions"], 0);
  EXPECT_EQ(j["plan"]["blocked_tensors"], winograd ? 3 : 0);
  const auto& steps = j["profile"]["steps"];
  ASSERT_EQ(steps.size(), j["plan"]["kernels"].get<size_t>());
  double sum = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    sum += steps[i]["ms"].get<double>();
    if (i) EXPECT_LE(steps[i]["ms"].get<double>(), steps[i - 1]["ms"].get<double>());
  }
  EXPECT_NEAR(sum, j["profile"]["total_ms"].get<double>(), 1e-9);
  EXPECT_GT(sum, 0.0);
  EXPECT_NE(dermal("inspect --profile 0 " + std::string(DERMAL_SHARED_DIR) + "/models/resnet18_ham192.onnx").status, 0);
}

// --precision bf16 runs ResNet-18's 20 convolutions in bf16 where the CPU has AVX-512 BF16, and
// where it does not (oneDNN told so by ONEDNN_MAX_CPU_ISA) runs f32 and says why. The bundled
// model's bf16 answer is its f32 answer's top class, within a few points.
TEST(Cli, Bf16PrecisionRunsWhereTheCpuHasIt) {
  const std::string model = std::string(DERMAL_SHARED_DIR) + "/models/resnet18_ham192.onnx";
  CliRun r = dermal("inspect --json --precision bf16 " + model, "ONEDNN_MAX_CPU_ISA=AVX512_CORE");
  ASSERT_EQ(r.status, 0) << r.out;
  auto fallback = nlohmann::json::parse(r.out)["plan"];
  EXPECT_EQ(fallback["precision"], "f32");
  EXPECT_EQ(fallback["bf16_convolutions"], 0);
  EXPECT_NE(fallback["precision_note"].get<std::string>().find("no native bf16 (oneDNN uses avx512_core)"),
            std::string::npos) << fallback;

  r = dermal("inspect --json --precision bf16 " + model);
  ASSERT_EQ(r.status, 0) << r.out;
  auto plan = nlohmann::json::parse(r.out)["plan"];
  if (!engine::dnnl_util::cpu_has_bf16()) GTEST_SKIP() << "this CPU has no native bf16: " << plan;
  EXPECT_EQ(plan["precision"], "bf16");
  EXPECT_EQ(plan["bf16_convolutions"], 20);
  EXPECT_FALSE(plan.contains("precision_note"));

  const std::string image = kImages + "ISIC_0024306.jpg";
  auto f32 = nlohmann::json::parse(dermal("predict --json --lesion-check off " + image).out);
  auto bf16 = nlohmann::json::parse(dermal("predict --json --lesion-check off --precision bf16 " + image).out);
  EXPECT_EQ(bf16["top"][0]["label"], f32["top"][0]["label"]);
  for (const auto& [code, p] : f32["probabilities"].items()) EXPECT_NEAR(bf16["probabilities"][code].get<double>(), p.get<double>(), 0.05) << code;
  EXPECT_NE(bf16["probabilities"], f32["probabilities"]);  // bf16 did run
  EXPECT_NE(dermal("predict --precision f16 " + image).status, 0);
}

TEST(Cli, ExplainWritesOverlayAtTheImageSize) {
  const std::string out = (std::filesystem::temp_directory_path() / "dermal_cli_overlay.png").string();
  CliRun r = dermal("explain --json --method gradcam++ --class mel --out " + out + " " + kImages + "ISIC_0024306.jpg");
  ASSERT_EQ(r.status, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["gradcam"]["class"], "mel");
  EXPECT_EQ(j["gradcam"]["method"], "gradcam++");
  EXPECT_EQ(j["gradcam"]["overlay_file"], out);
  EXPECT_EQ(j["gradcam"]["cam"].size(), 10u);  // the bundled ensemble explains its SkinNet member: 160 px, stride 16, 10x10
  std::ifstream f(out, std::ios::binary);
  std::vector<uint8_t> png((std::istreambuf_iterator<char>(f)), {});
  vision::Image img = vision::decode_image(png.data(), png.size());
  EXPECT_EQ(img.width, 200);
  EXPECT_EQ(img.height, 150);
  std::filesystem::remove(out);
}

TEST(Cli, BadInputsGiveClearErrors) {
  const std::string text = (std::filesystem::temp_directory_path() / "dermal_cli_not_an_image.jpg").string();
  std::ofstream(text) << "hello";
  CliRun r = dermal("predict " + text);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.out.find("not an image"), std::string::npos) << r.out;
  r = dermal("explain --layer no_such_layer " + kImages + "ISIC_0024306.jpg");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.out.find("no layer named 'no_such_layer'"), std::string::npos) << r.out;
  r = dermal("explain --method bogus " + kImages + "ISIC_0024306.jpg");
  EXPECT_EQ(r.status, 2);
  r = dermal("predict --model " + text + " " + kImages + "ISIC_0024306.jpg");
  EXPECT_EQ(r.status, 3) << r.out;  // not a model
  std::filesystem::remove(text);
}

}  // namespace
}  // namespace dermal::test

namespace dermal::test {
namespace {

// A real Keras file through the same path: predictions from the pre-softmax logits, and the
// auto layer is a real layer (the last pooling), not the importer's transpose before Flatten.
TEST(Cli, KerasModelPredictsAndExplains) {
  const std::string model = std::string(DERMAL_SHARED_DIR) + "/models/keras_real/small_cnn_28.keras";
  CliRun r = dermal("predict --json --model " + model + " " + kImages + "ISIC_0024306.jpg");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["probabilities"].size(), 7u);
  r = dermal("explain --json --model " + model + " " + kImages + "ISIC_0024306.jpg");
  ASSERT_EQ(r.status, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["gradcam"]["layer"], "max_pooling2d_5");
  EXPECT_EQ(j["gradcam"]["cam"].size(), 6u);
  EXPECT_EQ(j["gradcam"]["cam"][0].size(), 6u);
  // A bare model takes its labels and preprocessing from the command line, checked against it.
  r = dermal("predict --json --model " + model + " --labels akiec,bcc,bkl,df,mel,nv,vasc --preprocess tf " + kImages +
             "ISIC_0024306.jpg");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(nlohmann::json::parse(r.out)["probabilities"].contains("mel"));
  r = dermal("predict --model " + model + " --labels a,b " + kImages + "ISIC_0024306.jpg");
  EXPECT_EQ(r.status, 3);
  EXPECT_NE(r.out.find("lists 2 labels but the model outputs 7 classes"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace dermal::test

namespace dermal::test {
namespace {

const std::string kCoffee = "/usr/lib/python3/dist-packages/skimage/data/coffee.png";

// The lesion check in the command line: a refused image still gets its line (with the check) and
// exit 0, but no classes unless --force; explain writes nothing for it.
TEST(Cli, LesionCheckWithholdsTheDiagnosisOfAPhoto) {
  CliRun r = dermal("predict --json " + kCoffee + " " + kImages + "ISIC_0024306.jpg");
  ASSERT_EQ(r.status, 0) << r.out;
  std::istringstream lines(r.out);
  std::string line;
  std::getline(lines, line);
  auto cup = nlohmann::json::parse(line);
  EXPECT_EQ(cup["lesion_check"]["passed"], false);
  EXPECT_EQ(cup["lesion_check"]["available"], true);
  EXPECT_GT(cup["lesion_check"]["score"].get<double>(), cup["lesion_check"]["threshold"].get<double>());
  EXPECT_EQ(cup["diagnosis_withheld"], true);
  EXPECT_TRUE(cup["top"].empty());
  EXPECT_TRUE(cup["probabilities"].is_null());
  std::getline(lines, line);
  auto lesion = nlohmann::json::parse(line);
  EXPECT_EQ(lesion["lesion_check"]["passed"], true);
  EXPECT_EQ(lesion["diagnosis_withheld"], false);
  EXPECT_EQ(lesion["top"].size(), 3u);

  r = dermal("predict --json --force " + kCoffee);
  ASSERT_EQ(r.status, 0) << r.out;
  auto forced = nlohmann::json::parse(r.out);
  EXPECT_EQ(forced["lesion_check"]["passed"], false);
  EXPECT_EQ(forced["top"].size(), 3u);
  r = dermal("predict --lesion-check warn " + kCoffee);
  EXPECT_NE(r.out.find("warning: the image does not look like a skin-lesion image"), std::string::npos) << r.out;
  r = dermal("predict " + kCoffee);
  EXPECT_NE(r.out.find("not shown: the image does not look like a skin-lesion image"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("%"), std::string::npos) << r.out;  // no class, no probability

  const std::string out = (std::filesystem::temp_directory_path() / "dermal_cli_cup.png").string();
  std::filesystem::remove(out);
  r = dermal("explain --out " + out + " " + kCoffee);
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("not explained"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(out));
  r = dermal("explain --force --out " + out + " " + kCoffee);
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(std::filesystem::exists(out));
  std::filesystem::remove(out);
}

// fit-check gives any model a check: a Keras model without statistics is unchecked, then checked
// once fitted on a folder of lesion images. The default check reads the bundled backbone, so even a
// 28-pixel model's check refuses the coffee cup; `--backbone model` reads the model's own layers.
TEST(Cli, FitCheckGivesAUserModelItsCheck) {
  const std::string model = std::string(DERMAL_SHARED_DIR) + "/models/keras_real/small_cnn_28.keras";
  CliRun r = dermal("predict --json --model " + model + " " + kCoffee);
  ASSERT_EQ(r.status, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["lesion_check"]["available"], false);
  EXPECT_TRUE(j["lesion_check"]["passed"].is_null());
  EXPECT_EQ(j["top"].size(), 3u);  // unchecked is said, not silently passed, and not a refusal
  const std::string stats = (std::filesystem::temp_directory_path() / "dermal_cli_small_cnn.check.json").string();
  r = dermal("fit-check --model " + model + " --images " + kImages + " --limit 150 --out " + stats);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("held back pass"), std::string::npos) << r.out;
  r = dermal("predict --json --model " + model + " --check " + stats + " " + kImages + "ISIC_0024306.jpg");
  ASSERT_EQ(r.status, 0) << r.out;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["lesion_check"]["available"], true);
  EXPECT_EQ(j["lesion_check"]["passed"], true) << r.out;
  EXPECT_TRUE(j["lesion_check"]["parts"].contains("backbone")) << r.out;
  r = dermal("predict --json --model " + model + " --check " + stats + " " + kCoffee);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["lesion_check"]["passed"], false) << r.out;
  r = dermal("fit-check --backbone model --model " + model + " --images " + kImages + " --limit 150 --out " + stats);
  ASSERT_EQ(r.status, 0) << r.out;
  r = dermal("predict --json --model " + model + " --check " + stats + " " + kImages + "ISIC_0024306.jpg");
  ASSERT_EQ(r.status, 0) << r.out;
  j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["lesion_check"]["parts"].contains("content")) << r.out;
  EXPECT_FALSE(j["lesion_check"]["parts"].contains("backbone")) << r.out;
  r = dermal("fit-check --backbone /nonexistent.onnx --model " + model + " --images " + kImages + " --limit 40");
  EXPECT_NE(r.status, 0) << r.out;
  r = dermal("fit-check --model " + model + " --images /nonexistent");
  EXPECT_EQ(r.status, 2) << r.out;
  std::filesystem::remove(stats);
}

}  // namespace
}  // namespace dermal::test
