// Merging layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate.
#include "formats/keras/keras_layer.h"

namespace dermal::formats::keras {
namespace {

// Folds the inputs left to right with a binary op; the last result is the layer's output.
KTensor fold(LayerCall& c, const char* type, const std::string& final_out) {
  if (c.inputs.size() < 2) c.fail("needs at least 2 inputs, got " + std::to_string(c.inputs.size()), ErrorKind::invalid_model);
  std::string acc = c.inputs[0].name;
  for (size_t i = 1; i < c.inputs.size(); ++i) {
    const bool last = i + 1 == c.inputs.size();
    acc = c.op(type, {acc, c.inputs[i].name}, last ? final_out : c.out + "/partial" + std::to_string(i));
  }
  return KTensor{acc, c.inputs[0].rank};
}

KTensor add(LayerCall& c) {
  c.weights(0);
  return fold(c, "Add", c.out);
}

KTensor multiply(LayerCall& c) {
  c.weights(0);
  return fold(c, "Mul", c.out);
}

KTensor subtract(LayerCall& c) {
  c.weights(0);
  if (c.inputs.size() != 2) c.fail("needs exactly 2 inputs", ErrorKind::invalid_model);
  return KTensor{c.op("Sub", {c.in(0).name, c.in(1).name}, c.out), c.in().rank};
}

KTensor average(LayerCall& c) {
  c.weights(0);
  KTensor sum = fold(c, "Add", c.out + "/sum");
  const float inv = 1.0f / static_cast<float>(c.inputs.size());
  return KTensor{c.op("Mul", {sum.name, c.scalar("inv_count", inv)}, c.out), sum.rank};
}

// max(a, b) = a + relu(b - a); min(a, b) = a - relu(a - b). The engine has no Max op, and
// these keep a gradient for both inputs.
KTensor extremum(LayerCall& c, bool maximum) {
  c.weights(0);
  if (c.inputs.size() < 2) c.fail("needs at least 2 inputs", ErrorKind::invalid_model);
  std::string acc = c.inputs[0].name;
  for (size_t i = 1; i < c.inputs.size(); ++i) {
    const std::string tag = c.out + "/" + std::to_string(i);
    const std::string& b = c.inputs[i].name;
    std::string d = maximum ? c.op("Sub", {b, acc}, tag + "/diff") : c.op("Sub", {acc, b}, tag + "/diff");
    std::string r = c.op("Relu", {d}, tag + "/relu");
    const std::string out = i + 1 == c.inputs.size() ? c.out : tag;
    acc = c.op(maximum ? "Add" : "Sub", {acc, r}, out);
  }
  return KTensor{acc, c.inputs[0].rank};
}

KTensor maximum(LayerCall& c) { return extremum(c, true); }
KTensor minimum(LayerCall& c) { return extremum(c, false); }

KTensor concatenate(LayerCall& c) {
  c.weights(0);
  const int rank = c.in().rank;
  const int axis = static_cast<int>(c.number("axis", -1));
  const int stored = stored_axis(axis, rank);
  if (stored <= 0) c.fail("axis " + std::to_string(axis) + " does not fit rank " + std::to_string(rank));
  std::vector<std::string> names;
  for (const KTensor& t : c.inputs) {
    if (t.rank != rank) c.fail("inputs have different ranks", ErrorKind::invalid_model);
    names.push_back(t.name);
  }
  engine::Attributes a;
  a.set("axis", int64_t{stored});
  return KTensor{c.op("Concat", names, c.out, a), rank};
}

const LayerRegistration registration{
    {"Add", add},         {"Subtract", subtract}, {"Multiply", multiply},       {"Average", average},
    {"Maximum", maximum}, {"Minimum", minimum},   {"Concatenate", concatenate},
};

}  // namespace
}  // namespace dermal::formats::keras
