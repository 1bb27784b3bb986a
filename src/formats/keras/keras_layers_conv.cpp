// Keras layers with kernels: Conv2D, DepthwiseConv2D, SeparableConv2D, Dense.
// Kernels are converted once, at load: HWIO -> OIHW, depthwise HW C M -> (C*M) 1 H W.
#include "formats/keras/keras_layer.h"

namespace dermal::formats::keras {
namespace {

using engine::Attributes;
using engine::Shape;
using engine::Tensor;

// Strides, dilations and padding of a 2-D convolution, as ONNX Conv attributes. Keras 'same' is
// TensorFlow's rule: the odd padding pixel goes at the end, which is SAME_UPPER.
Attributes conv_attrs(const LayerCall& c, int64_t kh, int64_t kw, int64_t group) {
  Attributes a;
  a.set("kernel_shape", std::vector<int64_t>{kh, kw});
  a.set("strides", c.ints("strides", 2, {1, 1}));
  a.set("dilations", c.ints("dilation_rate", 2, {1, 1}));
  a.set("group", group);
  const std::string padding = c.str("padding", "valid");
  if (padding == "same") a.set("auto_pad", std::string("SAME_UPPER"));
  else if (padding == "valid") a.set("pads", std::vector<int64_t>{0, 0, 0, 0});
  else c.fail("padding '" + padding + "' is not supported (valid, same)");
  return a;
}

void check_shape(const LayerCall& c, const Tensor& t, size_t rank, const char* what) {
  if (t.rank() != static_cast<int>(rank))
    c.fail(std::string(what) + " has shape " + engine::shape_str(t.shape()), ErrorKind::invalid_model);
}

KTensor conv2d(LayerCall& c) {
  c.need_rank(4);
  c.need_channels_last();
  const bool use_bias = c.flag("use_bias", true);
  auto w = c.weights(use_bias ? 2 : 1);
  check_shape(c, w[0], 4, "kernel");
  const int64_t groups = c.ints("groups", 1, {1})[0];
  const Shape& k = w[0].shape();  // kh, kw, in / groups, out
  std::vector<std::string> in = {c.in().name, c.constant("kernel", permuted(w[0], {3, 2, 0, 1}))};
  if (use_bias) in.push_back(c.constant("bias", w[1]));
  const json& act = c.cfg("activation");
  KTensor y{c.op("Conv", in, c.main_out(act), conv_attrs(c, k[0], k[1], groups)), 4};
  return c.activation(y, act);
}

KTensor depthwise_conv2d(LayerCall& c) {
  c.need_rank(4);
  c.need_channels_last();
  // Teachable Machine's files carry "groups" here too (inherited from Conv2D): it means nothing.
  const bool use_bias = c.flag("use_bias", true);
  auto w = c.weights(use_bias ? 2 : 1);
  check_shape(c, w[0], 4, "depthwise kernel");
  const Shape& k = w[0].shape();  // kh, kw, channels, depth_multiplier
  // Output channel c*M + m: TensorFlow's order, and ONNX's for group = C.
  Tensor weight = permuted(w[0], {2, 3, 0, 1}, {k[2] * k[3], 1, k[0], k[1]});
  std::vector<std::string> in = {c.in().name, c.constant("kernel", weight)};
  if (use_bias) in.push_back(c.constant("bias", w[1]));
  const json& act = c.cfg("activation");
  KTensor y{c.op("Conv", in, c.main_out(act), conv_attrs(c, k[0], k[1], k[2])), 4};
  return c.activation(y, act);
}

KTensor separable_conv2d(LayerCall& c) {
  c.need_rank(4);
  c.need_channels_last();
  const bool use_bias = c.flag("use_bias", true);
  auto w = c.weights(use_bias ? 3 : 2);  // depthwise kernel, pointwise kernel, bias
  check_shape(c, w[0], 4, "depthwise kernel");
  check_shape(c, w[1], 4, "pointwise kernel");
  const Shape& k = w[0].shape();
  Tensor dw = permuted(w[0], {2, 3, 0, 1}, {k[2] * k[3], 1, k[0], k[1]});
  std::string mid = c.op("Conv", {c.in().name, c.constant("depthwise_kernel", dw)}, c.out + "/depthwise",
                         conv_attrs(c, k[0], k[1], k[2]));
  std::vector<std::string> in = {mid, c.constant("pointwise_kernel", permuted(w[1], {3, 2, 0, 1}))};
  if (use_bias) in.push_back(c.constant("bias", w[2]));
  Attributes pw;
  pw.set("kernel_shape", std::vector<int64_t>{1, 1});
  pw.set("pads", std::vector<int64_t>{0, 0, 0, 0});
  const json& act = c.cfg("activation");
  KTensor y{c.op("Conv", in, c.main_out(act), pw), 4};
  return c.activation(y, act);
}

// Dense acts on the last axis of any rank: Gemm for (N, in), a 1x1 convolution for images
// (channels are axis 1 in the graph), MatMul + Add otherwise.
KTensor dense(LayerCall& c) {
  const bool use_bias = c.flag("use_bias", true);
  auto w = c.weights(use_bias ? 2 : 1);
  check_shape(c, w[0], 2, "kernel");
  const json& act = c.cfg("activation");
  const std::string out = c.main_out(act);
  const KTensor& x = c.in();
  std::string y;
  if (x.rank == 2) {
    std::vector<std::string> in = {x.name, c.constant("kernel", w[0])};
    if (use_bias) in.push_back(c.constant("bias", w[1]));
    y = c.op("Gemm", in, out);
  } else if (x.rank == 4) {
    const Shape& k = w[0].shape();
    std::vector<std::string> in = {x.name, c.constant("kernel", permuted(w[0], {1, 0}, {k[1], k[0], 1, 1}))};
    if (use_bias) in.push_back(c.constant("bias", w[1]));
    Attributes a;
    a.set("kernel_shape", std::vector<int64_t>{1, 1});
    y = c.op("Conv", in, out, a);
  } else {
    if (!use_bias) {
      y = c.op("MatMul", {x.name, c.constant("kernel", w[0])}, out);
    } else {
      std::string m = c.op("MatMul", {x.name, c.constant("kernel", w[0])}, c.out + "/matmul");
      y = c.op("Add", {m, c.constant("bias", w[1])}, out);
    }
  }
  return c.activation(KTensor{y, x.rank}, act);
}

const LayerRegistration registration{
    {"Conv2D", conv2d},
    {"Convolution2D", conv2d},
    {"DepthwiseConv2D", depthwise_conv2d},
    {"SeparableConv2D", separable_conv2d},
    {"SeparableConvolution2D", separable_conv2d},
    {"Dense", dense},
};

}  // namespace
}  // namespace dermal::formats::keras
