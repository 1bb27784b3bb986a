#include "engine/op_check.h"
#include "error_check.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>

namespace dermal::test {

using engine::KernelConfig;
using engine::OpContext;
using engine::TensorInfo;

std::string OpCase::describe() const {
  std::ostringstream s;
  s << type << "(";
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (i) s << ", ";
    s << (inputs[i].defined() ? engine::shape_str(inputs[i].shape()) : "absent") << (known[i] ? "k" : "");
  }
  s << ")";
  return s.str();
}

Tensor random_tensor(const Shape& shape, std::mt19937& rng, double lo, double hi) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(static_cast<size_t>(engine::shape_numel(shape)));
  for (double& x : v) x = dist(rng);
  return Tensor::from_doubles(shape, v);
}

namespace {

bool is_float(const Tensor& t) { return t.dtype() == DType::f32 || t.dtype() == DType::f64; }

struct Prepared {
  std::shared_ptr<engine::Op> op;
  KernelConfig cfg;
  std::vector<Tensor> in;   // converted to compute dtype and layout
  std::vector<Tensor> known_store;
  std::unique_ptr<engine::Kernel> kernel;
  std::vector<Tensor> out;
};

Prepared prepare(const OpCase& c, DType compute, Layout layout) {
  Prepared p;
  OpContext ctx{c.type, "test", c.opset, c.inputs.size() - (c.post_add ? 1 : 0), c.num_outputs};
  p.op = engine::create_op(c.attrs, ctx);
  std::vector<TensorInfo> infos;
  p.known_store.resize(c.inputs.size());
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const Tensor& t = c.inputs[i];
    p.cfg.present.push_back(t.defined());
    if (!t.defined()) {
      infos.push_back({});
      p.in.emplace_back();
      p.cfg.known.push_back(nullptr);
      p.cfg.input_layouts.push_back(Layout::plain);
      continue;
    }
    Tensor v = is_float(t) ? t.to_dtype(compute) : t.clone();
    Layout l = Layout::plain;
    if (!c.known[i] && is_float(t) && t.rank() == 4 && layout == Layout::nhwc && p.op->accepts_nhwc(i))
      l = Layout::nhwc;
    p.known_store[i] = v;
    p.cfg.known.push_back(c.known[i] ? &p.known_store[i] : nullptr);
    p.in.push_back(v.to_layout(l));
    p.cfg.input_layouts.push_back(l);
    infos.push_back({v.dtype(), v.shape()});
  }
  p.cfg.compute = compute;
  p.cfg.inputs = infos;
  if (c.post_eltwise) p.cfg.post_eltwise = c.post_eltwise;
  p.cfg.post_add = c.post_add;
  p.cfg.outputs = p.op->infer(infos, p.cfg.known);
  p.cfg.output_layouts.assign(p.cfg.outputs.size(), Layout::plain);
  p.kernel = p.op->make_kernel(p.cfg);
  for (size_t k = 0; k < p.cfg.outputs.size(); ++k)
    p.out.push_back(Tensor::zeros(p.cfg.outputs[k].dtype, p.cfg.outputs[k].shape, p.cfg.output_layouts[k]));
  p.kernel->forward(p.in, p.out);
  return p;
}

Tensor to_f64_plain(const Tensor& t) { return is_float(t) ? t.to_dtype(DType::f64) : t.to_layout(Layout::plain); }

double weighted_sum(const std::vector<Tensor>& outs, const std::vector<Tensor>& seeds) {
  double s = 0;
  for (size_t k = 0; k < outs.size() && k < seeds.size(); ++k) {
    auto o = outs[k].to_doubles();
    auto g = seeds[k].to_doubles();
    for (size_t i = 0; i < o.size(); ++i) s += o[i] * g[i];
  }
  return s;
}

// Fails (returns false) when an output is trivial and the case did not say it would be.
bool outputs_are_informative(const OpCase& c, const std::vector<Tensor>& outs) {
  for (size_t k = 0; k < outs.size(); ++k) {
    const auto& allowed = c.trivial_outputs_expected;
    if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) continue;
    const std::string why = trivial_output(outs[k]);
    if (!why.empty()) {
      ADD_FAILURE() << c.describe() << " forward output " << k << " is " << why
                    << ": nothing to check against (expect_trivial_output(" << k << ") if the case means it)";
      return false;
    }
  }
  return true;
}

}  // namespace

std::string trivial_output(const Tensor& t) {
  const std::vector<double> v = t.to_doubles();
  if (v.empty()) return "empty";
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) {
      std::ostringstream s;
      s << "not finite (element " << i << " = " << v[i] << ")";
      return s.str();
    }
  }
  if (std::all_of(v.begin(), v.end(), [](double x) { return x == 0; })) return "all zeros";
  if (v.size() > 1 && std::all_of(v.begin(), v.end(), [&](double x) { return x == v[0]; })) {
    std::ostringstream s;
    s << "constant (" << v[0] << ")";
    return s.str();
  }
  return "";
}

std::vector<Tensor> run_op(const OpCase& c, DType compute, Layout layout) {
  Prepared p = prepare(c, compute, layout);
  std::vector<Tensor> out;
  for (auto& t : p.out) out.push_back(to_f64_plain(t));
  return out;
}

std::vector<Tensor> run_op_backward(const OpCase& c, const std::vector<Tensor>& seeds, DType compute, Layout layout) {
  Prepared p = prepare(c, compute, layout);
  std::vector<Tensor> d_out, d_in;
  for (size_t k = 0; k < p.out.size(); ++k)
    d_out.push_back(k < seeds.size() ? seeds[k].to_dtype(compute).to_layout(p.out[k].layout()) : Tensor());
  for (size_t i = 0; i < p.in.size(); ++i) {
    bool wanted = p.in[i].defined() && !c.known[i] && is_float(p.in[i]) && p.op->differentiable(i);
    d_in.push_back(wanted ? Tensor::zeros(compute, p.in[i].shape(), p.in[i].layout()) : Tensor());
  }
  p.kernel->backward(p.in, p.out, d_out, d_in);
  std::vector<Tensor> grads;
  for (auto& g : d_in) grads.push_back(g.defined() ? to_f64_plain(g) : Tensor());
  return grads;
}

std::string compare(const Tensor& actual, const Tensor& expected, double atol, double rtol) {
  if (actual.shape() != expected.shape())
    return "shape " + engine::shape_str(actual.shape()) + " != expected " + engine::shape_str(expected.shape());
  auto a = actual.to_doubles(), e = expected.to_doubles();
  for (size_t i = 0; i < a.size(); ++i) {
    bool both_nan = std::isnan(a[i]) && std::isnan(e[i]);
    if (!both_nan && !(std::abs(a[i] - e[i]) <= atol + rtol * std::abs(e[i]))) {
      std::ostringstream s;
      s << "element " << i << ": got " << a[i] << ", expected " << e[i];
      return s.str();
    }
  }
  return "";
}

void expect_op_error(const OpCase& c, ErrorKind kind, const std::vector<std::string>& fragments) {
  SCOPED_TRACE(c.describe());
  expect_error([&] { run_op(c, DType::f32); }, {kind}, fragments);
}

Layout kernel_output_layout(const std::string& type, const Attributes& attrs, const std::vector<Shape>& shapes,
                            const std::vector<Layout>& layouts) {
  OpContext ctx{type, "test", 13, shapes.size(), 1};
  auto op = engine::create_op(attrs, ctx);
  KernelConfig cfg;
  for (const Shape& s : shapes) {
    cfg.inputs.push_back({DType::f32, s});
    cfg.present.push_back(true);
    cfg.known.push_back(nullptr);
  }
  cfg.input_layouts = layouts;
  cfg.outputs = op->infer(cfg.inputs, cfg.known);
  op->make_kernel(cfg);
  return cfg.output_layouts.at(0);
}

void expect_vjp_matches_fd(const OpCase& c, double h, double atol, double rtol) {
  std::mt19937 rng(1234);
  std::vector<Tensor> outs = run_op(c, DType::f64);
  if (!outputs_are_informative(c, outs)) return;
  std::vector<Tensor> seeds;
  for (auto& o : outs) seeds.push_back(random_tensor(o.shape(), rng));
  std::vector<Tensor> grads = run_op_backward(c, seeds, DType::f64);
  size_t checked = 0;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    if (!grads[i].defined()) continue;
    const int64_t n = c.inputs[i].numel();
    // Every element for small inputs; a spread sample for large ones.
    const int64_t step = std::max<int64_t>(1, n / 300);
    auto g = grads[i].to_doubles();
    for (int64_t j = 0; j < n; j += step) {
      OpCase plus = c, minus = c;
      plus.inputs[i] = c.inputs[i].to_dtype(DType::f64);
      minus.inputs[i] = c.inputs[i].to_dtype(DType::f64);
      plus.inputs[i].data<double>()[j] += h;
      minus.inputs[i].data<double>()[j] -= h;
      double fd = (weighted_sum(run_op(plus, DType::f64), seeds) - weighted_sum(run_op(minus, DType::f64), seeds)) / (2 * h);
      ASSERT_NEAR(g[j], fd, atol + rtol * std::abs(fd)) << c.describe() << ": d input " << i << " element " << j;
      ++checked;
    }
  }
  ASSERT_GT(checked, 0u) << c.describe() << ": no differentiable input was checked";
}

void expect_fast_matches_reference(const OpCase& c, double atol, double rtol) {
  std::mt19937 rng(99);
  std::vector<Tensor> ref = run_op(c, DType::f64);
  if (!outputs_are_informative(c, ref)) return;
  std::vector<Tensor> seeds;
  for (auto& o : ref) seeds.push_back(random_tensor(o.shape(), rng));
  std::vector<Tensor> ref_grads = run_op_backward(c, seeds, DType::f64);
  for (Layout layout : {Layout::plain, Layout::nhwc}) {
    const char* lname = layout == Layout::plain ? "plain" : "nhwc";
    std::vector<Tensor> fast = run_op(c, DType::f32, layout);
    ASSERT_EQ(fast.size(), ref.size());
    for (size_t k = 0; k < ref.size(); ++k) {
      std::string diff = compare(fast[k], ref[k], atol, rtol);
      EXPECT_EQ(diff, "") << c.describe() << " forward output " << k << " (" << lname << ")";
    }
    std::vector<Tensor> fast_grads = run_op_backward(c, seeds, DType::f32, layout);
    for (size_t i = 0; i < ref_grads.size(); ++i) {
      if (!ref_grads[i].defined()) continue;
      std::string diff = compare(fast_grads[i], ref_grads[i], atol, rtol);
      EXPECT_EQ(diff, "") << c.describe() << " gradient of input " << i << " (" << lname << ")";
    }
  }
}

}  // namespace dermal::test
