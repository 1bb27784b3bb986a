// Ops and kernels. An op is one ONNX operator with its attributes parsed and validated at load;
// it knows its shape rule and makes kernels. A kernel is an op compiled for concrete shapes,
// layouts and a compute dtype (f32: the fast oneDNN path; f64: the plain reference path used to
// check gradients), with forward and a vector-Jacobian product (backward) for its data inputs.
//
// One op lives in one file under engine/ops/ and registers itself in one line:
//
//   DERMAL_REGISTER_OP("Relu", make_relu_op);
//
// where make_relu_op(const Attributes&, const OpContext&) returns std::unique_ptr<Op>.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/attributes.h"
#include "engine/error.h"
#include "engine/tensor.h"

namespace dermal::engine {

struct TensorInfo {
  DType dtype = DType::f32;
  Shape shape;
};

// Where an op comes from, for error messages and opset-dependent rules.
struct OpContext {
  std::string type;
  std::string node;     // node name (may be empty in the file; importers then make one up)
  int opset = 13;
  size_t num_inputs = 0;   // as written in the node, absent optional inputs included
  size_t num_outputs = 0;
  // "op 'Conv' (node 'conv1', opset 13)": the prefix every error about this node starts with.
  std::string where() const;
  [[noreturn]] void fail(ErrorKind kind, const std::string& what) const;
};

// An elementwise activation that a convolution can apply as a oneDNN post-op. Only activations
// whose derivative can be computed from their output are listed, so backward through the fused
// kernel needs nothing the fused kernel did not keep.
struct EltwiseSpec {
  enum Kind { relu, clip, tanh, elu, sigmoid } kind = relu;
  float alpha = 0.f;  // relu: negative slope; clip: min; elu: alpha
  float beta = 0.f;   // clip: max
};

// What a kernel is compiled for. The kernel may set output_layouts.
struct KernelConfig {
  DType compute = DType::f32;            // dtype of data tensors (f32 or f64; bf16 plans: see Op::accepts_bf16)
  std::vector<TensorInfo> inputs;        // shapes; an absent optional input has an empty TensorInfo
  std::vector<bool> present;             // which inputs exist
  std::vector<const Tensor*> known;      // values known at plan time (weights, folded shapes)
  std::vector<Layout> input_layouts;     // layouts the inputs will arrive in
  std::vector<TensorInfo> outputs;       // from Op::infer
  std::vector<Layout> output_layouts;    // plain unless the kernel says otherwise
  std::optional<EltwiseSpec> post_eltwise;  // set only if Op::accepts_post_eltwise()
  // A fused residual Add (set only if Op::accepts_post_add()): input kResidualInput, of the
  // output's shape and layout, is added to the result before post_eltwise.
  bool post_add = false;
  // A dense 3x3 stride-1 f32 convolution may run Winograd's algorithm when its transformed
  // weights take at most this many bytes (0: never); see PlanOptions.
  size_t winograd_max_weight_bytes = 0;
};

// Where a fused residual Add's other operand arrives: after Conv's X, W and B.
inline constexpr size_t kResidualInput = 3;

// Which of a kernel's tensors the executor carries in Layout::nchw16c (Kernel::carry_blocked).
struct BlockedIo {
  bool input = false;     // input 0
  bool residual = false;  // input kResidualInput
  bool output = false;    // output 0
  // Nothing reads the residual after this kernel (nor is it input 0): its buffer may be overwritten.
  bool residual_expires = false;
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  // Inputs arrive in cfg.input_layouts; outputs are preallocated in cfg.output_layouts.
  virtual void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) = 0;
  // Vector-Jacobian product. d_out[k] is the gradient of output k (undefined: zero). For each
  // input i with d_in[i] defined, overwrite d_in[i] (preallocated, same layout as in[i]) with the
  // gradient of that input. Inputs that are not data (weights, shapes) are never asked for.
  virtual void backward(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
                        const std::vector<Tensor>& d_out, const std::vector<Tensor>& d_in);
  // Why this kernel runs plain loops where the op would use oneDNN (empty: it does not). The plan
  // lists these (PlanStats::fallbacks) so that a slow path is never silent.
  virtual std::string fallback_reason() const { return {}; }
  // The algorithm when it is not the op's usual one ("winograd"), for plan statistics and profiles.
  virtual std::string algorithm() const { return {}; }
  // Bytes of weights this kernel holds beyond the op's one packed copy (Winograd's transform).
  virtual size_t extra_weight_bytes() const { return 0; }
  // Temporary memory a forward needs beyond its inputs and outputs: the executor plans it in its
  // arena, alive during this kernel's step only, and hands it over once with use_scratch.
  virtual size_t scratch_bytes() const { return 0; }
  virtual void use_scratch(void* /*memory*/) {}
  // Kernels that run on Layout::nchw16c inside (Winograd convolutions) and convert their data
  // input, residual and output to and from it. Where a tensor's producer and all its readers are
  // such kernels, the executor carries it blocked instead, sparing a conversion on each side:
  // carry_blocked says so, once, before scratch_bytes is asked. Backward never sees a blocked tensor.
  virtual bool runs_blocked() const { return false; }
  virtual void carry_blocked(const BlockedIo& /*io*/) {}
  // Kernels that add the residual (input kResidualInput) by accumulating into output 0's buffer,
  // which must hold the residual when they start. Where the residual expires at this kernel, the
  // executor gives output 0 the residual's own buffer; elsewhere the kernel copies it in first.
  virtual bool sums_into_output() const { return false; }
};

class Op {
 public:
  explicit Op(OpContext ctx) : ctx_(std::move(ctx)) {}
  virtual ~Op() = default;
  const OpContext& context() const { return ctx_; }

  // Shape and dtype rule. known[i] is input i's value when known before running, else nullptr.
  // Throws Error naming the node on inconsistent shapes.
  virtual std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in,
                                        const std::vector<const Tensor*>& known) const = 0;
  // Outputs computable from input shapes alone (Shape, Size): lets chains around Reshape fold.
  virtual std::optional<std::vector<Tensor>> fold_from_shapes(const std::vector<TensorInfo>&) const {
    return std::nullopt;
  }
  virtual std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const = 0;

  // Is input i data that gradients flow through (as opposed to weights or shape arguments)?
  virtual bool differentiable(size_t input) const { return input == 0; }
  // Layout preferences for rank-4 data: may input i arrive channels-last? Should plain rank-4
  // inputs be converted to channels-last before this op (convolutions and pooling)?
  virtual bool accepts_nhwc(size_t /*input*/) const { return false; }
  virtual bool wants_nhwc() const { return false; }
  // Fusion: an activation that can ride on the preceding convolution, and the ops that take it.
  // known: the inputs' values known at plan time (Clip's min and max).
  virtual std::optional<EltwiseSpec> as_eltwise(const std::vector<const Tensor*>& /*known*/) const {
    return std::nullopt;
  }
  virtual bool accepts_post_eltwise() const { return false; }
  // Fusion: may an Add that alone reads this op's output ride on it (KernelConfig::post_add)?
  virtual bool accepts_post_add() const { return false; }
  // bf16 plans (PlanOptions::precision): may input i arrive stored in bf16 (KernelConfig::inputs
  // says so)? Such an op computes in bf16 where its input is, and may be asked for a bf16 output
  // (cfg.outputs[0].dtype); gradients stay f32.
  virtual bool accepts_bf16(size_t /*input*/) const { return false; }
  // Weights the op keeps in its own form (oneDNN's packed layout) in place of the graph's plain
  // tensor, shared by all its kernels: hold_weights hands input i's constant over, once, at load
  // (Graph::hold_weights_in_ops), and held_weight rebuilds the plain values on demand. Const
  // because ops are shared between plans; the op's weight store is what changes.
  virtual bool can_hold_weight(size_t /*input*/, const Tensor& /*value*/) const { return false; }
  virtual void hold_weight(size_t input, Tensor value) const;
  virtual Tensor held_weight(size_t input) const;

 protected:
  OpContext ctx_;
};

using OpFactory = std::function<std::unique_ptr<Op>(const Attributes&, const OpContext&)>;

class OpRegistry {
 public:
  static OpRegistry& global();
  bool add(const std::string& type, OpFactory factory);
  const OpFactory* find(const std::string& type) const;
  std::vector<std::string> types() const;

 private:
  std::vector<std::pair<std::string, OpFactory>> entries_;
};

// Creates and validates an op: unknown type or an attribute the op did not read -> Error(unsupported).
std::unique_ptr<Op> create_op(const Attributes& attrs, const OpContext& ctx);

#define DERMAL_CONCAT_INNER(a, b) a##b
#define DERMAL_CONCAT(a, b) DERMAL_CONCAT_INNER(a, b)
// Variadic so that a lambda with commas can be the factory.
#define DERMAL_REGISTER_OP(TYPE, ...) \
  static const bool DERMAL_CONCAT(dermal_registered_op_, __LINE__) = ::dermal::engine::OpRegistry::global().add(TYPE, __VA_ARGS__)

}  // namespace dermal::engine
