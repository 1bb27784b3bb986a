// Pooling, padding, cropping and shape layers, and the layers that do nothing at inference.
// Flatten, Reshape and Permute see Keras' channels-last order: an image tensor is transposed
// back to N,H,W,C first.
#include <algorithm>
#include <limits>

#include "formats/keras/keras_layer.h"

namespace dermal::formats::keras {
namespace {

using engine::Attributes;
using engine::Tensor;

const std::vector<int64_t> kToNhwc = {0, 2, 3, 1}, kToNchw = {0, 3, 1, 2};

std::string transpose(const LayerCall& c, const std::string& x, const std::vector<int64_t>& perm, const std::string& out) {
  Attributes a;
  a.set("perm", perm);
  return c.op("Transpose", {x}, out, a);
}

KTensor pooling(LayerCall& c, const char* type) {
  c.need_rank(4);
  c.need_channels_last();
  const std::vector<int64_t> size = c.ints("pool_size", 2, {2, 2});
  Attributes a;
  a.set("kernel_shape", size);
  a.set("strides", c.ints("strides", 2, size));  // Keras: strides default to pool_size
  const std::string padding = c.str("padding", "valid");
  if (padding == "same") a.set("auto_pad", std::string("SAME_UPPER"));  // padding not counted in averages
  else if (padding == "valid") a.set("pads", std::vector<int64_t>{0, 0, 0, 0});
  else c.fail("padding '" + padding + "' is not supported (valid, same)");
  return KTensor{c.op(type, {c.in().name}, c.out, a, type[0] == 'M' ? 12 : 11), 4};
}

KTensor max_pooling(LayerCall& c) { return pooling(c, "MaxPool"); }
KTensor average_pooling(LayerCall& c) { return pooling(c, "AveragePool"); }

KTensor global_pooling(LayerCall& c, const char* type) {
  c.need_rank(4);
  c.need_channels_last();
  if (c.flag("keepdims", false)) return KTensor{c.op(type, {c.in().name}, c.out), 4};  // N,C,1,1 = Keras' N,1,1,C
  std::string pooled = c.op(type, {c.in().name}, c.out + "/keepdims");
  Attributes a;
  a.set("axis", int64_t{1});
  return KTensor{c.op("Flatten", {pooled}, c.out, a), 2};
}

KTensor global_average_pooling(LayerCall& c) { return global_pooling(c, "GlobalAveragePool"); }
KTensor global_max_pooling(LayerCall& c) { return global_pooling(c, "GlobalMaxPool"); }

KTensor flatten(LayerCall& c) {
  const KTensor& x = c.in();
  if (x.rank <= 2) return x;
  std::string src = x.rank == 4 ? transpose(c, x.name, kToNhwc, c.out + "/nhwc") : x.name;
  Attributes a;
  a.set("axis", int64_t{1});
  return KTensor{c.op("Flatten", {src}, c.out, a), 2};
}

KTensor reshape(LayerCall& c) {
  const KTensor& x = c.in();
  const json& target = c.cfg("target_shape");
  if (!target.is_array() || target.empty()) c.fail("config 'target_shape' is missing", ErrorKind::invalid_model);
  std::vector<int64_t> shape = {0};  // 0 keeps the batch
  for (const json& d : target) {
    const int64_t v = d.is_null() ? -1 : d.get<int64_t>();
    if (v == 0) c.fail("a zero dimension in target_shape is not supported");
    shape.push_back(v);
  }
  const int out_rank = static_cast<int>(shape.size());
  std::string src = x.rank == 4 ? transpose(c, x.name, kToNhwc, c.out + "/nhwc_in") : x.name;
  std::string shape_name = c.constant("shape", Tensor::from_ints({out_rank}, shape));
  std::string y = c.op("Reshape", {src, shape_name}, out_rank == 4 ? c.out + "/nhwc" : c.out);
  if (out_rank == 4) y = transpose(c, y, kToNchw, c.out);
  return KTensor{y, out_rank};
}

KTensor permute(LayerCall& c) {
  const KTensor& x = c.in();
  std::vector<int64_t> keras = {0};
  for (int64_t d : c.ints("dims", static_cast<size_t>(x.rank - 1), {})) keras.push_back(d);
  // A permutation of the axes after the batch (found by fuzz/keras_file.cpp: dims [1, 4, 2] on a
  // 4-D input indexed past the tables below).
  std::vector<int64_t> sorted(keras.begin() + 1, keras.end());
  std::sort(sorted.begin(), sorted.end());
  bool is_permutation = static_cast<int64_t>(sorted.size()) == x.rank - 1;
  for (size_t i = 0; i < sorted.size(); ++i) is_permutation = is_permutation && sorted[i] == static_cast<int64_t>(i) + 1;
  if (!is_permutation)
    c.fail("config 'dims' must be a permutation of 1.." + std::to_string(x.rank - 1), ErrorKind::invalid_model);
  std::vector<int64_t> perm = keras;
  if (x.rank == 4) {  // stored axis i holds Keras axis m[i]; Keras axis a sits at stored inv[a]
    const int64_t m[4] = {0, 3, 1, 2}, inv[4] = {0, 2, 3, 1};
    for (size_t i = 0; i < 4; ++i) perm[i] = inv[keras[static_cast<size_t>(m[i])]];
  }
  return KTensor{transpose(c, x.name, perm, c.out), x.rank};
}

// ((top, bottom), (left, right)) from 1, (1, 2) or ((1, 2), (3, 4)).
std::vector<int64_t> four_sides(const LayerCall& c, const std::string& key) {
  const json& v = c.cfg(key);
  if (v.is_number_integer()) {
    int64_t p = v.get<int64_t>();
    return {p, p, p, p};
  }
  if (v.is_array() && v.size() == 2 && v[0].is_number_integer() && v[1].is_number_integer())
    return {v[0].get<int64_t>(), v[0].get<int64_t>(), v[1].get<int64_t>(), v[1].get<int64_t>()};
  if (v.is_array() && v.size() == 2 && v[0].is_array() && v[1].is_array() && v[0].size() == 2 && v[1].size() == 2)
    return {v[0][0].get<int64_t>(), v[0][1].get<int64_t>(), v[1][0].get<int64_t>(), v[1][1].get<int64_t>()};
  c.fail("config '" + key + "' is not an int, a pair or a pair of pairs", ErrorKind::invalid_model);
}

KTensor zero_padding(LayerCall& c) {
  c.need_rank(4);
  c.need_channels_last();
  const auto p = four_sides(c, "padding");  // top, bottom, left, right
  std::string pads = c.constant("pads", Tensor::from_ints({8}, {0, 0, p[0], p[2], 0, 0, p[1], p[3]}));
  return KTensor{c.op("Pad", {c.in().name, pads}, c.out), 4};
}

KTensor cropping(LayerCall& c) {
  c.need_rank(4);
  c.need_channels_last();
  const auto p = four_sides(c, "cropping");
  const int64_t end = std::numeric_limits<int64_t>::max();
  std::string starts = c.constant("starts", Tensor::from_ints({2}, {p[0], p[2]}));
  std::string ends = c.constant("ends", Tensor::from_ints({2}, {p[1] ? -p[1] : end, p[3] ? -p[3] : end}));
  std::string axes = c.constant("axes", Tensor::from_ints({2}, {2, 3}));
  return KTensor{c.op("Slice", {c.in().name, starts, ends, axes}, c.out), 4};
}

// Training-only layers: the output is the input (no node; the tensor keeps its name).
KTensor passthrough(LayerCall& c) { return c.in(); }

const LayerRegistration registration{
    {"MaxPooling2D", max_pooling},
    {"MaxPool2D", max_pooling},
    {"AveragePooling2D", average_pooling},
    {"AvgPool2D", average_pooling},
    {"GlobalAveragePooling2D", global_average_pooling},
    {"GlobalAvgPool2D", global_average_pooling},
    {"GlobalMaxPooling2D", global_max_pooling},
    {"GlobalMaxPool2D", global_max_pooling},
    {"Flatten", flatten},
    {"Reshape", reshape},
    {"Permute", permute},
    {"ZeroPadding2D", zero_padding},
    {"Cropping2D", cropping},
    {"Dropout", passthrough},
    {"SpatialDropout1D", passthrough},
    {"SpatialDropout2D", passthrough},
    {"GaussianNoise", passthrough},
    {"GaussianDropout", passthrough},
    {"AlphaDropout", passthrough},
    {"ActivityRegularization", passthrough},
    {"RandomFlip", passthrough},
    {"RandomRotation", passthrough},
    {"RandomZoom", passthrough},
    {"RandomTranslation", passthrough},
    {"RandomContrast", passthrough},
    {"RandomBrightness", passthrough},
    {"RandomHeight", passthrough},
    {"RandomWidth", passthrough},
    // Keras 3's augmentation layers: each transforms only when training.
    {"RandomGrayscale", passthrough},
    {"RandomHue", passthrough},
    {"RandomSaturation", passthrough},
    {"RandomSharpness", passthrough},
    {"RandomColorJitter", passthrough},
    {"RandomColorDegeneration", passthrough},
    {"RandomShear", passthrough},
    {"RandomPerspective", passthrough},
    {"RandomErasing", passthrough},
    {"RandomGaussianBlur", passthrough},
    {"RandomInvert", passthrough},
    {"RandomPosterization", passthrough},
    {"RandomElasticTransform", passthrough},
    {"Solarization", passthrough},
    {"AugMix", passthrough},
    {"RandAugment", passthrough},
    {"CutMix", passthrough},
    {"MixUp", passthrough},
};

}  // namespace
}  // namespace dermal::formats::keras
