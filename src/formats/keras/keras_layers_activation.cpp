// Activation layers: Activation, ReLU, LeakyReLU, PReLU, ELU, Softmax.
#include <limits>
#include <numeric>

#include "formats/keras/keras_layer.h"

namespace dermal::formats::keras {
namespace {

using engine::Attributes;

KTensor activation(LayerCall& c) {
  c.weights(0);
  return c.activation(c.in(), c.cfg("activation"));
}

// ReLU(max_value, negative_slope, threshold): the forms Keras applications use (ReLU6, leaky).
KTensor relu(LayerCall& c) {
  c.weights(0);
  const KTensor& x = c.in();
  const double slope = c.number("negative_slope", 0.0), threshold = c.number("threshold", 0.0);
  const bool capped = c.has("max_value");
  const double max_value = capped ? c.number("max_value", 0.0) : 0.0;
  if (threshold != 0.0) c.fail("threshold " + std::to_string(threshold) + " is not supported (only 0)");
  if (capped && max_value <= 0) c.fail("max_value must be positive");
  if (slope == 0.0) {
    if (!capped) return KTensor{c.op("Relu", {x.name}, c.out), x.rank};
    Attributes a;
    a.set("min", 0.0);
    a.set("max", max_value);
    return KTensor{c.op("Clip", {x.name}, c.out, a, 6), x.rank};
  }
  Attributes leaky;
  leaky.set("alpha", slope);
  std::string y = c.op("LeakyRelu", {x.name}, capped ? c.out + "/leaky" : c.out, leaky);
  if (!capped) return KTensor{y, x.rank};
  Attributes clip;
  clip.set("min", -static_cast<double>(std::numeric_limits<float>::max()));
  clip.set("max", max_value);
  return KTensor{c.op("Clip", {y}, c.out, clip, 6), x.rank};
}

KTensor leaky_relu(LayerCall& c) {
  c.weights(0);
  Attributes a;  // Keras 2 calls it alpha, Keras 3 negative_slope; both default to 0.3
  a.set("alpha", c.has("negative_slope") ? c.number("negative_slope", 0.3) : c.number("alpha", 0.3));
  return KTensor{c.op("LeakyRelu", {c.in().name}, c.out, a), c.in().rank};
}

KTensor elu(LayerCall& c) {
  c.weights(0);
  Attributes a;
  a.set("alpha", c.number("alpha", 1.0));
  return KTensor{c.op("Elu", {c.in().name}, c.out, a), c.in().rank};
}

// PReLU's alpha has the input's shape without the batch (1 along shared_axes).
KTensor prelu(LayerCall& c) {
  const KTensor& x = c.in();
  auto w = c.weights(1);
  std::vector<int> axes;
  for (int a = 1; a < x.rank; ++a) axes.push_back(a);
  if (w[0].rank() != x.rank - 1) c.fail("alpha has shape " + engine::shape_str(w[0].shape()), ErrorKind::invalid_model);
  engine::Tensor slope = broadcastable(w[0], axes, x.rank);
  if (!slope.defined()) c.fail("alpha has shape " + engine::shape_str(w[0].shape()), ErrorKind::invalid_model);
  // The graph's PRelu broadcasts the slope from the right: drop the leading batch dim.
  engine::Shape s(slope.shape().begin() + 1, slope.shape().end());
  std::vector<int> same_order(static_cast<size_t>(slope.rank()));
  std::iota(same_order.begin(), same_order.end(), 0);
  engine::Tensor slope_nb = permuted(slope, same_order, s);
  return KTensor{c.op("PRelu", {x.name, c.constant("alpha", slope_nb)}, c.out, {}, 9), x.rank};
}

KTensor softmax(LayerCall& c) {
  c.weights(0);
  const KTensor& x = c.in();
  const std::vector<int64_t> axis = c.cfg("axis").is_array() ? c.ints("axis", 1, {-1}) : std::vector<int64_t>{static_cast<int64_t>(c.number("axis", -1))};
  Attributes a;
  a.set("axis", int64_t{stored_axis(static_cast<int>(axis[0]), x.rank)});
  return KTensor{c.op("Softmax", {x.name}, c.out, a), x.rank};
}

const LayerRegistration registration{
    {"Activation", activation}, {"ReLU", relu},   {"LeakyReLU", leaky_relu},
    {"ELU", elu},               {"PReLU", prelu}, {"Softmax", softmax},
};

}  // namespace
}  // namespace dermal::formats::keras
