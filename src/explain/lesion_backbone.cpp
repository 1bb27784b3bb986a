#include "explain/lesion_backbone.h"

#include "engine/error.h"
#include "engine/executor.h"
#include "explain/lesion_check.h"

namespace dermal::explain {

LesionBackbone::~LesionBackbone() = default;

std::unique_ptr<LesionBackbone> LesionBackbone::load(const std::string& path, const std::vector<std::string>& layers) {
  std::unique_ptr<LesionBackbone> b(new LesionBackbone());
  b->path_ = path;
  b->model_ = formats::load_model(path);
  const engine::Graph& g = *b->model_.graph;
  b->layers_ = layers;
  if (layers.empty())
    for (const auto& o : g.outputs) b->layers_.push_back(o.name);
  auto bad = [&](const std::string& what) { return Error(ErrorKind::invalid_model, "lesion-check backbone " + path + ": " + what); };
  if (g.inputs.size() != 1) throw bad("it must have one input");
  const engine::Shape& in = g.inputs[0].shape;
  if (in.size() != 4 || in[1] != 3 || in[2] < 16 || in[3] < 16 || in[2] > 1024 || in[3] > 1024)
    throw bad("its input must be [N,3,H,W] with a fixed size from 16 to 1024");
  b->input_ = g.inputs[0].name;
  b->preprocess_.width = static_cast<int>(in[3]);
  b->preprocess_.height = static_cast<int>(in[2]);  // the other fields: RGB/255, bilinear, stretched
  engine::PlanOptions opts;
  opts.input_shapes[b->input_] = {1, 3, in[2], in[3]};
  for (const auto& layer : b->layers_) {
    if (!g.producer(layer)) throw bad("it has no layer '" + layer + "'");
    opts.keep.push_back(layer);
  }
  b->executor_ = std::make_unique<engine::Executor>(b->model_.graph, opts);
  for (const auto& layer : b->layers_) {
    const engine::Shape& s = b->executor_->info(layer).shape;
    if (s.size() != 4) throw bad("layer '" + layer + "' is not a [N,C,H,W] tensor");
    b->channels_ += s[1];
  }
  return b;
}

std::vector<double> LesionBackbone::features(const vision::Image& image) {
  executor_->set_input(input_, vision::to_input_tensor(image, preprocess_));
  executor_->forward();
  std::vector<double> out;
  for (const auto& layer : layers_) {
    engine::Tensor a = executor_->get(layer);
    const engine::Shape& s = a.shape();
    auto f = channel_means_and_stds(a.data<float>(), s[1], s[2] * s[3]);
    out.insert(out.end(), f.begin(), f.end());
  }
  return out;
}

size_t LesionBackbone::weight_bytes() const { return model_.graph->weight_bytes(); }

}  // namespace dermal::explain
