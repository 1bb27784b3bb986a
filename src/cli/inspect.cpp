// dermal inspect MODEL: what a model takes and gives, every node with its output shapes, the
// parameter count, weight bytes and the planned peak activation memory for one image; with
// --profile N, each kernel's median time over N forwards.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "engine/dnnl_util.h"
#include "engine/executor.h"
#include "formats/model_loader.h"

namespace dermal::cli {

namespace {

struct InspectOptions {
  std::string model;
  int batch = 1;
  bool json = false;
  int profile_runs = 0;  // > 0: time every kernel over this many forwards
  int threads = 0;       // 0: every core
  std::string precision = "f32";
};

// A fixed pseudo-random image in [-1, 1] for each runtime input, then each kernel's median time,
// slowest first: where a forward's time goes.
nlohmann::json profile(engine::Executor& ex, const engine::PlanOptions& plan, int runs) {
  for (const auto& [name, shape] : plan.input_shapes) {
    engine::Tensor x = engine::Tensor::zeros(engine::DType::f32, shape);
    uint32_t state = 7;
    for (int64_t i = 0; i < x.numel(); ++i) {
      state = state * 1664525u + 1013904223u;  // Numerical Recipes' LCG: enough for timing
      x.data<float>()[i] = static_cast<float>(state >> 8) / 8388608.0f - 1.0f;
    }
    ex.set_input(name, x);
  }
  std::vector<engine::StepTime> steps = ex.profile(runs);
  double total = 0;
  for (const auto& s : steps) total += s.ms;
  std::stable_sort(steps.begin(), steps.end(), [](const auto& a, const auto& b) { return a.ms > b.ms; });
  nlohmann::json j{{"runs", runs}, {"total_ms", total}};
  for (const auto& s : steps) j["steps"].push_back({{"step", s.label}, {"ms", s.ms}});
  return j;
}

std::string mib(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

int run_inspect(const InspectOptions& o) {
  if (o.threads > 0) engine::dnnl_util::set_threads(o.threads);
  formats::LoadedModel m = formats::load_model(o.model);
  const engine::Graph& g = *m.graph;
  engine::PlanOptions plan;
  for (const auto& in : g.inputs) {
    engine::Shape s = in.shape;
    for (size_t d = 0; d < s.size(); ++d)
      if (s[d] < 0) {
        if (d != 0) throw Error(ErrorKind::unsupported, "input '" + in.name + "' has a dynamic dimension other than the batch");
        s[d] = o.batch;
      }
    plan.input_shapes[in.name] = s;
  }
  plan.precision = engine::parse_precision(o.precision);
  engine::Executor ex(m.graph, plan);
  const auto& st = ex.stats();
  nlohmann::json j;
  j["model"] = o.model;
  j["format"] = m.format;
  j["producer"] = m.producer;
  j["opset"] = m.opset;
  for (const auto& in : g.inputs)
    j["inputs"].push_back({{"name", in.name}, {"dtype", engine::dtype_name(in.dtype)}, {"shape", in.shape}});
  for (const auto& out : g.outputs)
    j["outputs"].push_back({{"name", out.name}, {"shape", ex.info(out.name).shape}});
  for (const auto& n : g.nodes) {
    nlohmann::json node{{"name", n.name}, {"op", n.type}};
    // How a convolution runs, when not the usual f32 direct way: "bf16" or "winograd".
    for (const auto& [list, how] : {std::pair{&st.bf16_convolutions, "bf16"}, std::pair{&st.winograd_convolutions, "winograd"}})
      if (std::find(list->begin(), list->end(), n.name) != list->end()) node["runs"] = how;
    for (const auto& out : n.outputs)
      if (!out.empty()) node["outputs"].push_back({{"name", out}, {"shape", ex.info(out).shape}});
    j["nodes"].push_back(node);
  }
  j["parameters"] = g.parameter_count();
  j["weight_bytes"] = g.weight_bytes();
  j["held_weights"] = m.held_weights;
  j["batch"] = o.batch;
  j["plan"] = {{"peak_activation_bytes", st.arena_bytes},
               {"largest_live_bytes", st.largest_live_bytes},
               {"all_activation_bytes", st.all_activation_bytes},
               {"kernels", st.steps},
               {"folded_nodes", st.folded_nodes},
               {"fused_activations", st.fused_activations},
               {"fused_adds", st.fused_adds},
               {"residuals_in_place", st.residuals_in_place},
               {"folded_batchnorms", m.folded_batchnorms},
               {"layout_reorders", st.layout_reorders},
               {"precision", engine::precision_name(st.precision)},
               {"bf16_convolutions", st.bf16_convolutions.size()},
               {"winograd_convolutions", st.winograd_convolutions.size()},
               {"winograd_weight_bytes", st.winograd_weight_bytes},
               {"blocked_tensors", st.blocked_tensors}};
  if (!st.precision_note.empty()) j["plan"]["precision_note"] = st.precision_note;
  if (o.profile_runs > 0) j["profile"] = profile(ex, plan, o.profile_runs);
  if (o.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("model     %s (%s, %s, opset %d)\n", o.model.c_str(), m.format.c_str(), m.producer.c_str(), m.opset);
  for (const auto& in : g.inputs)
    std::printf("input     %-24s %s %s\n", in.name.c_str(), engine::dtype_name(in.dtype), engine::shape_str(in.shape).c_str());
  for (const auto& out : g.outputs)
    std::printf("output    %-24s %s\n", out.name.c_str(), engine::shape_str(ex.info(out.name).shape).c_str());
  std::printf("\n%-4s %-36s %-20s %s\n", "#", "node", "op", "output shapes");
  int i = 0;
  for (const auto& n : g.nodes) {
    std::string shapes;
    for (const auto& out : n.outputs)
      if (!out.empty()) shapes += (shapes.empty() ? "" : " ") + engine::shape_str(ex.info(out).shape);
    std::printf("%-4d %-36s %-20s %s\n", i++, n.name.c_str(), n.type.c_str(), shapes.c_str());
  }
  std::printf("\nparameters               %lld\n", static_cast<long long>(g.parameter_count()));
  std::printf("weight bytes             %zu (%s); %d convolution weights held packed by their ops\n", g.weight_bytes(),
              mib(g.weight_bytes()).c_str(), m.held_weights);
  std::printf("peak activation bytes    %zu (%s) for batch %d; largest live set %s; without reuse %s\n", st.arena_bytes,
              mib(st.arena_bytes).c_str(), o.batch, mib(st.largest_live_bytes).c_str(), mib(st.all_activation_bytes).c_str());
  std::printf("kernels                  %d (%d activations and %d residual Adds fused, %d of them summed in place, %d BatchNorms "
              "folded, %d nodes folded, %d layout reorders)\n",
              st.steps, st.fused_activations, st.fused_adds, st.residuals_in_place, m.folded_batchnorms, st.folded_nodes,
              st.layout_reorders);
  std::printf("precision                %s", engine::precision_name(st.precision));
  if (st.precision == engine::Precision::bf16) std::printf(" (%zu convolutions in bf16, sums in f32; the rest in f32)", st.bf16_convolutions.size());
  std::printf("%s\n", st.precision_note.empty() ? "" : ("; " + st.precision_note).c_str());
  if (!st.winograd_convolutions.empty())
    std::printf("winograd                 %zu 3x3 convolutions; their transformed weights add %s; %d tensors passed between them "
                "blocked (nChw16c)\n",
                st.winograd_convolutions.size(), mib(st.winograd_weight_bytes).c_str(), st.blocked_tensors);
  for (const auto& f : st.fallbacks) std::printf("slow path                %s\n", f.c_str());
  if (o.profile_runs > 0) {
    const nlohmann::json& p = j["profile"];
    std::printf("\nforward, sum of the kernels' medians over %d runs: %.3f ms; slowest kernels first\n", o.profile_runs,
                p["total_ms"].get<double>());
    for (const auto& s : p["steps"])
      std::printf("%9.3f ms  %5.1f%%  %s\n", s["ms"].get<double>(), 100.0 * s["ms"].get<double>() / p["total_ms"].get<double>(),
                  s["step"].get<std::string>().c_str());
  }
  return 0;
}

}  // namespace

Command add_inspect(CLI::App& app) {
  auto o = std::make_shared<InspectOptions>();
  app.add_option("model", o->model, "Model file (.onnx, .keras, .h5, TensorFlow.js model.json)")->required();
  app.add_option("--batch", o->batch, "Batch size to plan for")->check(CLI::Range(1, 1024));
  app.add_flag("--json", o->json, "Print JSON");
  app.add_option("--profile", o->profile_runs, "Time every kernel over this many forwards and list them, slowest first")
      ->check(CLI::Range(1, 100000));
  app.add_option("--threads", o->threads, "Compute threads for --profile (default: all cores)")->check(CLI::Range(1, 256));
  app.add_option("--precision", o->precision, "Convolutions in f32 (default) or bf16 (on CPUs with AVX-512 BF16)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  return [o] { return run_inspect(*o); };
}

}  // namespace dermal::cli
