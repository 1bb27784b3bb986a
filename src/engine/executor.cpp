#include "engine/executor.h"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <set>

#include "engine/dnnl_util.h"
#include "engine/planner.h"

namespace dermal::engine {

namespace {

// A tensor of the plan: a graph tensor, or a converted copy of one (another layout, or f32 <->
// bf16). info.dtype is how it is stored: bf16 only for what convolutions alone read in bf16 plans.
struct Slot {
  std::string name;
  TensorInfo info;
  Layout layout = Layout::plain;
  Tensor known;             // defined when its value is known at plan time
  bool held = false;        // a constant its reader's op holds (Graph::held_by_ops): no value here
  bool internal = false;    // a converted copy, not a graph tensor
  bool is_input = false;
  int producer = -1;        // step index; -1 for inputs
  int last_reader = -1;
  bool pinned = false;
  Tensor view;              // in the arena, once planned
};

// What rides on a convolution: a residual Add that alone reads its output (the Add's other
// operand comes in as the kernel's kResidualInput), then an activation that alone reads the result.
struct Fusion {
  const Node* add = nullptr;
  std::string residual;  // the Add's other operand
  const Node* act = nullptr;
  std::optional<EltwiseSpec> eltwise;  // act as the kernel applies it
  const Node* last(const Node* producer) const { return act ? act : add ? add : producer; }
};

struct Step {
  std::string label;
  std::shared_ptr<const Op> op;  // null for layout conversions
  std::unique_ptr<Kernel> kernel;
  std::vector<int> in, out;      // slot ids; -1 for an absent optional input
  int scratch = -1;              // slot of the kernel's temporaries (Kernel::scratch_bytes), if any
};

// What a stored tensor is read as (get, tensor_infos) and differentiated in: f32 for bf16.
DType widened(DType stored) { return stored == DType::bf16 ? DType::f32 : stored; }

// A kernel's temporaries (Kernel::scratch_bytes) as the f32 slot that holds them.
TensorInfo scratch_info(size_t bytes) {
  return {DType::f32, {static_cast<int64_t>((bytes + sizeof(float) - 1) / sizeof(float))}};
}

// Copies a tensor into another layout and/or between f32 and bf16; its gradient (f32 on both
// sides) is the same copy backwards. f32 and bf16 go through oneDNN's reorder (which rounds to
// nearest even, and runs on oneDNN's threads: MobileNetV2's 192 px image to channels-last took
// 0.066 ms in Tensor::copy_from's loops, 0.044 here, 1 thread); f64 and i64 through copy_from.
class ConvertKernel : public Kernel {
 public:
  ConvertKernel(const Shape& shape, DType from, Layout from_layout, DType to, Layout to_layout) {
    auto by_onednn = [](DType t) { return t == DType::f32 || t == DType::bf16; };
    if (!by_onednn(from) || !by_onednn(to) || shape_numel(shape) == 0) return;
    auto src = dnnl_util::desc(shape, from_layout, from), dst = dnnl_util::desc(shape, to_layout, to);
    reorder_ = dnnl::reorder(dnnl::reorder::primitive_desc(dnnl_util::cpu_engine(), src, dnnl_util::cpu_engine(), dst));
    src_md_ = src;
    dst_md_ = dst;
  }
  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    if (!reorder_) return out[0].copy_from(in[0]);
    dnnl_util::execute(reorder_, {{DNNL_ARG_FROM, dnnl_util::memory(src_md_, in[0].raw())},
                                  {DNNL_ARG_TO, dnnl_util::memory(dst_md_, out[0].raw())}});
  }
  void backward(const std::vector<Tensor>&, const std::vector<Tensor>&, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    if (!d_in[0].defined()) return;
    if (d_out[0].defined()) d_in[0].copy_from(d_out[0]);
    else d_in[0].fill_zero();
  }

 private:
  dnnl::reorder reorder_;
  dnnl::memory::desc src_md_, dst_md_;
};

bool is_float(DType t) { return t == DType::f32 || t == DType::f64; }

void accumulate(const Tensor& into, const Tensor& add) {
  DERMAL_ASSERT(into.layout() == add.layout() && into.numel() == add.numel());
  if (into.dtype() == DType::f32) {
    float* a = into.data<float>();
    const float* b = add.data<float>();
    for (int64_t i = 0; i < into.numel(); ++i) a[i] += b[i];
  } else {
    double* a = into.data<double>();
    const double* b = add.data<double>();
    for (int64_t i = 0; i < into.numel(); ++i) a[i] += b[i];
  }
}

}  // namespace

struct Executor::Impl {
  std::shared_ptr<const Graph> graph;
  PlanOptions opts;
  std::vector<Slot> slots;
  std::map<std::string, int> slot_of;
  std::vector<Step> steps;
  PlanStats stats;
  std::shared_ptr<void> arena;
  std::set<int> inputs_set;
  bool forward_done = false;
  bool bf16 = false;  // convolutions run in bf16 (asked for, and the CPU has it)

  int add_slot(Slot s) {
    slots.push_back(std::move(s));
    int id = static_cast<int>(slots.size()) - 1;
    if (!slots.back().internal) slot_of[slots.back().name] = id;
    return id;
  }

  int find(const std::string& name, const char* what) const {
    auto it = slot_of.find(name);
    if (it == slot_of.end()) throw Error(ErrorKind::invalid_input, std::string(what) + ": no tensor named '" + name + "'");
    return it->second;
  }

  DType data_dtype(DType t) const { return is_float(t) ? opts.compute : t; }

  void plan();
  void add_inputs_and_constants();
  void fold_or_schedule(std::vector<const Node*>& runtime);
  std::set<std::string> must_stay() const;
  std::map<const Node*, Fusion> choose_fusions(const std::vector<const Node*>& runtime);
  void build_steps(const std::vector<const Node*>& runtime, const std::map<const Node*, Fusion>& fused);
  bool bf16_readers_only(const std::string& name, const std::map<const Node*, const Node*>& add_rides_on) const;
  // Does n take input i in bf16: its op can, the plan is bf16, and n is not one of opts.f32_nodes.
  bool takes_bf16(const Node* n, size_t i) const { return bf16 && n->op->accepts_bf16(i) && !f32_nodes.count(n->name); }
  std::set<std::string> f32_nodes;
  using Conversions = std::map<std::tuple<int, Layout, DType>, int>;
  int converted(int slot, Layout layout, DType dtype, Conversions& cache);
  void pin();
  void pin_backward_region();
  void carry_blocked_layouts();
  std::vector<int> share_residual_buffers();
  void allocate();
  std::vector<bool> region(const std::vector<int>& from, const std::vector<int>& to, std::vector<bool>* reaches_to) const;
  void check_inputs_set() const;
  void run_step(Step& step);
  Tensor tensor_of(int slot) const { return slots[slot].known.defined() ? slots[slot].known : slots[slot].view; }
};

void Executor::Impl::add_inputs_and_constants() {
  for (const auto& [name, t] : graph->constants) {
    Slot s;
    s.name = name;
    s.known = is_float(t.dtype()) && t.dtype() != opts.compute ? t.to_dtype(opts.compute) : t;
    s.info = {s.known.dtype(), s.known.shape()};
    add_slot(std::move(s));
  }
  for (const auto& [name, info] : graph->held_by_ops) {
    Slot s;
    s.name = name;
    s.info = info;
    s.held = true;
    add_slot(std::move(s));
  }
  for (const auto& in : graph->inputs) {
    if (slot_of.count(in.name)) continue;  // an input with an initializer: the constant wins
    Slot s;
    s.name = in.name;
    s.is_input = true;
    if (auto v = opts.input_values.find(in.name); v != opts.input_values.end()) {
      s.known = v->second;
      s.info = {v->second.dtype(), v->second.shape()};
      add_slot(std::move(s));
      continue;
    }
    auto shape = opts.input_shapes.find(in.name);
    if (shape == opts.input_shapes.end())
      throw Error(ErrorKind::invalid_input, "no shape given for graph input '" + in.name + "'");
    const Shape& given = shape->second;
    bool matches = in.shape.empty() || in.shape.size() == given.size();
    for (size_t d = 0; matches && d < in.shape.size(); ++d) matches = in.shape[d] < 0 || in.shape[d] == given[d];
    for (int64_t d : given) matches = matches && d >= 0;
    if (!matches)
      throw Error(ErrorKind::invalid_input, "input '" + in.name + "' expects shape " + shape_str(in.shape) + ", got " +
                                                shape_str(given));
    s.info = {data_dtype(in.dtype), given};
    add_slot(std::move(s));
  }
}

// Nodes whose inputs are all known run now (folding); the rest are scheduled.
void Executor::Impl::fold_or_schedule(std::vector<const Node*>& runtime) {
  for (const Node& node : graph->nodes) {
    std::vector<TensorInfo> infos;
    std::vector<const Tensor*> known;
    std::vector<Tensor> values;
    bool all_known = true;
    for (const auto& name : node.inputs) {
      if (name.empty()) {
        infos.emplace_back();
        known.push_back(nullptr);
        values.emplace_back();
        continue;
      }
      const Slot& s = slots[find(name, node.name.c_str())];
      infos.push_back(s.info);
      known.push_back(s.known.defined() ? &s.known : nullptr);
      values.push_back(s.known);
      all_known = all_known && s.known.defined();
    }
    std::vector<TensorInfo> out_infos = node.op->infer(infos, known);
    if (out_infos.size() < node.outputs.size())
      node.op->context().fail(ErrorKind::invalid_model, "has more outputs than the op produces");
    std::vector<Tensor> folded;
    if (auto from_shapes = node.op->fold_from_shapes(infos)) {
      folded = *from_shapes;
    } else if (all_known) {
      KernelConfig cfg;
      cfg.compute = opts.compute;
      for (auto& i : infos)
        if (i.dtype == DType::f32 || i.dtype == DType::f64) cfg.compute = i.dtype;
      cfg.inputs = infos;
      cfg.known = known;
      for (const auto& v : values) cfg.present.push_back(v.defined());
      cfg.input_layouts.assign(infos.size(), Layout::plain);
      cfg.outputs = out_infos;
      cfg.output_layouts.assign(out_infos.size(), Layout::plain);
      auto kernel = node.op->make_kernel(cfg);
      for (const auto& o : out_infos) folded.push_back(Tensor::zeros(o.dtype, o.shape));
      kernel->forward(values, folded);
    }
    for (size_t k = 0; k < node.outputs.size(); ++k) {
      if (node.outputs[k].empty()) continue;
      Slot s;
      s.name = node.outputs[k];
      s.info = out_infos[k];
      if (!folded.empty()) {
        // Folded float values take the compute dtype, as constants do.
        s.known = is_float(folded[k].dtype()) && folded[k].dtype() != opts.compute ? folded[k].to_dtype(opts.compute)
                                                                                     : folded[k];
        s.info = {s.known.dtype(), s.known.shape()};
      }
      add_slot(std::move(s));
    }
    if (folded.empty()) runtime.push_back(&node);
    else ++stats.folded_nodes;
  }
}

// Tensors a caller reads or differentiates: never fused away, never stored in bf16.
std::set<std::string> Executor::Impl::must_stay() const {
  std::set<std::string> names(opts.keep.begin(), opts.keep.end());
  names.insert(opts.backward_to.begin(), opts.backward_to.end());
  names.insert(opts.backward_from.begin(), opts.backward_from.end());
  for (const auto& o : graph->outputs) names.insert(o.name);
  return names;
}

// Ops that ride on a convolution: a residual Add, then an activation (Fusion). Only a tensor
// nothing else reads, and that no one asked to keep or differentiate to, may disappear into a
// fused kernel.
std::map<const Node*, Fusion> Executor::Impl::choose_fusions(const std::vector<const Node*>& runtime) {
  std::map<const Node*, Fusion> fused;  // producer -> what rides on it
  if (!opts.fuse || opts.compute != DType::f32) return fused;
  const std::set<std::string> must_stay = this->must_stay();
  std::map<std::string, size_t> produced_at;  // runtime tensor -> index of its node in `runtime`
  for (size_t i = 0; i < runtime.size(); ++i)
    for (const auto& o : runtime[i]->outputs) produced_at[o] = i;
  // The one reader of `name` when it may vanish into a fused kernel, else null.
  auto sole_reader = [&](const std::string& name) -> const Node* {
    if (must_stay.count(name)) return nullptr;
    auto readers = graph->consumers(name);
    return readers.size() == 1 ? readers[0] : nullptr;
  };
  auto as_activation = [&](const Node* reader, const std::string& of) -> std::optional<EltwiseSpec> {
    if (!reader || reader->inputs.empty() || reader->inputs[0] != of) return std::nullopt;
    std::vector<const Tensor*> known;
    for (const auto& name : reader->inputs) {
      const Slot* s = name.empty() ? nullptr : &slots[find(name, "fusion")];
      known.push_back(s && s->known.defined() ? &s->known : nullptr);
    }
    return reader->op->as_eltwise(known);
  };
  for (size_t i = 0; i < runtime.size(); ++i) {
    const Node* n = runtime[i];
    if (!n->op->accepts_post_eltwise() || n->outputs.empty()) continue;
    const std::string& y = n->outputs[0];
    const Node* reader = sole_reader(y);
    Fusion f;
    // Add(y, r) or Add(r, y): r computed before this convolution (so the fused kernel can read
    // it), of y's shape (no broadcasting), not y itself. When both operands are convolutions,
    // the later one takes the Add.
    if (reader && reader->type == "Add" && n->op->accepts_post_add() && reader->inputs.size() == 2 &&
        reader->inputs[0] != reader->inputs[1]) {
      const std::string& r = reader->inputs[reader->inputs[0] == y ? 1 : 0];
      const Slot& rs = slots[find(r, "fusion")];
      const TensorInfo& yi = slots[find(y, "fusion")].info;
      const bool before = rs.is_input || (produced_at.count(r) && produced_at.at(r) < i);
      if (!rs.known.defined() && !rs.held && before && rs.info.shape == yi.shape && rs.info.dtype == yi.dtype) {
        f.add = reader;
        f.residual = r;
        reader = sole_reader(reader->outputs[0]);
      } else {
        reader = nullptr;
      }
    }
    if ((f.eltwise = as_activation(reader, f.last(n)->outputs[0]))) f.act = reader;
    if (f.add || f.act) fused[n] = f;
  }
  return fused;
}

// May `name` be stored in bf16: does every reader take bf16 there (a convolution's X, or the
// residual of an Add riding on one)? add_rides_on: each fused Add -> its convolution.
bool Executor::Impl::bf16_readers_only(const std::string& name, const std::map<const Node*, const Node*>& add_rides_on) const {
  for (const Node* reader : graph->consumers(name)) {
    if (auto conv = add_rides_on.find(reader); conv != add_rides_on.end()) {
      if (!takes_bf16(conv->second, kResidualInput)) return false;
      continue;
    }
    for (size_t i = 0; i < reader->inputs.size(); ++i)
      if (reader->inputs[i] == name && !takes_bf16(reader, i)) return false;
  }
  return true;
}

int Executor::Impl::converted(int slot, Layout layout, DType dtype, Conversions& cache) {
  auto key = std::make_tuple(slot, layout, dtype);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  Slot s;
  s.name = slots[slot].name + (layout == slots[slot].layout ? "" : layout == Layout::nhwc ? "#nhwc" : "#plain") +
           (dtype == slots[slot].info.dtype ? "" : dtype == DType::bf16 ? "#bf16" : "#f32");
  s.info = {dtype, slots[slot].info.shape};
  s.layout = layout;
  s.internal = true;
  int id = add_slot(std::move(s));
  Step step;
  step.label = slots[id].name;
  step.kernel = std::make_unique<ConvertKernel>(slots[id].info.shape, slots[slot].info.dtype, slots[slot].layout, dtype, layout);
  step.in = {slot};
  step.out = {id};
  slots[id].producer = static_cast<int>(steps.size());
  slots[slot].last_reader = std::max(slots[slot].last_reader, slots[id].producer);
  steps.push_back(std::move(step));
  ++stats.layout_reorders;
  cache[key] = id;
  return id;
}

void Executor::Impl::build_steps(const std::vector<const Node*>& runtime, const std::map<const Node*, Fusion>& fused) {
  std::set<const Node*> absorbed;
  std::map<const Node*, const Node*> add_rides_on;
  for (const auto& [conv, f] : fused) {
    for (const Node* rider : {f.add, f.act})
      if (rider) absorbed.insert(rider);
    if (f.add) add_rides_on[f.add] = conv;
  }
  const std::set<std::string> must_stay = this->must_stay();
  Conversions conversions;
  const bool layouts = opts.fuse && opts.compute == DType::f32;
  for (const Node* n : runtime) {
    if (absorbed.count(n)) continue;
    const Fusion f = fused.count(n) ? fused.at(n) : Fusion{};
    KernelConfig cfg;
    cfg.compute = opts.compute;
    Step step;
    step.op = n->op;
    step.label = n->name;
    for (const Node* rider : {f.add, f.act})
      if (rider) step.label += "+" + rider->name;
    auto add_input = [&](int id) {
      step.in.push_back(id);
      cfg.inputs.push_back(id < 0 ? TensorInfo{} : slots[id].info);
      cfg.present.push_back(id >= 0);
      cfg.known.push_back(id >= 0 && slots[id].known.defined() ? &slots[id].known : nullptr);
      cfg.input_layouts.push_back(id < 0 || slots[id].known.defined() ? Layout::plain : slots[id].layout);
    };
    for (size_t i = 0; i < n->inputs.size(); ++i) {
      if (n->inputs[i].empty()) {
        add_input(-1);
        continue;
      }
      int id = find(n->inputs[i], n->name.c_str());
      if (!slots[id].known.defined() && layouts) {
        const bool rank4 = slots[id].info.shape.size() == 4;
        Layout layout = slots[id].layout;
        if (layout == Layout::nhwc && !n->op->accepts_nhwc(i)) layout = Layout::plain;
        else if (layout == Layout::plain && rank4 && i == 0 && n->op->wants_nhwc()) layout = Layout::nhwc;
        // In bf16 plans a convolution's X comes in bf16; nothing else reads bf16.
        DType dtype = slots[id].info.dtype;
        if (dtype == DType::bf16 && !takes_bf16(n, i)) dtype = DType::f32;
        else if (dtype == DType::f32 && i == 0 && takes_bf16(n, 0)) dtype = DType::bf16;
        if (layout != slots[id].layout || dtype != slots[id].info.dtype) id = converted(id, layout, dtype, conversions);
      }
      add_input(id);
    }
    if (f.add) {
      // The residual arrives in the layout the output will have: the data input's, for rank 4.
      while (step.in.size() < kResidualInput) add_input(-1);
      int id = find(f.residual, n->name.c_str());
      const Layout want = slots[id].info.shape.size() == 4 ? cfg.input_layouts[0] : Layout::plain;
      if (slots[id].layout != want) id = converted(id, want, slots[id].info.dtype, conversions);
      add_input(id);
      cfg.post_add = true;
      ++stats.fused_adds;
    }
    const Node* last = f.last(n);
    for (const auto& name : n->outputs) cfg.outputs.push_back(name.empty() ? TensorInfo{} : slots[find(name, "plan")].info);
    cfg.output_layouts.assign(cfg.outputs.size(), Layout::plain);
    // A bf16 convolution's result stays bf16 when only bf16 convolutions read it.
    const bool bf16_conv = !cfg.inputs.empty() && cfg.inputs[0].dtype == DType::bf16;
    if (bf16_conv) {
      stats.bf16_convolutions.push_back(n->name);
      const std::string& y = last->outputs[0];
      if (!must_stay.count(y) && bf16_readers_only(y, add_rides_on)) cfg.outputs[0].dtype = DType::bf16;
    }
    cfg.post_eltwise = f.eltwise;
    if (f.eltwise) ++stats.fused_activations;
    if (layouts) cfg.winograd_max_weight_bytes = opts.winograd_max_weight_bytes;
    step.kernel = n->op->make_kernel(cfg);
    if (std::string algorithm = step.kernel->algorithm(); !algorithm.empty()) {
      step.label += " (" + algorithm + ")";
      if (algorithm == "winograd") stats.winograd_convolutions.push_back(n->name);
    }
    stats.winograd_weight_bytes += step.kernel->extra_weight_bytes();
    if (const size_t bytes = step.kernel->scratch_bytes()) {
      // Planned like any tensor, alive during this step only.
      Slot scratch;
      scratch.name = step.label + "#scratch";
      scratch.info = scratch_info(bytes);
      scratch.internal = true;
      scratch.producer = scratch.last_reader = static_cast<int>(steps.size());
      step.scratch = add_slot(std::move(scratch));
    }
    if (std::string why = step.kernel->fallback_reason(); !why.empty()) stats.fallbacks.push_back(n->name + ": " + why);
    const int index = static_cast<int>(steps.size());
    for (size_t k = 0; k < last->outputs.size(); ++k) {
      std::string name = last->outputs[k];
      int id;
      if (name.empty()) {  // an optional output nobody reads still needs somewhere to go
        Slot s;
        s.name = step.label + "#unused" + std::to_string(k);
        s.info = k < cfg.outputs.size() ? cfg.outputs[k] : TensorInfo{};
        s.internal = true;
        id = add_slot(std::move(s));
      } else {
        id = find(name, "plan");
        if (k < cfg.outputs.size()) slots[id].info = cfg.outputs[k];
      }
      slots[id].layout = k < cfg.output_layouts.size() ? cfg.output_layouts[k] : Layout::plain;
      slots[id].producer = index;
      step.out.push_back(id);
    }
    for (int id : step.in)
      if (id >= 0) slots[id].last_reader = std::max(slots[id].last_reader, index);
    steps.push_back(std::move(step));
  }
  stats.steps = static_cast<int>(steps.size());
}

// Marks the steps between `from` and `to`: those with an output that leads to `from` and an
// input that depends on `to`. reaches_to (optional) gets, per slot, "depends on some to".
std::vector<bool> Executor::Impl::region(const std::vector<int>& from, const std::vector<int>& to,
                                         std::vector<bool>* depends_on_to) const {
  std::vector<bool> leads(slots.size(), false), depends(slots.size(), false);
  for (int f : from) leads[f] = true;
  for (int t : to) depends[t] = true;
  for (size_t s = 0; s < steps.size(); ++s)
    for (int i : steps[s].in)
      if (i >= 0 && depends[i] && !slots[i].known.defined())
        for (int o : steps[s].out) depends[o] = true;
  std::vector<bool> in_region(steps.size(), false);
  for (size_t s = steps.size(); s-- > 0;) {
    bool out_leads = std::any_of(steps[s].out.begin(), steps[s].out.end(), [&](int o) { return leads[o]; });
    bool in_depends = std::any_of(steps[s].in.begin(), steps[s].in.end(), [&](int i) { return i >= 0 && depends[i]; });
    if (!out_leads || !in_depends) continue;
    in_region[s] = true;
    for (int i : steps[s].in)
      if (i >= 0) leads[i] = true;
  }
  if (depends_on_to) *depends_on_to = depends;
  return in_region;
}

void Executor::Impl::pin_backward_region() {
  std::vector<int> from, to;
  for (const auto& name : opts.backward_from) from.push_back(find(name, "backward_from"));
  for (const auto& name : opts.backward_to) {
    int id = find(name, "backward_to");
    if (slots[id].known.defined() || slots[id].held)
      throw Error(ErrorKind::invalid_input, "backward_to: '" + name + "' is a constant, not an activation");
    to.push_back(id);
    slots[id].pinned = true;
  }
  if (from.empty() || to.empty()) return;
  std::vector<bool> in_region = region(from, to, nullptr);
  for (size_t s = 0; s < steps.size(); ++s) {
    if (!in_region[s]) continue;
    for (int i : steps[s].in)
      if (i >= 0) slots[i].pinned = true;
    for (int o : steps[s].out) slots[o].pinned = true;
  }
}

// What forward must leave readable: kept tensors, outputs, and everything backward reads.
void Executor::Impl::pin() {
  for (const auto& name : opts.keep) slots[find(name, "keep")].pinned = true;
  for (const auto& out : graph->outputs) slots[find(out.name, "output")].pinned = true;
  pin_backward_region();
}

// Winograd convolutions run on nchw16c and convert their X, residual and Y to and from it. A
// tensor one of them produces and only such kernels read stays blocked between them, both
// conversions spared; not a pinned one, which get() and backward read in the usual layouts.
void Executor::Impl::carry_blocked_layouts() {
  std::vector<std::vector<std::pair<size_t, size_t>>> readers(slots.size());  // slot -> (step, input)
  for (size_t s = 0; s < steps.size(); ++s)
    for (size_t k = 0; k < steps[s].in.size(); ++k)
      if (steps[s].in[k] >= 0) readers[steps[s].in[k]].emplace_back(s, k);
  std::vector<BlockedIo> carried(steps.size());
  for (size_t p = 0; p < steps.size(); ++p) {
    if (!steps[p].kernel->runs_blocked()) continue;
    const int y = steps[p].out[0];
    if (slots[y].pinned || readers[y].empty()) continue;
    const bool blocked_readers = std::all_of(readers[y].begin(), readers[y].end(), [&](const auto& r) {
      return steps[r.first].kernel->runs_blocked() && (r.second == 0 || r.second == kResidualInput);
    });
    if (!blocked_readers) continue;
    carried[p].output = true;
    for (const auto& [s, k] : readers[y]) (k == 0 ? carried[s].input : carried[s].residual) = true;
    slots[y].layout = Layout::nchw16c;
    ++stats.blocked_tensors;
  }
  for (size_t s = 0; s < steps.size(); ++s) {
    BlockedIo& c = carried[s];
    if (!c.input && !c.residual && !c.output) continue;
    const int r = c.residual ? steps[s].in[kResidualInput] : -1;  // blocked, so never pinned
    c.residual_expires = r >= 0 && slots[r].last_reader == static_cast<int>(s) && r != steps[s].in[0];
    steps[s].kernel->carry_blocked(c);
    slots[steps[s].scratch].info = scratch_info(steps[s].kernel->scratch_bytes());  // smaller now: fewer copies
  }
}

// A kernel that sums the residual into its output (Kernel::sums_into_output) gets the residual's
// buffer for it where nothing reads the residual later: the result overwrites the residual in
// place and no copy of it is made. Returns, for each slot, the slot whose buffer it uses.
std::vector<int> Executor::Impl::share_residual_buffers() {
  std::vector<int> owner(slots.size());
  for (size_t id = 0; id < slots.size(); ++id) owner[id] = static_cast<int>(id);
  for (size_t s = 0; s < steps.size(); ++s) {
    const Step& step = steps[s];
    if (!step.kernel->sums_into_output()) continue;
    const int r = step.in[kResidualInput], y = step.out[0];
    const Slot &res = slots[r], &out = slots[y];
    // Not a kept or backward-read residual (pinned), a graph input (set_input's value) or X itself.
    const bool expires = res.last_reader == static_cast<int>(s) && !res.pinned && res.producer >= 0 && r != step.in[0];
    if (!expires || res.layout != out.layout || res.info.dtype != out.info.dtype || res.info.shape != out.info.shape) continue;
    owner[y] = owner[r];  // r may itself live in an earlier residual's buffer
    ++stats.residuals_in_place;
  }
  return owner;
}

void Executor::Impl::allocate() {
  const std::vector<int> owner = share_residual_buffers();
  // Constants need no arena; nor do tensors no step produces (a fused convolution's output).
  auto in_arena = [](const Slot& s) { return !s.known.defined() && (s.producer >= 0 || s.is_input); };
  // A buffer lives from its owner's producer to the last read of any slot in it.
  std::vector<int> last_read(slots.size(), -1);
  for (size_t id = 0; id < slots.size(); ++id) {
    const Slot& s = slots[id];
    if (!in_arena(s)) continue;
    const int last = s.pinned ? BufferRequest::kPinned : std::max(s.last_reader, std::max(s.producer, 0));
    last_read[owner[id]] = std::max(last_read[owner[id]], last);
  }
  std::vector<BufferRequest> requests;
  std::vector<int> request_of(slots.size(), -1);
  for (size_t id = 0; id < slots.size(); ++id) {
    const Slot& s = slots[id];
    if (!in_arena(s) || owner[id] != static_cast<int>(id)) continue;
    BufferRequest r;
    r.bytes = static_cast<size_t>(shape_numel(s.info.shape)) * dtype_size(s.info.dtype);
    r.first_step = std::max(s.producer, 0);
    r.last_step = last_read[id];
    request_of[id] = static_cast<int>(requests.size());
    requests.push_back(r);
  }
  ArenaPlan plan = plan_arena(requests);
  stats.arena_bytes = plan.arena_bytes;
  stats.largest_live_bytes = plan.largest_live_bytes;
  stats.all_activation_bytes = plan.total_bytes;
  void* memory = std::aligned_alloc(kArenaAlignment, std::max<size_t>(plan.arena_bytes, kArenaAlignment));
  if (!memory) throw Error(ErrorKind::resources, "cannot allocate " + std::to_string(plan.arena_bytes) + " activation bytes");
  arena = std::shared_ptr<void>(memory, std::free);
  for (size_t id = 0; id < slots.size(); ++id) {
    Slot& s = slots[id];
    if (request_of[owner[id]] < 0) continue;
    s.view = Tensor::view(s.info.dtype, s.info.shape, static_cast<char*>(memory) + plan.offsets[request_of[owner[id]]], s.layout);
  }
  for (Step& step : steps)
    if (step.scratch >= 0) step.kernel->use_scratch(slots[step.scratch].view.raw());
}

void Executor::Impl::plan() {
  if (opts.compute != DType::f32 && opts.compute != DType::f64)
    throw Error(ErrorKind::invalid_input, "compute dtype must be float32 or float64");
  if (opts.precision == Precision::bf16) {
    if (opts.compute != DType::f32 || !opts.fuse)
      stats.precision_note = "bf16 needs the fast f32 path (compute f32, fuse on): running " + std::string(dtype_name(opts.compute));
    else if (!dnnl_util::cpu_has_bf16())
      stats.precision_note = "this CPU has no native bf16 (oneDNN uses " + dnnl_util::cpu_isa_name() + "): running f32";
    else
      bf16 = true;
  }
  stats.precision = bf16 ? Precision::bf16 : Precision::f32;
  for (const auto& name : opts.f32_nodes) {
    if (!graph->node(name)) throw Error(ErrorKind::invalid_input, "f32_nodes: the model has no node named '" + name + "'");
    f32_nodes.insert(name);
  }
  add_inputs_and_constants();
  std::vector<const Node*> runtime;
  fold_or_schedule(runtime);
  build_steps(runtime, choose_fusions(runtime));
  for (const auto& out : graph->outputs) find(out.name, "graph output");
  pin();
  carry_blocked_layouts();
  allocate();
#ifdef __GLIBC__
  // Planning frees what it built with (packing copies, oneDNN's temporaries) into holes of the
  // heap that glibc keeps resident; give them back (ResNet-18: 1.8 MB).
  malloc_trim(0);
#endif
}

Executor::Executor(std::shared_ptr<const Graph> graph, PlanOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->graph = std::move(graph);
  impl_->opts = std::move(options);
  impl_->plan();
}

Executor::~Executor() = default;

void Executor::set_input(const std::string& name, const Tensor& value) {
  int id = impl_->find(name, "set_input");
  Slot& s = impl_->slots[id];
  if (!s.is_input || s.known.defined()) throw Error(ErrorKind::invalid_input, "'" + name + "' is not a runtime graph input");
  if (value.shape() != s.info.shape)
    throw Error(ErrorKind::invalid_input, "input '" + name + "' was planned for shape " + shape_str(s.info.shape) +
                                              ", got " + shape_str(value.shape()));
  s.view.copy_from(value.dtype() == s.info.dtype ? value : value.to_dtype(s.info.dtype));
  impl_->inputs_set.insert(id);
  impl_->forward_done = false;
}

void Executor::Impl::check_inputs_set() const {
  for (size_t id = 0; id < slots.size(); ++id) {
    const Slot& s = slots[id];
    if (s.is_input && !s.known.defined() && !inputs_set.count(static_cast<int>(id)))
      throw Error(ErrorKind::invalid_input, "graph input '" + s.name + "' was not set");
  }
}

void Executor::Impl::run_step(Step& step) {
  std::vector<Tensor> in, out;
  for (int i : step.in) in.push_back(i >= 0 ? tensor_of(i) : Tensor());
  for (int o : step.out) out.push_back(slots[o].view);
  try {
    step.kernel->forward(in, out);
  } catch (const Error& e) {
    throw Error(e.kind(), "while running '" + step.label + "': " + e.what());
  }
}

void Executor::forward() {
  impl_->check_inputs_set();
  for (Step& step : impl_->steps) impl_->run_step(step);
  impl_->forward_done = true;
}

std::vector<StepTime> Executor::profile(int runs) {
  impl_->check_inputs_set();
  // A forward may reuse an input's buffer once its last reader is done: every run starts from
  // the values set, restored untimed. Run 0 is a warm-up (lazily built primitives, first touches).
  std::vector<std::pair<int, Tensor>> inputs;
  for (int id : impl_->inputs_set) inputs.emplace_back(id, impl_->slots[id].view.clone());
  std::vector<std::vector<double>> ms(impl_->steps.size());
  for (int r = 0; r <= std::max(runs, 1); ++r) {
    for (const auto& [id, value] : inputs) impl_->slots[id].view.copy_from(value);
    for (size_t s = 0; s < impl_->steps.size(); ++s) {
      const auto start = std::chrono::steady_clock::now();
      impl_->run_step(impl_->steps[s]);
      if (r > 0) ms[s].push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
  }
  impl_->forward_done = true;
  std::vector<StepTime> out;
  for (size_t s = 0; s < ms.size(); ++s) {
    std::nth_element(ms[s].begin(), ms[s].begin() + ms[s].size() / 2, ms[s].end());
    out.push_back({impl_->steps[s].label, ms[s][ms[s].size() / 2]});
  }
  return out;
}

Tensor Executor::get(const std::string& name) const {
  const Slot& s = impl_->slots[impl_->find(name, "get")];
  if (s.known.defined()) return s.known.to_layout(Layout::plain).clone();
  if (s.held) return impl_->graph->constant_value(name).clone();
  if (!s.pinned)
    throw Error(ErrorKind::invalid_input, "tensor '" + name + "' is not kept after forward: add it to PlanOptions::keep");
  if (!impl_->forward_done) throw Error(ErrorKind::invalid_input, "get('" + name + "') before forward()");
  Tensor plain = Tensor::zeros(widened(s.info.dtype), s.info.shape);
  plain.copy_from(s.view);
  return plain;
}

std::vector<Tensor> Executor::backward(const std::string& from, const Tensor& seed, const std::vector<std::string>& to) {
  Impl& m = *impl_;
  if (!m.forward_done) throw Error(ErrorKind::invalid_input, "backward() before forward()");
  auto planned = [](const std::vector<std::string>& list, const std::string& name) {
    return std::find(list.begin(), list.end(), name) != list.end();
  };
  if (!planned(m.opts.backward_from, from))
    throw Error(ErrorKind::invalid_input, "backward from '" + from + "' was not planned: add it to PlanOptions::backward_from");
  int from_id = m.find(from, "backward");
  std::vector<int> to_ids;
  for (const auto& name : to) {
    if (!planned(m.opts.backward_to, name))
      throw Error(ErrorKind::invalid_input, "backward to '" + name + "' was not planned: add it to PlanOptions::backward_to");
    to_ids.push_back(m.find(name, "backward"));
  }
  const Slot& f = m.slots[from_id];
  if (seed.shape() != f.info.shape)
    throw Error(ErrorKind::invalid_input, "seed gradient shape " + shape_str(seed.shape()) + " does not match '" + from +
                                              "' " + shape_str(f.info.shape));
  std::vector<bool> depends;
  std::vector<bool> in_region = m.region({from_id}, to_ids, &depends);
  std::map<int, Tensor> grads;
  grads[from_id] = (seed.dtype() == f.info.dtype ? seed : seed.to_dtype(f.info.dtype)).to_layout(f.layout).clone();
  std::set<int> wanted(to_ids.begin(), to_ids.end());
  for (size_t s = m.steps.size(); s-- > 0;) {
    if (!in_region[s]) continue;
    Step& step = m.steps[s];
    std::vector<Tensor> in, out, d_out, d_in;
    for (int i : step.in) in.push_back(i >= 0 ? m.tensor_of(i) : Tensor());
    for (int o : step.out) {
      out.push_back(m.slots[o].view);
      d_out.push_back(grads.count(o) ? grads[o] : Tensor());
    }
    for (size_t k = 0; k < step.in.size(); ++k) {
      int i = step.in[k];
      bool need = i >= 0 && depends[i] && !m.slots[i].known.defined() && (!step.op || step.op->differentiable(k));
      d_in.push_back(need ? Tensor::zeros(widened(m.slots[i].info.dtype), m.slots[i].info.shape, m.slots[i].layout) : Tensor());
    }
    try {
      step.kernel->backward(in, out, d_out, d_in);
    } catch (const Error& e) {
      throw Error(e.kind(), "backward through '" + step.label + "': " + e.what());
    }
    for (size_t k = 0; k < step.in.size(); ++k) {
      if (!d_in[k].defined()) continue;
      int i = step.in[k];
      if (grads.count(i)) accumulate(grads[i], d_in[k]);
      else grads[i] = d_in[k];
    }
    for (int o : step.out)
      if (!wanted.count(o)) grads.erase(o);  // consumed: free it early
  }
  std::vector<Tensor> result;
  for (int id : to_ids) {
    const Slot& s = m.slots[id];
    Tensor g = Tensor::zeros(s.info.dtype, s.info.shape);
    if (grads.count(id)) g.copy_from(grads[id]);
    result.push_back(g);
  }
  return result;
}

const PlanStats& Executor::stats() const { return impl_->stats; }

const TensorInfo& Executor::info(const std::string& name) const { return impl_->slots[impl_->find(name, "info")].info; }

std::vector<TensorPlanInfo> Executor::tensor_infos() const {
  std::vector<TensorPlanInfo> out;
  for (const Slot& s : impl_->slots)
    if (!s.internal) out.push_back({s.name, {widened(s.info.dtype), s.info.shape}, s.known.defined() || s.held});
  return out;
}

const char* precision_name(Precision p) { return p == Precision::bf16 ? "bf16" : "f32"; }

Precision parse_precision(const std::string& name) {
  if (name == "f32") return Precision::f32;
  if (name == "bf16") return Precision::bf16;
  throw Error(ErrorKind::invalid_input, "precision '" + name + "' is not one of f32, bf16");
}

const Graph& Executor::graph() const { return *impl_->graph; }

}  // namespace dermal::engine
