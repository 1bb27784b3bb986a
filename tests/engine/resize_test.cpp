// Resize: ONNX's modes are checked against ONNX's own conformance data (tests/formats/
// onnx_conformance_test.cpp runs every test_resize_* case); here, the TensorFlow modes Keras'
// Resizing layer uses against Pillow's float resampling (the committed fixture of
// tools/reference/make_resize_reference.py) and against values worked by hand from TensorFlow's
// definitions, gradients against finite differences for every mode, f32 against f64, and the
// refusals.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/op_check.h"

namespace dermal::test {
namespace {

// Resize at opset 18 from [1, 1, h, w] (or the given shape) to sizes, in `mode`.
OpCase resize_case(const std::string& mode, Tensor x, int64_t oh, int64_t ow, bool antialias = false) {
  OpCase c{"Resize"};
  c.opset = 18;
  c.attrs.set("mode", mode);
  if (antialias) c.attrs.set("antialias", int64_t{1});
  const Shape s = x.shape();
  c.input(std::move(x)).absent().absent().weight(Tensor::from_ints({4}, {s[0], s[1], oh, ow}));
  return c;
}

Tensor plane(int64_t h, int64_t w, const std::vector<double>& v) { return Tensor::from_doubles({1, 1, h, w}, v); }

void expect_near_all(const Tensor& t, const std::vector<double>& expected, double tol, const std::string& what) {
  const std::vector<double> got = t.to_doubles();
  ASSERT_EQ(got.size(), expected.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], tol) << what << " element " << i;
}

TEST(ResizeOp, TensorFlowAntialiasedModesMatchPillow) {
  std::ifstream f(std::string(DERMAL_SOURCE_DIR) + "/tests/data/resize/resize_reference.json");
  ASSERT_TRUE(f) << "tests/data/resize/resize_reference.json (tools/reference/make_resize_reference.py)";
  const nlohmann::json ref = nlohmann::json::parse(f);
  ASSERT_GE(ref["cases"].size(), 12u);
  for (const auto& k : ref["cases"]) {
    const int64_t h = k["input_shape"][0], w = k["input_shape"][1], oh = k["output_shape"][0], ow = k["output_shape"][1];
    const std::string mode = k["mode"];
    OpCase c = resize_case(mode, plane(h, w, k["input"].get<std::vector<double>>()), oh, ow, true);
    expect_near_all(run_op(c, DType::f64)[0], k["output"].get<std::vector<double>>(), 2e-6,
                    mode + " " + std::to_string(h) + "x" + std::to_string(w) + " -> " + std::to_string(oh) + "x" + std::to_string(ow));
  }
}

// Values from TensorFlow's definitions, worked by hand.
TEST(ResizeOp, TensorFlowModesByHand) {
  // resize_area, 3 -> 2 columns: each output covers 1.5 input pixels.
  expect_near_all(run_op(resize_case("tf_area", plane(1, 3, {3, 6, 9}), 1, 2), DType::f64)[0],
                  {(3 + 0.5 * 6) / 1.5, (0.5 * 6 + 9) / 1.5}, 1e-12, "area 3->2");
  // Bilinear (half-pixel centres) 2 -> 4: samples at -0.25, 0.25, 0.75, 1.25; outside, the edge.
  expect_near_all(run_op(resize_case("tf_bilinear", plane(1, 2, {0, 4}), 1, 4), DType::f64)[0], {0, 1, 3, 4}, 1e-12,
                  "bilinear 2->4");
  // Bicubic 2 -> 4 on [0, 4], samples at -0.25, 0.25, 0.75, 1.25. Keys (a = -0.5) weighs
  // 0.8671875 at distance 0.25, 0.2265625 at 0.75 and -0.0703125 at 1.25; taps outside the two
  // pixels are dropped and the rest renormalised.
  const double k25 = 0.8671875, k75 = 0.2265625, k125 = -0.0703125;
  expect_near_all(run_op(resize_case("tf_bicubic", plane(1, 2, {0, 4}), 1, 4), DType::f64)[0],
                  {k125 * 4 / (k25 + k125), k75 * 4 / (k25 + k75), k25 * 4 / (k25 + k75), k25 * 4 / (k25 + k125)}, 1e-12,
                  "bicubic 2->4");
  // Gaussian (radius 1.5, sigma 0.5) at the same size: each output mixes its neighbours by
  // exp(-2) (distance 1), normalised; the end pixels lose the tap outside.
  const double e = std::exp(-2.0);
  expect_near_all(run_op(resize_case("tf_gaussian", plane(1, 3, {1, 2, 4}), 1, 3), DType::f64)[0],
                  {(1 + 2 * e) / (1 + e), (2 + e * 5) / (1 + 2 * e), (4 + 2 * e) / (1 + e)}, 1e-12, "gaussian 3->3");
  // Mitchell-Netravali (B = C = 1/3) at the same size: 8/9 at 0, 1/18 at distance 1.
  const double m0 = 8.0 / 9, m1 = 1.0 / 18;
  expect_near_all(run_op(resize_case("tf_mitchellcubic", plane(1, 3, {1, 2, 4}), 1, 3), DType::f64)[0],
                  {(m0 * 1 + m1 * 2) / (m0 + m1), (m0 * 2 + m1 * 5) / (m0 + 2 * m1), (m0 * 4 + m1 * 2) / (m0 + m1)}, 1e-12,
                  "mitchellcubic 3->3");
  // Lanczos at the same size is the identity (sinc vanishes at every other integer).
  for (const char* mode : {"tf_lanczos3", "tf_lanczos5"})
    expect_near_all(run_op(resize_case(mode, plane(2, 3, {1, -2, 4, 0.5, 3, -1}), 2, 3), DType::f64)[0],
                    {1, -2, 4, 0.5, 3, -1}, 1e-10, mode);
  // Nearest with TensorFlow's rule (ONNX tf_half_pixel_for_nn, floor), 5 -> 3: floor((o + 0.5) * 5 / 3).
  OpCase nn = resize_case("nearest", plane(1, 5, {0, 1, 2, 3, 4}), 1, 3);
  nn.attrs.set("coordinate_transformation_mode", std::string("tf_half_pixel_for_nn"));
  nn.attrs.set("nearest_mode", std::string("floor"));
  expect_near_all(run_op(nn, DType::f64)[0], {0, 2, 4}, 0, "nearest 5->3");
}

TEST(ResizeOp, GradientsMatchFiniteDifferences) {
  std::mt19937 rng(5);
  struct Size { int64_t h, w, oh, ow; };
  const std::vector<Size> sizes{{7, 5, 3, 9}, {4, 6, 11, 4}, {5, 5, 5, 5}};
  for (const char* mode : {"nearest", "linear", "cubic", "tf_area", "tf_bilinear", "tf_bicubic", "tf_lanczos3",
                           "tf_lanczos5", "tf_gaussian", "tf_mitchellcubic"}) {
    for (bool antialias : {false, true}) {
      for (const Size& s : sizes) {
        OpCase c = resize_case(mode, random_tensor({2, 3, s.h, s.w}, rng), s.oh, s.ow, antialias);
        if (std::string(mode) == "cubic") c.attrs.set("exclude_outside", int64_t{antialias});
        SCOPED_TRACE(std::string(mode) + (antialias ? " antialias" : ""));
        expect_vjp_matches_fd(c);
        expect_fast_matches_reference(c, 1e-5, 1e-5);
      }
    }
  }
}

TEST(ResizeOp, Errors) {
  const Tensor x = plane(2, 2, {1, 2, 3, 4});
  expect_op_error(resize_case("bilinear", x, 4, 4), ErrorKind::invalid_model, {"op 'Resize'", "unknown mode 'bilinear'"});
  OpCase crop = resize_case("linear", x, 4, 4);
  crop.attrs.set("coordinate_transformation_mode", std::string("tf_crop_and_resize"));
  expect_op_error(crop, ErrorKind::unsupported, {"Resize", "tf_crop_and_resize"});
  OpCase channels{"Resize"};
  channels.opset = 18;
  channels.input(x).absent().absent().weight(Tensor::from_ints({4}, {1, 2, 2, 2}));
  expect_op_error(channels, ErrorKind::unsupported, {"Resize", "H and W only"});
  OpCase zero{"Resize"};
  zero.opset = 18;
  zero.input(x).absent().weight(Tensor::from_doubles({4}, {1, 1, 0, 2}));
  expect_op_error(zero, ErrorKind::invalid_model, {"Resize", "positive"});
  OpCase runtime{"Resize"};
  runtime.opset = 18;
  runtime.input(x).absent().input(Tensor::from_doubles({4}, {1, 1, 2, 2}));
  expect_op_error(runtime, ErrorKind::unsupported, {"Resize", "known at load"});
  OpCase huge = resize_case("nearest", x, 2, 2);
  huge.inputs[3] = Tensor::from_ints({4}, {1, 1, 2, int64_t{1} << 40});
  expect_op_error(huge, ErrorKind::invalid_model, {"Resize", "between 1 and 10^7"});
}

}  // namespace
}  // namespace dermal::test
