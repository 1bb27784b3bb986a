// dermal_bench_engine --model M --threads T --iters N [--warmup W] [--precision f32|bf16] [--winograd-max-weight-bytes B] [--f32-nodes N1,N2...] [--load-only]
//
// Measures the engine on one model in this (fresh) process and prints one JSON object:
//   load      formats::load_onnx_model + planning the Grad-CAM-ready Executor for batch 1
//   forward   median latency of one image's forward
//   fwd+bwd   forward, then backward from the top-class logit to the GlobalAveragePool input
//             (the last conv block's output: what Grad-CAM differentiates)
//   floor     every Conv of the model as a bare oneDNN primitive (formats `any`, weights
//             reordered beforehand, nothing fused), run back to back: median of the sum; and
//             forward_over_floor, the median ratio of a forward and a floor pass run side by side
//   memory    peak RSS (before the floor primitives exist, and after), the weight bytes, and
//             current/peak RSS after each stage (start, loaded, planned, ran)
// --winograd-max-weight-bytes sets PlanOptions::winograd_max_weight_bytes (0: direct convolutions only);
// --f32-nodes, PlanOptions::f32_nodes (the convolutions a bf16 plan keeps f32).
// --load-only stops after the load (load_ms, load_cpu_ms, load_model_ms, plan_ms) and adds
// fresh_memory_ms: allocating and writing as many fresh bytes as the weights take, the part of
// the load the machine decides. bench/engine.py repeats it in fresh processes, since one process
// measures the load only once.
// bench/engine.py runs this beside bench/torch_eager.py and prints the comparison table.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>
#include <chrono>
#include <cmath>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "engine/dnnl_util.h"
#include "engine/executor.h"
#include "formats/model_loader.h"

namespace {

using namespace dermal;
using Clock = std::chrono::steady_clock;

struct BenchOptions {
  std::string model;
  int threads = 1;
  int iters = 30;
  int warmup = 5;
  bool load_only = false;
  engine::Precision precision = engine::Precision::f32;
  size_t winograd_max_weight_bytes = engine::kDefaultWinogradMaxWeightBytes;
  std::vector<std::string> f32_nodes;
};

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// CPU time of the whole process (all threads), in milliseconds. On a shared machine the wall
// clock also counts time spent waiting for a core; with one thread this does not.
double process_cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

struct Timings {
  std::vector<double> wall_ms, cpu_ms;
};

// Runs `body` warmup times untimed, then iters times; returns each timed run's milliseconds.
Timings time_runs(const BenchOptions& o, const std::function<void()>& body) {
  for (int i = 0; i < o.warmup; ++i) body();
  Timings t;
  for (int i = 0; i < o.iters; ++i) {
    const double cpu = process_cpu_ms();
    auto start = Clock::now();
    body();
    t.wall_ms.push_back(ms_since(start));
    t.cpu_ms.push_back(process_cpu_ms() - cpu);
  }
  return t;
}

void put_timings(nlohmann::json& j, const std::string& key, const Timings& t) {
  j[key + "_ms"] = median(t.wall_ms);
  j[key + "_min_ms"] = *std::min_element(t.wall_ms.begin(), t.wall_ms.end());
  j[key + "_cpu_ms"] = median(t.cpu_ms);
}

size_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<size_t>(u.ru_maxrss) * 1024;  // Linux reports KiB
}

// Resident bytes now (the second field of /proc/self/statm, in pages).
size_t current_rss_bytes() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<size_t>(resident) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// The Grad-CAM target: the tensor the (single) GlobalAveragePool reads.
std::string cam_tensor(const engine::Graph& g) {
  for (const auto& n : g.nodes)
    if (n.type == "GlobalAveragePool") return n.inputs.at(0);
  throw Error(ErrorKind::unsupported, "the model has no GlobalAveragePool: no Grad-CAM layer to differentiate to");
}

// One Conv node as a standalone oneDNN forward-inference primitive; src and dst are bound later.
struct FloorConv {
  std::string name;
  engine::Shape x, w, y;
  dnnl::convolution_forward prim;
  dnnl::memory::desc src_md, dst_md;
  std::unordered_map<int, dnnl::memory> args;
};

FloorConv make_floor_conv(const engine::Node& node, const engine::Graph& g, const engine::Executor& ex, bool winograd) {
  using dnnl::memory;
  namespace du = engine::dnnl_util;
  FloorConv c;
  c.name = node.name;
  c.x = ex.info(node.inputs.at(0)).shape;
  c.y = ex.info(node.outputs.at(0)).shape;
  if (c.x.size() != 4 || !g.is_constant(node.inputs.at(1)))
    throw Error(ErrorKind::unsupported, "floor: Conv '" + node.name + "' is not 2-D with constant weights");
  const engine::Tensor w = g.constant_value(node.inputs[1]);  // plain: a copy when its op holds it packed
  c.w = w.shape();
  const bool has_bias = node.inputs.size() > 2 && !node.inputs[2].empty();

  const auto& a = node.attrs;
  const int64_t group = a.get_int("group", 1);
  const auto strides = a.get_ints("strides", {1, 1});
  const auto dilations = a.get_ints("dilations", {1, 1});
  const auto pads = a.get_ints("pads", {0, 0, 0, 0});
  const std::string auto_pad = a.get_string("auto_pad", "NOTSET");
  // Begin pads from the attributes; end pads from the shapes, so auto_pad needs no special case.
  memory::dims pad_l(2), pad_r(2), dil(2), str(2);
  for (int i = 0; i < 2; ++i) {
    const int64_t extent = dilations[i] * (c.w[2 + i] - 1) + 1;
    const int64_t total = (c.y[2 + i] - 1) * strides[i] + extent - c.x[2 + i];
    if (auto_pad == "SAME_UPPER") pad_l[i] = std::max<int64_t>(total, 0) / 2;
    else if (auto_pad == "SAME_LOWER") pad_l[i] = std::max<int64_t>(total, 0) - std::max<int64_t>(total, 0) / 2;
    else if (auto_pad == "VALID") pad_l[i] = 0;
    else pad_l[i] = pads[i];
    pad_r[i] = total - pad_l[i];
    dil[i] = dilations[i] - 1;  // oneDNN counts the gaps
    str[i] = strides[i];
  }

  const auto f32 = memory::data_type::f32;
  const auto any = memory::format_tag::any;
  memory::dims wdims = du::dims(c.w);
  memory::format_tag plain_wtag = memory::format_tag::oihw;
  if (group > 1) {
    wdims = {group, c.w[0] / group, c.w[1], c.w[2], c.w[3]};
    plain_wtag = memory::format_tag::goihw;
  }
  memory::desc src_md(du::dims(c.x), f32, any), dst_md(du::dims(c.y), f32, any), w_md(wdims, f32, any);
  memory::desc bias_md({c.w[0]}, f32, memory::format_tag::x);
  // The algorithm the plan chose for this node: Winograd's floor is its bare primitive, without
  // the copies to and from its blocked layout that the engine adds.
  const auto algorithm = winograd ? dnnl::algorithm::convolution_winograd : dnnl::algorithm::convolution_direct;
  auto d = has_bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, algorithm, src_md, w_md, bias_md,
                                                      dst_md, str, dil, pad_l, pad_r)
                    : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, algorithm, src_md, w_md, dst_md, str,
                                                      dil, pad_l, pad_r);
  dnnl::convolution_forward::primitive_desc pd(d, du::cpu_engine());
  c.prim = dnnl::convolution_forward(pd);

  memory plain_w(memory::desc(wdims, f32, plain_wtag), du::cpu_engine(), w.raw());
  c.args[DNNL_ARG_WEIGHTS] = du::reorder(plain_w, pd.weights_desc());
  c.src_md = pd.src_desc();
  c.dst_md = pd.dst_desc();
  if (has_bias) c.args[DNNL_ARG_BIAS] = memory(bias_md, du::cpu_engine(), g.constants.at(node.inputs[2]).raw());
  return c;
}

// Every Conv of the plan as a bare primitive, chained through two buffers; pass() runs them all once.
class ConvFloor {
 public:
  ConvFloor(const engine::Graph& g, const engine::Executor& ex) {
    const auto& winograd = ex.stats().winograd_convolutions;
    for (const auto& n : g.nodes)
      if (n.type == "Conv")
        convs_.push_back(make_floor_conv(n, g, ex, std::find(winograd.begin(), winograd.end(), n.name) != winograd.end()));
    // Two buffers used in turn: each conv reads what the one before it wrote, still in cache, as in
    // the engine's arena. (A buffer per conv would stream every tensor from DRAM, which no real run
    // does, and make the floor slower than the engine on small, memory-bound convs.) The source is
    // refilled with sane values before each conv, untimed: a chain of convs without their
    // activations overflows to inf/NaN.
    size_t largest = sizeof(float);
    for (const auto& c : convs_) largest = std::max({largest, c.src_md.get_size(), c.dst_md.get_size()});
    ping_.assign(largest / sizeof(float), 0.5f);
    pong_.assign(ping_.size(), 0.5f);
    for (size_t k = 0; k < convs_.size(); ++k) {
      float* src = k % 2 ? pong_.data() : ping_.data();
      float* dst = k % 2 ? ping_.data() : pong_.data();
      convs_[k].args[DNNL_ARG_SRC] = dnnl::memory(convs_[k].src_md, engine::dnnl_util::cpu_engine(), src);
      convs_[k].args[DNNL_ARG_DST] = dnnl::memory(convs_[k].dst_md, engine::dnnl_util::cpu_engine(), dst);
    }
    each_.resize(convs_.size());
  }

  // One pass over every conv: its wall and CPU milliseconds (the timed primitives only).
  std::pair<double, double> pass(bool record) {
    auto& stream = engine::dnnl_util::cpu_stream();
    double wall = 0, cpu = 0;
    for (size_t k = 0; k < convs_.size(); ++k) {
      float* src = static_cast<float*>(convs_[k].args[DNNL_ARG_SRC].get_data_handle());
      std::fill(src, src + convs_[k].src_md.get_size() / sizeof(float), 0.5f);
      const double cpu_start = process_cpu_ms();
      auto start = Clock::now();
      convs_[k].prim.execute(stream, convs_[k].args);
      stream.wait();
      const double ms = ms_since(start);
      cpu += process_cpu_ms() - cpu_start;
      wall += ms;
      if (record) each_[k].push_back(ms);
    }
    return {wall, cpu};
  }

  void describe(nlohmann::json& j) const {
    // Garbage in the chained buffers (inf, NaN) would make the timing meaningless: say if there is.
    auto finite = [](const std::vector<float>& v) { return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); }); };
    j["conv_floor_values_finite"] = finite(ping_) && finite(pong_);
    j["conv_count"] = convs_.size();
    for (size_t k = 0; k < convs_.size(); ++k)
      j["conv_floor_per_conv"].push_back({{"name", convs_[k].name},
                                          {"x", convs_[k].x},
                                          {"w", convs_[k].w},
                                          {"y", convs_[k].y},
                                          {"ms", each_[k].empty() ? 0.0 : median(each_[k])}});
  }

 private:
  std::vector<FloorConv> convs_;
  std::vector<float> ping_, pong_;
  std::vector<std::vector<double>> each_;
};

// The floor on its own, then forward / floor as pairs: each iteration runs one forward and one
// floor pass back to back (in alternating order), so that a drift of the machine (another tenant,
// the clock) hits both sides of each ratio; forward_over_floor is the median of those ratios.
nlohmann::json conv_floor(const BenchOptions& o, const std::function<void()>& forward, ConvFloor& floor) {
  for (int i = 0; i < o.warmup; ++i) floor.pass(false);
  Timings totals;
  for (int i = 0; i < o.iters; ++i) {
    const auto [wall, cpu] = floor.pass(true);
    totals.wall_ms.push_back(wall);
    totals.cpu_ms.push_back(cpu);
  }
  nlohmann::json j;
  put_timings(j, "conv_floor", totals);
  std::vector<double> ratios;
  for (int i = 0; i < o.iters; ++i) {
    double forward_ms = 0, floor_ms = 0;
    auto time_forward = [&] {
      const auto start = Clock::now();
      forward();
      forward_ms = ms_since(start);
    };
    if (i % 2) time_forward();
    floor_ms = floor.pass(false).first;
    if (i % 2 == 0) time_forward();
    ratios.push_back(forward_ms / floor_ms);
  }
  j["forward_over_floor"] = median(ratios);
  j["forward_over_floor_range"] = {*std::min_element(ratios.begin(), ratios.end()), *std::max_element(ratios.begin(), ratios.end())};
  floor.describe(j);
  return j;
}

int run(const BenchOptions& o) {
  engine::dnnl_util::set_threads(o.threads);
  nlohmann::json j;
  j["model"] = o.model;
  j["threads"] = o.threads;
  j["iters"] = o.iters;
  j["warmup"] = o.warmup;

  // Load: everything from the file name to an executor ready for Grad-CAM on one image.
  // Where memory goes, stage by stage: [current, peak so far] after each.
  j["rss_stages"]["start"] = {current_rss_bytes(), peak_rss_bytes()};
  const double load_cpu = process_cpu_ms();
  auto load_start = Clock::now();
  formats::LoadedModel m = formats::load_onnx_model(o.model);
  j["rss_stages"]["loaded"] = {current_rss_bytes(), peak_rss_bytes()};
  const engine::Graph& g = *m.graph;
  engine::PlanOptions plan;
  for (const auto& in : g.inputs) {
    engine::Shape s = in.shape;
    for (auto& d : s) d = d < 0 ? 1 : d;  // batch 1
    plan.input_shapes[in.name] = s;
  }
  const std::string cam = cam_tensor(g);
  const std::string logits = g.outputs.at(0).name;
  plan.keep = {cam};
  plan.backward_from = {logits};
  plan.backward_to = {cam};
  plan.precision = o.precision;
  plan.winograd_max_weight_bytes = o.winograd_max_weight_bytes;
  plan.f32_nodes = o.f32_nodes;
  auto plan_start = Clock::now();
  engine::Executor ex(m.graph, plan);
  j["plan_ms"] = ms_since(plan_start);
  j["load_ms"] = ms_since(load_start);
  j["load_cpu_ms"] = process_cpu_ms() - load_cpu;
  j["rss_stages"]["planned"] = {current_rss_bytes(), peak_rss_bytes()};
  j["load_model_ms"] = m.load_ms;
  if (o.load_only) {
    // What the machine charges for fresh memory, in this process right now: as many bytes as the
    // weights, allocated as the importer does and written once (only in these runs, whose peak
    // RSS nobody reads). On a VM that hands freed memory back to its host (virtio-balloon free
    // page reporting), that alone takes 6 to 100 ms for 45 MB.
    const auto touch_start = Clock::now();
    std::shared_ptr<void> fresh = engine::allocate_buffer(g.weight_bytes());
    std::memset(fresh.get(), 1, g.weight_bytes());
    j["fresh_memory_ms"] = ms_since(touch_start);
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }

  // A fixed pseudo-random image in the range of normalised pixels.
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> pixel(-2.0f, 2.0f);
  for (const auto& [name, shape] : plan.input_shapes) {
    engine::Tensor x = engine::Tensor::zeros(engine::DType::f32, shape);
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = pixel(rng);
    ex.set_input(name, x);
  }

  auto fwd = time_runs(o, [&] { ex.forward(); });
  int top = 0;
  auto fwd_bwd = time_runs(o, [&] {
    ex.forward();
    engine::Tensor y = ex.get(logits);
    const float* p = y.data<float>();
    top = static_cast<int>(std::max_element(p, p + y.numel()) - p);
    engine::Tensor seed = engine::Tensor::zeros(engine::DType::f32, y.shape());
    seed.data<float>()[top] = 1.0f;
    ex.backward(logits, seed, {cam});
  });
  put_timings(j, "forward", fwd);
  put_timings(j, "fwd_bwd", fwd_bwd);
  j["top_class"] = top;
  j["cam_tensor"] = cam;
  j["cam_shape"] = ex.info(cam).shape;
  // Memory of the engine alone, before the floor's primitives and their weight copies exist.
  j["peak_rss_bytes"] = peak_rss_bytes();
  j["rss_stages"]["ran"] = {current_rss_bytes(), peak_rss_bytes()};
  j["weight_bytes"] = g.weight_bytes();
  j["arena_bytes"] = ex.stats().arena_bytes;
  j["largest_live_bytes"] = ex.stats().largest_live_bytes;
  j["steps"] = ex.stats().steps;
  j["fused_activations"] = ex.stats().fused_activations;
  j["layout_reorders"] = ex.stats().layout_reorders;
  j["precision"] = engine::precision_name(ex.stats().precision);
  j["bf16_convolutions"] = ex.stats().bf16_convolutions.size();
  j["winograd_convolutions"] = ex.stats().winograd_convolutions.size();
  j["winograd_weight_bytes"] = ex.stats().winograd_weight_bytes;

  ConvFloor floor(g, ex);
  j.update(conv_floor(o, [&] { ex.forward(); }, floor));
  j["peak_rss_after_floor_bytes"] = peak_rss_bytes();
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

int parse_int(const std::string& flag, const std::string& v, int min) {
  int n = 0;
  try {
    n = std::stoi(v);
  } catch (const std::exception&) {
    throw Error(ErrorKind::invalid_input, flag + " needs an integer, got '" + v + "'");
  }
  if (n < min) throw Error(ErrorKind::invalid_input, flag + " must be at least " + std::to_string(min));
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  const char* usage = "usage: dermal_bench_engine --model M --threads T --iters N [--warmup W] [--precision f32|bf16] [--winograd-max-weight-bytes B] [--f32-nodes N1,N2...] [--load-only]\n";
  try {
    BenchOptions o;
    for (int i = 1; i < argc; ++i) {
      const std::string flag = argv[i];
      if (flag == "-h" || flag == "--help") {
        std::fputs(usage, stdout);
        return 0;
      }
      if (flag == "--load-only") {
        o.load_only = true;
        continue;
      }
      if (i + 1 >= argc) throw Error(ErrorKind::invalid_input, flag + " needs a value");
      const std::string v = argv[++i];
      if (flag == "--model") o.model = v;
      else if (flag == "--threads") o.threads = parse_int(flag, v, 1);
      else if (flag == "--iters") o.iters = parse_int(flag, v, 1);
      else if (flag == "--warmup") o.warmup = parse_int(flag, v, 0);
      else if (flag == "--precision") o.precision = engine::parse_precision(v);
      else if (flag == "--winograd-max-weight-bytes") o.winograd_max_weight_bytes = parse_int(flag, v, 0);
      else if (flag == "--f32-nodes") {
        std::stringstream names(v);
        for (std::string name; std::getline(names, name, ',');) o.f32_nodes.push_back(name);
      }
      else throw Error(ErrorKind::invalid_input, "unknown option " + flag);
    }
    if (o.model.empty()) throw Error(ErrorKind::invalid_input, "--model is required");
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dermal_bench_engine: %s\n%s", e.what(), usage);
    return 1;
  }
}
