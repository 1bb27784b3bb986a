// Test harness for single ops, at the kernel level:
//  - expect_vjp_matches_fd: the f64 reference backward against central finite differences;
//  - expect_fast_matches_reference: the f32 (oneDNN) kernel, in plain and channels-last
//    layouts, against the f64 reference kernel, forward and backward.
//
//   OpCase c{"Conv", attrs};
//   c.input(random_tensor({1, 3, 7, 7}, rng));
//   c.weight(random_tensor({4, 3, 3, 3}, rng));      // known at plan time, not differentiated
//   expect_vjp_matches_fd(c);
//   expect_fast_matches_reference(c);
#pragma once

#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/op.h"

namespace dermal::test {

using engine::Attributes;
using engine::DType;
using engine::Layout;
using engine::Shape;
using engine::Tensor;
using dermal::ErrorKind;

struct OpCase {
  explicit OpCase(std::string op_type) : type(std::move(op_type)) {}
  std::string type;
  Attributes attrs;
  int opset = 13;
  size_t num_outputs = 1;
  std::vector<Tensor> inputs;  // f64 (data, weights) or i64 (shape arguments); undefined = absent
  std::vector<bool> known;     // known at plan time: weights and shape arguments
  std::optional<engine::EltwiseSpec> post_eltwise;  // a fused activation (ops that accept one)
  // The last input is a fused Add's residual (KernelConfig::post_add, at engine::kResidualInput),
  // not one of the op's own inputs: the op is made with one input fewer.
  bool post_add = false;
  // The checks below refuse a forward output that is empty, constant (all zeros included) or
  // not finite: a kernel that writes nothing passes a gradient check too. A case whose output is
  // meant to be like that (Dropout's all-ones mask) names it with expect_trivial_output(k).
  std::vector<size_t> trivial_outputs_expected;

  OpCase& input(Tensor t) { return add(std::move(t), false); }
  OpCase& weight(Tensor t) { return add(std::move(t), true); }
  OpCase& absent() { return add(Tensor(), false); }
  OpCase& expect_trivial_output(size_t output) {
    trivial_outputs_expected.push_back(output);
    return *this;
  }
  OpCase& add(Tensor t, bool is_known) {
    inputs.push_back(std::move(t));
    known.push_back(is_known);
    return *this;
  }
  std::string describe() const;
};

// Uniform values in [lo, hi), f64, plain.
Tensor random_tensor(const Shape& shape, std::mt19937& rng, double lo = -1.0, double hi = 1.0);

// Runs the op's kernel. compute = f64 (reference) or f32 (fast path); rank-4 data inputs are
// given in `layout` where the op accepts it. Outputs come back plain, in f64.
std::vector<Tensor> run_op(const OpCase& c, DType compute, Layout layout = Layout::plain);
// Gradients of each non-known input for the seed gradients on the outputs (f64, plain).
std::vector<Tensor> run_op_backward(const OpCase& c, const std::vector<Tensor>& seeds, DType compute,
                                    Layout layout = Layout::plain);

// Both checks first fail the current gtest if a forward output is trivial (see
// OpCase::trivial_outputs_expected).
// Fails the current gtest if the analytic VJP differs from central differences (step h) by more
// than atol + rtol * |fd| at any element.
void expect_vjp_matches_fd(const OpCase& c, double h = 1e-6, double atol = 1e-6, double rtol = 1e-5);
// Fails if the f32 kernel differs from the f64 one, forward or backward, beyond the tolerances.
void expect_fast_matches_reference(const OpCase& c, double atol = 1e-4, double rtol = 1e-4);

// Expects running the op (f32) to fail with this kind, the message holding every fragment.
void expect_op_error(const OpCase& c, ErrorKind kind, const std::vector<std::string>& fragments);

// The layout an f32 kernel picks for its output when its inputs (data, none known) arrive in
// these layouts: what the planner relies on to avoid reorders.
Layout kernel_output_layout(const std::string& type, const Attributes& attrs, const std::vector<Shape>& shapes,
                            const std::vector<Layout>& layouts);

// Why this output cannot tell a working kernel from a broken one (empty, constant, all zeros,
// not finite), or "" when it can.
std::string trivial_output(const Tensor& t);

// Max |a-b| / (atol + rtol*|b|) style comparison; returns a message or "" when close.
std::string compare(const Tensor& actual, const Tensor& expected, double atol, double rtol);

}  // namespace dermal::test
