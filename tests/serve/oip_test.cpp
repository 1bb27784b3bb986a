// Open Inference Protocol v2 routes, as KServe and Seldon call them.
#include <gtest/gtest.h>

#include "serve/base64.h"
#include "serve/serve_fixture.h"
#include "vision/decode.h"
#include "vision/image_files.h"

namespace dermal::test {
namespace {

const std::string kModel = "/v2/models/" + kBundledModelName;
constexpr int S = kBundledInputSize;

class Oip : public ServedModelTest {
 protected:
  static httplib::Result infer(const nlohmann::json& body, const std::string& path = kModel + "/infer") {
    return client().Post(path.c_str(), body.dump(), "application/json");
  }
  static vision::Image image(const std::string& id) {
    Bytes b = read_bytes(ham_image(id));
    return vision::decode_image(b.data(), b.size());
  }

};

TEST_F(Oip, ServerMetadataAndHealth) {
  auto meta = client().Get("/v2");
  ASSERT_TRUE(meta);
  EXPECT_EQ(meta->status, 200);
  EXPECT_EQ(json_of(meta)["name"], "dermal");
  EXPECT_EQ(json_of(meta)["version"], "0.1.0");
  EXPECT_EQ(client().Get("/v2/health/live")->status, 200);
  auto ready = client().Get("/v2/health/ready");
  EXPECT_EQ(ready->status, 200);
  EXPECT_EQ(json_of(ready)["ready"], true);
  EXPECT_EQ(json_of(ready)["model_loaded"], true);
  auto model_ready = client().Get((kModel + "/ready").c_str());
  EXPECT_EQ(model_ready->status, 200);
  EXPECT_EQ(json_of(model_ready)["ready"], true);
  EXPECT_EQ(client().Get((kModel + "/versions/1/ready").c_str())->status, 200);
}

TEST_F(Oip, ModelMetadataDescribesTheTensors) {
  auto r = client().Get(kModel.c_str());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = json_of(r);
  EXPECT_EQ(j["name"], kBundledModelName);
  EXPECT_EQ(j["platform"], "dermal_onnx");
  EXPECT_EQ(j["inputs"][0]["name"], "input");
  EXPECT_EQ(j["inputs"][0]["datatype"], "FP32");
  EXPECT_EQ(j["inputs"][0]["shape"], nlohmann::json({-1, 3, S, S}));
  EXPECT_EQ(j["inputs"][1]["name"], "image");
  EXPECT_EQ(j["inputs"][1]["datatype"], "BYTES");
  EXPECT_EQ(j["outputs"][0]["name"], "logits");
  EXPECT_EQ(j["outputs"][1]["name"], "probabilities");
  EXPECT_EQ(j["outputs"][1]["shape"], nlohmann::json({-1, 7}));
  EXPECT_EQ(j["parameters"]["labels"][4], "mel");
}

TEST_F(Oip, UnknownModelOrVersionIs404) {
  EXPECT_EQ(client().Get("/v2/models/resnet")->status, 404);
  EXPECT_EQ(client().Get("/v2/models/resnet/ready")->status, 404);
  EXPECT_EQ(infer({{"inputs", nlohmann::json::array()}}, "/v2/models/resnet/infer")->status, 404);
  EXPECT_EQ(client().Get((kModel + "/versions/7").c_str())->status, 404);
}

TEST_F(Oip, Fp32TensorsInAndOut) {
  // Two images in one batch, as prepared per the card; nested (row-major) data for the second.
  std::vector<vision::Image> images{image("ISIC_0024306"), image("ISIC_0024307")};
  nlohmann::json flat = nlohmann::json::array();
  std::vector<explain::Prediction> ref;
  for (const auto& img : images) {
    engine::Tensor x = reference_->input_tensor(img);
    for (int64_t i = 0; i < x.numel(); ++i) flat.push_back(x.data<float>()[i]);
    explain::Timings t;
    ref.push_back(reference_->predict_input(x, t));
  }
  auto r = infer({{"id", "batch-1"},
                  {"inputs", {{{"name", "input"}, {"shape", {2, 3, S, S}}, {"datatype", "FP32"}, {"data", flat}}}}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body.substr(0, 500);
  auto j = json_of(r);
  EXPECT_EQ(j["model_name"], kBundledModelName);
  EXPECT_EQ(j["id"], "batch-1");
  ASSERT_EQ(j["outputs"].size(), 2u);
  const auto& logits = j["outputs"][0];
  const auto& probs = j["outputs"][1];
  EXPECT_EQ(logits["name"], "logits");
  EXPECT_EQ(probs["shape"], nlohmann::json({2, 7}));
  EXPECT_EQ(probs["datatype"], "FP32");
  for (int b = 0; b < 2; ++b)
    for (int c = 0; c < 7; ++c) {
      EXPECT_NEAR(probs["data"][b * 7 + c].get<double>(), ref[b].probabilities[c], 1e-6);
      EXPECT_NEAR(logits["data"][b * 7 + c].get<double>(), ref[b].logits[c], 1e-4);
    }
}

TEST_F(Oip, NestedDataAndOutputSelection) {
  engine::Tensor x = reference_->input_tensor(image("ISIC_0024306"));
  nlohmann::json nested = nlohmann::json::array();  // [1][3][S][S]
  nlohmann::json batch = nlohmann::json::array();
  for (int c = 0; c < 3; ++c) {
    nlohmann::json plane = nlohmann::json::array();
    for (int y = 0; y < S; ++y) {
      const float* row = x.data<float>() + (c * S + y) * S;
      plane.push_back(std::vector<float>(row, row + S));
    }
    batch.push_back(plane);
  }
  nested.push_back(batch);
  auto r = infer({{"inputs", {{{"name", "input"}, {"shape", {1, 3, S, S}}, {"datatype", "FP32"}, {"data", nested}}}},
                  {"outputs", {{{"name", "probabilities"}}}}});
  ASSERT_EQ(r->status, 200) << r->body.substr(0, 500);
  auto j = json_of(r);
  ASSERT_EQ(j["outputs"].size(), 1u);
  EXPECT_EQ(j["outputs"][0]["name"], "probabilities");
  explain::Timings t;
  EXPECT_NEAR(j["outputs"][0]["data"][5].get<double>(), reference_->predict_input(x, t).probabilities[5], 1e-6);
}

TEST_F(Oip, BytesImageExtensionMatchesApiPredict) {
  Bytes file = read_bytes(ham_image("ISIC_0024306"));
  auto r = infer({{"inputs",
                   {{{"name", "image"}, {"shape", {1}}, {"datatype", "BYTES"}, {"data", {serve::base64_encode(file.data(), file.size())}}}}}});
  ASSERT_EQ(r->status, 200) << r->body;
  auto api = json_of(client().Post("/api/predict?gradcam=false", std::string(file.begin(), file.end()), "image/jpeg"));
  auto j = json_of(r);
  const char* codes[] = {"akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"};
  for (int c = 0; c < 7; ++c)
    EXPECT_NEAR(j["outputs"][1]["data"][c].get<double>(), api["probabilities"][codes[c]].get<double>(), 1e-6) << codes[c];
}

// Each malformed request is a 400 whose message names what is wrong (a 400 for the wrong reason
// fails: the message is checked, not only the status).
TEST_F(Oip, MalformedRequestsAre400) {
  const std::string path = kModel + "/infer";
  auto expect_400 = [](const httplib::Result& r, const std::string& says, const std::string& what) {
    ASSERT_TRUE(r) << what;
    EXPECT_EQ(r->status, 400) << what << ": " << r->body;
    EXPECT_NE(json_of(r)["error"].get<std::string>().find(says), std::string::npos) << what << ": " << r->body;
  };
  expect_400(client().Post(path.c_str(), "{\"inputs\": [", "application/json"), "malformed JSON", "truncated JSON");
  expect_400(client().Post(path.c_str(), "not json at all", "application/json"), "malformed JSON", "text");
  expect_400(client().Post(path.c_str(), "", "application/json"), "malformed JSON", "empty body");
  const std::string needs_inputs = "the request needs \"inputs\": a non-empty array of tensors";
  expect_400(infer({{"inputs", nlohmann::json::array()}}), needs_inputs, "no inputs");
  expect_400(infer({{"outputs", nlohmann::json::array()}}), needs_inputs, "outputs only");
  expect_400(infer(nlohmann::json::array()), needs_inputs, "an array");
  nlohmann::json four = nlohmann::json::array({1.0, 2.0, 3.0, 4.0});
  auto input = [&](const std::string& name, nlohmann::json shape, const std::string& type, nlohmann::json data) {
    return nlohmann::json{{"inputs", {{{"name", name}, {"shape", shape}, {"datatype", type}, {"data", data}}}}};
  };
  const std::string size = std::to_string(S);
  expect_400(infer(input("input", {1, 3, S, S}, "FP32", four)),
             "shape holds " + std::to_string(3 * S * S) + " elements but data has 4", "shape and data disagree");
  expect_400(infer(input("input", {1, 4}, "FP32", four)), "input 'input' must be FP32 of shape [N, 3, " + size + ", " + size + "]",
             "wrong shape for the model");
  expect_400(infer(input("pixels", {1, 4}, "FP32", four)), "unknown input 'pixels' (the model takes 'input' FP32, or 'image' BYTES)",
             "unknown input");
  expect_400(infer(input("input", {1, 4}, "INT64", four)), "datatype INT64 is not supported", "INT64");
  expect_400(infer(input("input", {1, 4}, "FP32", {"a", "b", "c", "d"})), "FP32 data must be numbers", "strings as FP32");
  expect_400(infer(input("image", {1}, "BYTES", {"@@not base64@@"})), "input 'image': invalid base64", "not base64");
  expect_400(infer(input("image", {1}, "BYTES", {""})), "an element is empty (0 bytes)", "empty image");
  // Valid base64 of something that is not an image: unprocessable, like /api/predict.
  auto not_image = infer(input("image", {1}, "BYTES", {"aGVsbG8gd29ybGQ="}));  // "hello world"
  ASSERT_TRUE(not_image);
  EXPECT_EQ(not_image->status, 422);
  EXPECT_NE(json_of(not_image)["error"].get<std::string>().find("not an image: the 11 bytes look like text"),
            std::string::npos)
      << not_image->body;
  auto unknown_output = input("image", {1}, "BYTES", {"aGVsbG8="});
  unknown_output["outputs"] = {{{"name", "softmax"}}};
  expect_400(infer(unknown_output), "unknown output 'softmax' (logits, probabilities)", "unknown output");
  // Found by fuzz/oip_infer.cpp: numbers beyond a double's or a float's range, and nesting that
  // would cost a recursion level a byte.
  expect_400(client().Post(path.c_str(), R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[4e338]}]})",
                           "application/json"),
             "malformed JSON", "a number beyond a double");
  expect_400(infer(input("input", {1}, "FP32", {1e39})), "FP32 data must be within float's range", "a number beyond a float");
  expect_400(client().Post(path.c_str(), "{\"inputs\": " + std::string(40, '[') + std::string(40, ']') + "}", "application/json"),
             "nested more than 32 levels deep", "deep nesting");
}

}  // namespace
}  // namespace dermal::test
