// Every route of the running server, called over loopback with a real HTTP client: answers
// checked against the classifier called directly, and the bad requests users and scripts send.
#include <gtest/gtest.h>

#include <cstdio>
#include <set>

#include "serve/base64.h"
#include "serve/page.h"
#include "serve/serve_fixture.h"
#include "vision/decode.h"
#include "vision/image_files.h"
#include "vision/resize.h"

namespace dermal::test {
namespace {

const std::string kImageId = "ISIC_0024306";

std::string file_text(const std::string& path) {
  Bytes b = read_bytes(path);
  return std::string(b.begin(), b.end());
}

class Routes : public ServedModelTest {
 protected:
  static std::string jpeg() { return file_text(ham_image(kImageId)); }
  static httplib::Result post_image(const std::string& path, const std::string& bytes) {
    return client().Post(path.c_str(), httplib::MultipartFormDataItems{{"image", bytes, "lesion.jpg", "image/jpeg"}});
  }
  // What the classifier says when called directly on the same file.
  static explain::Prediction reference_prediction() {
    std::string bytes = jpeg();
    explain::Timings t;
    vision::Image img = reference_->decode(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), t);
    return reference_->predict(img, t);
  }

};

vision::Image decode_b64(const std::string& b64) {
  std::vector<uint8_t> png = serve::base64_decode(b64);
  return vision::decode_image(png.data(), png.size());
}

TEST(Base64, RoundTripsEveryTailLength) {
  for (size_t n : {0u, 1u, 2u, 3u, 4u, 5u, 255u, 256u}) {
    std::vector<uint8_t> bytes(n);
    for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<uint8_t>(i * 37 + 11);
    const std::string text = serve::base64_encode(bytes.data(), bytes.size());
    EXPECT_EQ(text.size(), (n + 2) / 3 * 4);
    EXPECT_EQ(serve::base64_decode(text), bytes) << n;
  }
  EXPECT_EQ(serve::base64_encode(reinterpret_cast<const uint8_t*>("Man"), 3), "TWFu");
  EXPECT_EQ(serve::base64_encode(reinterpret_cast<const uint8_t*>("Ma"), 2), "TWE=");
  EXPECT_THROW(serve::base64_decode("TW!u"), Error);
  EXPECT_THROW(serve::base64_decode("TWFuT"), Error);
}

TEST_F(Routes, PredictMatchesTheClassifierCalledDirectly) {
  auto r = post_image("/api/predict", jpeg());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  EXPECT_FALSE(r->get_header_value("X-Request-Id").empty());
  auto j = json_of(r);
  EXPECT_EQ(j["model"], kBundledModelName);
  EXPECT_EQ(j["image"]["width"], 200);
  EXPECT_EQ(j["image"]["height"], 150);
  const explain::Prediction ref = reference_prediction();
  ASSERT_EQ(j["probabilities"].size(), 7u);
  double sum = 0;
  for (const auto& c : ref.ranked) {
    EXPECT_NEAR(j["probabilities"][c.code].get<double>(), c.probability, 1e-6) << c.code;
    sum += j["probabilities"][c.code].get<double>();
  }
  EXPECT_NEAR(sum, 1.0, 1e-6);
  ASSERT_EQ(j["top"].size(), 3u);  // top_k defaults to 3
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(j["top"][i]["label"], ref.ranked[i].code);
    EXPECT_EQ(j["top"][i]["name"], ref.ranked[i].name);
    EXPECT_EQ(j["top"][i]["malignant"], ref.ranked[i].malignant);
  }
  // ENABLE_GRADCAM defaults to true: the overlay of the top class at the image's size.
  ASSERT_TRUE(j["gradcam"].is_object());
  EXPECT_EQ(j["gradcam"]["method"], "gradcam");
  EXPECT_EQ(j["gradcam"]["class"], ref.ranked[0].code);
  EXPECT_NE(j["gradcam"]["layer"].get<std::string>(), "");
  EXPECT_FALSE(j["gradcam"].contains("heatmap_png"));
  EXPECT_FALSE(j["gradcam"].contains("overlay_png"));  // a photo: JPEG unless overlay_format=png
  const auto overlay_bytes = serve::base64_decode(j["gradcam"]["overlay_jpeg"]);
  EXPECT_EQ(vision::detect_format(overlay_bytes.data(), overlay_bytes.size()), vision::ImageFormat::jpeg);
  vision::Image overlay = decode_b64(j["gradcam"]["overlay_jpeg"]);
  EXPECT_EQ(overlay.width, 200);
  EXPECT_EQ(overlay.height, 150);
  for (const char* stage : {"queue", "decode", "preprocess", "infer", "explain", "encode", "total"})
    EXPECT_TRUE(j["timings_ms"].contains(stage)) << stage;
  EXPECT_NE(r->get_header_value("Server-Timing").find("infer;dur="), std::string::npos);
}

TEST_F(Routes, RawBodyGivesTheSameAnswerAsMultipart) {
  auto multipart = post_image("/api/predict?gradcam=false", jpeg());
  auto raw = client().Post("/api/predict?gradcam=false", jpeg(), "image/jpeg");
  // curl --data-binary sends a form content type: the image bytes still count.
  auto curl_default = client().Post("/api/predict?gradcam=false", jpeg(), "application/x-www-form-urlencoded");
  ASSERT_TRUE(multipart && raw && curl_default);
  ASSERT_EQ(raw->status, 200) << raw->body;
  ASSERT_EQ(curl_default->status, 200) << curl_default->body;
  EXPECT_EQ(json_of(multipart)["probabilities"], json_of(raw)["probabilities"]);
  EXPECT_EQ(json_of(curl_default)["probabilities"], json_of(raw)["probabilities"]);
  EXPECT_TRUE(json_of(raw)["gradcam"].is_null());
  EXPECT_FALSE(json_of(raw)["timings_ms"].contains("explain"));
}

TEST_F(Routes, PredictOptions) {
  auto r = post_image("/api/predict?method=gradcam%2B%2B&class=mel&top_k=99&alpha=0&colormap=viridis&heatmap=1&overlay_format=png",
                      jpeg());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = json_of(r);
  EXPECT_EQ(j["top"].size(), 7u);  // top_k above the class count shows every class
  EXPECT_EQ(j["gradcam"]["method"], "gradcam++");
  EXPECT_EQ(j["gradcam"]["class"], "mel");
  EXPECT_EQ(j["gradcam"]["class_name"], "Melanoma");
  EXPECT_EQ(j["gradcam"]["colormap"], "viridis");
  EXPECT_NEAR(j["gradcam"]["class_probability"].get<double>(), j["probabilities"]["mel"].get<double>(), 1e-12);
  // alpha 0: the overlay is the decoded photo itself; the heatmap alone is not.
  std::string bytes = jpeg();
  vision::Image photo = vision::decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  vision::Image overlay = decode_b64(j["gradcam"]["overlay_png"]);
  vision::Image heat = decode_b64(j["gradcam"]["heatmap_png"]);
  EXPECT_EQ(overlay.rgb, photo.rgb);
  ASSERT_EQ(heat.width, photo.width);
  EXPECT_NE(heat.rgb, photo.rgb);
  // overlay=false leaves the blended image out (the page blends the heatmap itself).
  auto lean = post_image("/api/predict?overlay=false&heatmap=true", jpeg());
  ASSERT_EQ(lean->status, 200);
  EXPECT_FALSE(json_of(lean)["gradcam"].contains("overlay_png"));
  EXPECT_FALSE(json_of(lean)["gradcam"].contains("overlay_jpeg"));
  EXPECT_TRUE(json_of(lean)["gradcam"].contains("heatmap_png"));
}

// One schema: `dermal explain --json` prints what /api/predict answers for the same image and
// options; only the fields of each front end differ (the file names; base64 pictures and the
// request id). Run as a user would, the CLI as its own process on the same model file.
TEST_F(Routes, TheCliPrintsTheApisJson) {
  const std::string image = ham_image(kImageId);
  std::string cmd = std::string(DERMAL_BINARY) + " explain --json --method gradcam++ --class mel --model " + bundled_model() +
                    " " + image + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  ASSERT_EQ(pclose(p), 0) << out;
  const nlohmann::json cli = nlohmann::json::parse(out);
  auto r = post_image("/api/predict?method=gradcam%2B%2B&class=mel&cam=1&overlay=0", jpeg());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const nlohmann::json api = json_of(r);
  auto keys = [](const nlohmann::json& j) {
    std::set<std::string> k;
    for (const auto& [key, v] : j.items()) k.insert(key);
    return k;
  };
  const std::set<std::string> shared{"image", "lesion_check", "diagnosis_withheld", "top", "probabilities", "gradcam",
                                     "timings_ms", "model"};
  auto cli_keys = keys(cli), api_keys = keys(api);
  cli_keys.erase("file");
  api_keys.erase("request_id");
  EXPECT_EQ(cli_keys, shared);
  EXPECT_EQ(api_keys, shared);
  EXPECT_EQ(cli["model"], api["model"]);
  EXPECT_EQ(cli["image"], api["image"]);
  EXPECT_EQ(cli["lesion_check"], api["lesion_check"]);
  EXPECT_EQ(keys(cli["gradcam"]), keys(api["gradcam"]));
  for (const char* field : {"method", "layer", "class", "class_name", "alpha", "colormap", "width", "height"})
    EXPECT_EQ(cli["gradcam"][field], api["gradcam"][field]) << field;
  ASSERT_EQ(cli["top"].size(), api["top"].size());
  for (size_t i = 0; i < api["top"].size(); ++i) EXPECT_EQ(cli["top"][i]["label"], api["top"][i]["label"]);
  for (const auto& [code, prob] : api["probabilities"].items())  // the two may run on different thread counts
    EXPECT_NEAR(cli["probabilities"][code].get<double>(), prob.get<double>(), 1e-6) << code;
  const auto& cam_cli = cli["gradcam"]["cam"];
  const auto& cam_api = api["gradcam"]["cam"];
  ASSERT_EQ(cam_cli.size(), cam_api.size());
  ASSERT_GT(cam_api.size(), 1u);
  for (size_t y = 0; y < cam_api.size(); ++y)
    for (size_t x = 0; x < cam_api[y].size(); ++x)
      EXPECT_NEAR(cam_cli[y][x].get<double>(), cam_api[y][x].get<double>(), 1e-4) << x << "," << y;
  EXPECT_FALSE(api["gradcam"].contains("overlay_jpeg"));  // overlay=0
  for (const auto* j : {&cli, &api})
    EXPECT_NEAR((*j)["timings_ms"]["total"].get<double>(), [&] {
      double sum = 0;
      for (const auto& [stage, ms] : (*j)["timings_ms"].items()) sum += stage == "total" ? 0 : ms.get<double>();
      return sum;
    }(), 0.01);
}

TEST_F(Routes, ExplainReturnsTheOverlayPng) {
  auto r = client().Post("/api/explain?class=bkl&alpha=0.5", jpeg(), "image/jpeg");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "image/png");
  EXPECT_EQ(r->get_header_value("X-Dermal-Class"), "bkl");
  EXPECT_EQ(r->get_header_value("X-Dermal-Method"), "gradcam");
  const double p = std::stod(r->get_header_value("X-Dermal-Probability"));
  EXPECT_NEAR(p, reference_prediction().probabilities[2], 1e-5);
  vision::Image png = vision::decode_image(reinterpret_cast<const uint8_t*>(r->body.data()), r->body.size());
  EXPECT_EQ(png.width, 200);
  EXPECT_EQ(png.height, 150);
  // The same request through /api/predict gives the same overlay bytes.
  auto j = json_of(client().Post("/api/predict?class=bkl&alpha=0.5&overlay_format=png", jpeg(), "image/jpeg"));
  EXPECT_EQ(serve::base64_encode(reinterpret_cast<const uint8_t*>(r->body.data()), r->body.size()),
            j["gradcam"]["overlay_png"]);
  // overlay_format=jpeg: the same picture as a JPEG.
  auto as_jpeg = client().Post("/api/explain?class=bkl&alpha=0.5&overlay_format=jpeg", jpeg(), "image/jpeg");
  ASSERT_EQ(as_jpeg->status, 200);
  EXPECT_EQ(as_jpeg->get_header_value("Content-Type"), "image/jpeg");
  EXPECT_LT(as_jpeg->body.size(), r->body.size());
}

TEST_F(Routes, BadUploads) {
  auto expect_status = [](const httplib::Result& r, int status, const std::string& fragment) {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, status) << r->body;
    auto j = nlohmann::json::parse(r->body);
    EXPECT_NE(j["error"].get<std::string>().find(fragment), std::string::npos) << j["error"];
  };
  // No file: a form without any file part.
  expect_status(client().Post("/api/predict", httplib::MultipartFormDataItems{{"note", "hello", "", ""}}), 400, "'image'");
  // Wrong field name.
  expect_status(client().Post("/api/predict", httplib::MultipartFormDataItems{{"file", jpeg(), "a.jpg", "image/jpeg"}}), 400,
                "it has: file");
  // Not an image.
  expect_status(post_image("/api/predict", "this is not an image, just text"), 422,
                "not an image: the 31 bytes look like text");
  expect_status(client().Post("/api/predict", std::string(5000, '\x42'), "application/octet-stream"), 422,
                "not an image: the 5000 bytes look like text");
  expect_status(client().Post("/api/predict", std::string(5000, '\x01'), "application/octet-stream"), 422,
                "unknown image format (first bytes: 01 01 01 01 01 01 01 01)");
  // 0 bytes, raw and as a form field.
  expect_status(client().Post("/api/predict", "", "image/jpeg"), 400, "empty");
  expect_status(post_image("/api/predict", ""), 400, "empty");
  // JSON where an image belongs.
  expect_status(client().Post("/api/predict", "{\"image\": 1}", "application/json"), 400, "multipart");
  // A truncated JPEG.
  expect_status(post_image("/api/predict", jpeg().substr(0, 600)), 422, "invalid JPEG image: the file is truncated");
  // Decompression bomb: a small PNG whose header declares 30000 x 30000 pixels.
  Bytes png = png_file(4, 4, 8, 2, Bytes(4 * 4 * 3, 128));
  Bytes bomb = png_with_declared_size(png, 30000, 30000);
  const std::string bomb_refused = "PNG image declares 30000x30000 pixels, over the limit of";
  expect_status(post_image("/api/predict", std::string(bomb.begin(), bomb.end())), 422, bomb_refused);
  expect_status(post_image("/api/explain", std::string(bomb.begin(), bomb.end())), 422, bomb_refused);
}

// A photo bigger than the display size: decoded reduced (JPEG DCT scaling to 1024 on the longer
// side at least), the overlay drawn at the display size, never at the photo's; the answer names
// all three sizes.
TEST_F(Routes, BigPhotoIsReducedAndDrawnAtTheDisplaySize) {
  const vision::Image big = vision::resize(vision::decode_image(read_bytes(ham_image(kImageId))), 2400, 1800);
  const Bytes file = jpeg_file(JpegSpec{2400, 1800, JpegKind::rgb, big.rgb});
  const std::string photo(file.begin(), file.end());
  auto r = post_image("/api/predict", photo);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = json_of(r);
  EXPECT_EQ(j["image"]["width"], 2400);
  EXPECT_EQ(j["image"]["decoded"]["width"], 1200);
  EXPECT_EQ(j["image"]["decoded"]["height"], 900);
  EXPECT_EQ(j["gradcam"]["width"], 1024);
  EXPECT_EQ(j["gradcam"]["height"], 768);
  vision::Image overlay = decode_b64(j["gradcam"]["overlay_jpeg"]);
  EXPECT_EQ(overlay.width, 1024);
  EXPECT_EQ(overlay.height, 768);
  // The same answer as the original small image, within the resizing's difference.
  const auto small = json_of(post_image("/api/predict", jpeg()));
  EXPECT_EQ(j["top"][0]["label"], small["top"][0]["label"]);
  EXPECT_NEAR(j["top"][0]["probability"].get<double>(), small["top"][0]["probability"].get<double>(), 0.05);
  // display_size asks for less, never for more than DISPLAY_SIZE.
  j = json_of(post_image("/api/predict?display_size=512", photo));
  EXPECT_EQ(j["gradcam"]["width"], 512);
  EXPECT_EQ(decode_b64(j["gradcam"]["overlay_jpeg"]).height, 384);
  EXPECT_EQ(json_of(post_image("/api/predict?display_size=4000", photo))["gradcam"]["width"], 1024);
  // An image smaller than the display size keeps its own size.
  EXPECT_EQ(small["gradcam"]["width"], 200);
  EXPECT_EQ(small["image"]["decoded"]["width"], 200);
}

TEST_F(Routes, BadParameters) {
  for (const char* query : {"method=nope", "class=%C3%A9", "overlay_format=gif", "display_size=0", "display_size=big", "top_k=0", "top_k=x", "alpha=2", "alpha=", "colormap=rainbow", "gradcam=maybe",
                            "class=zzz", "layer=no_such_layer"}) {
    auto r = post_image(std::string("/api/predict?") + query, jpeg());
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << query << ": " << r->body;
    EXPECT_TRUE(json_of(r).contains("error")) << query;
  }
}

TEST_F(Routes, UnknownRouteAndWrongMethod) {
  auto r = client().Get("/nope");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_NE(json_of(r)["error"].get<std::string>().find("/nope"), std::string::npos);
  auto get_predict = client().Get("/api/predict");
  ASSERT_TRUE(get_predict);
  EXPECT_EQ(get_predict->status, 405);
  EXPECT_EQ(get_predict->get_header_value("Allow"), "POST");
  auto post_health = client().Post("/health", "", "text/plain");
  EXPECT_EQ(post_health->status, 405);
  EXPECT_EQ(post_health->get_header_value("Allow"), "GET, HEAD");
  EXPECT_EQ(client().Delete("/v2/models/" + kBundledModelName)->status, 405);
  EXPECT_EQ(client().Get("/v2/models/" + kBundledModelName + "/infer")->status, 405);
}

TEST_F(Routes, Health) {
  auto r = client().Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json_of(r), nlohmann::json({{"status", "ok"}}));
  auto v = json_of(client().Get("/health?verbose=1"));
  EXPECT_EQ(v["status"], "ok");
  EXPECT_EQ(v["model"]["name"], kBundledModelName);
  EXPECT_EQ(v["model"]["loaded"], true);
  ASSERT_EQ(v["model"]["labels"].size(), 7u);
  EXPECT_EQ(v["model"]["labels"][4]["code"], "mel");
  EXPECT_EQ(v["model"]["labels"][4]["malignant"], true);
  EXPECT_EQ(v["version"], "0.1.0");
  EXPECT_GE(v["uptime_s"].get<double>(), 0);
  EXPECT_GE(v["threads"]["compute"].get<int>(), 1);
  for (const auto& name : serve::config_names()) EXPECT_TRUE(v["config"].contains(name)) << name;
  EXPECT_EQ(v["config"]["PRELOAD_MODEL"], "true");
  EXPECT_EQ(v["config_sources"]["PORT"], "flag");
  EXPECT_EQ(v["config_sources"]["MAX_QUEUE"], "default");
}

// The lesion check over HTTP: a photo answers 200 with the check and no diagnosis, unless
// force=1; /api/explain refuses to draw a map over it; /health?verbose=1 shows the check.
TEST_F(Routes, LesionCheckWithholdsTheDiagnosisOfAPhoto) {
  const std::string cup = file_text("/usr/lib/python3/dist-packages/skimage/data/coffee.png");
  auto r = post_image("/api/predict", cup);
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = json_of(r);
  EXPECT_EQ(j["lesion_check"]["passed"], false);
  EXPECT_EQ(j["lesion_check"]["available"], true);
  EXPECT_EQ(j["lesion_check"]["mode"], "on");
  EXPECT_NE(j["lesion_check"]["reason"].get<std::string>().find("does not look like a skin-lesion image"), std::string::npos);
  EXPECT_EQ(j["diagnosis_withheld"], true);
  EXPECT_TRUE(j["top"].empty());
  EXPECT_TRUE(j["probabilities"].is_null());
  EXPECT_TRUE(j["gradcam"].is_null());
  auto forced = json_of(post_image("/api/predict?force=1", cup));
  EXPECT_EQ(forced["lesion_check"]["passed"], false);
  EXPECT_EQ(forced["diagnosis_withheld"], false);
  EXPECT_EQ(forced["top"].size(), 3u);
  EXPECT_TRUE(forced["gradcam"].contains("overlay_jpeg"));
  auto lesion = json_of(post_image("/api/predict", jpeg()));
  EXPECT_EQ(lesion["lesion_check"]["passed"], true);
  EXPECT_EQ(lesion["diagnosis_withheld"], false);
  EXPECT_TRUE(lesion["timings_ms"].contains("lesion_check"));
  auto refused = post_image("/api/explain", cup);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 422);
  EXPECT_NE(json_of(refused)["error"].get<std::string>().find("force=1"), std::string::npos) << refused->body;
  EXPECT_EQ(post_image("/api/explain?force=1", cup)->status, 200);
  auto v = json_of(client().Get("/health?verbose=1"));
  EXPECT_EQ(v["lesion_check"]["mode"], "on");
  EXPECT_EQ(v["lesion_check"]["available"], true);
  EXPECT_GT(v["lesion_check"]["statistics_bytes"].get<double>(), 0);
  EXPECT_NE(v["lesion_check"]["backbone"].get<std::string>().find("lesion_backbone_mnv2_112.onnx"), std::string::npos);
  EXPECT_EQ(v["lesion_check"]["layers"]["backbone"], (nlohmann::json{"block_3", "block_12"}));
  EXPECT_EQ(v["config"]["LESION_CHECK"], "on");
}

TEST_F(Routes, MemoryStatus) {
  auto j = json_of(client().Get("/memory-status"));
  const auto& m = j["memory"];
  EXPECT_GT(m["rss_mb"].get<double>(), 1.0);
  EXPECT_GE(m["peak_rss_mb"].get<double>(), m["rss_mb"].get<double>());
  EXPECT_EQ(m["model_loaded"], true);
  EXPECT_GT(m["model_weight_bytes"].get<size_t>(), 1u << 20);  // MobileNetV2: ~9 MB of weights
  EXPECT_GT(m["planned_activation_bytes"].get<size_t>(), 0u);
  EXPECT_TRUE(m.contains("cgroup_limit_mb"));
}

TEST_F(Routes, MetricsCountRequestsAndStages) {
  ASSERT_EQ(post_image("/api/predict", jpeg())->status, 200);
  ASSERT_EQ(client().Get("/no/such/route")->status, 404);
  auto r = client().Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type").rfind("text/plain", 0), 0u);
  const std::string& text = r->body;
  for (const char* needle :
       {"dermal_http_requests_total{route=\"/api/predict\",status=\"200\"}", "dermal_http_requests_total{route=\"unmatched\",status=\"404\"}",
        "dermal_stage_duration_seconds_bucket{stage=\"infer\"", "dermal_stage_duration_seconds_bucket{stage=\"decode\"",
        "dermal_stage_duration_seconds_bucket{stage=\"explain\"", "dermal_stage_duration_seconds_bucket{stage=\"encode\"",
        "dermal_stage_duration_seconds_bucket{stage=\"preprocess\"", "dermal_http_request_duration_seconds_bucket{route=\"/api/predict\"",
        "dermal_queue_depth 0", "dermal_process_memory_bytes{kind=\"rss\"}", "dermal_model_loaded 1"})
    EXPECT_NE(text.find(needle), std::string::npos) << needle;
  // The raw path never becomes a label (bounded label sets).
  EXPECT_EQ(text.find("/no/such/route"), std::string::npos);
}

TEST_F(Routes, PageInBothLanguages) {
  auto en = client().Get("/");
  ASSERT_TRUE(en);
  EXPECT_EQ(en->status, 200);
  EXPECT_EQ(en->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(en->body.find("<html lang=\"en\">"), std::string::npos);
  EXPECT_NE(en->body.find("Not a medical device"), std::string::npos);
  EXPECT_NE(en->body.find("\"model\":\"" + kBundledModelName + "\""), std::string::npos);
  EXPECT_EQ(en->body.find("{{"), std::string::npos);  // every placeholder filled
  // Self-contained: nothing fetched from elsewhere.
  EXPECT_EQ(en->body.find("src=\"http"), std::string::npos);
  EXPECT_EQ(en->body.find("href=\"http"), std::string::npos);
  EXPECT_NE(en->get_header_value("Content-Security-Policy").find("default-src 'none'"), std::string::npos);
  auto vi = client().Get("/", {{"Accept-Language", "vi-VN,vi;q=0.9,en-US;q=0.8,en;q=0.7"}});
  EXPECT_NE(vi->body.find("<html lang=\"vi\">"), std::string::npos);
  EXPECT_NE(vi->body.find("Đây không phải là thiết bị y tế và không phải là chẩn đoán."), std::string::npos);
  EXPECT_NE(client().Get("/?lang=vi")->body.find("<html lang=\"vi\">"), std::string::npos);
}

TEST(PageLanguage, FollowsAcceptLanguageWeights) {
  EXPECT_EQ(serve::choose_language(""), "en");
  EXPECT_EQ(serve::choose_language("vi"), "vi");
  EXPECT_EQ(serve::choose_language("vi-VN,vi;q=0.9,en;q=0.8"), "vi");
  EXPECT_EQ(serve::choose_language("en-US,en;q=0.9,vi;q=0.8"), "en");
  EXPECT_EQ(serve::choose_language("fr-FR,fr;q=0.9,vi;q=0.5"), "vi");
  EXPECT_EQ(serve::choose_language("en;q=0.2, vi;q=0.7"), "vi");
  EXPECT_EQ(serve::choose_language("de,fr"), "en");
  EXPECT_EQ(serve::choose_language("vi;q=0"), "en");
}

}  // namespace
}  // namespace dermal::test
