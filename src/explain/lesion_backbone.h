// The lesion check's own network: a small ImageNet-pretrained feature extractor the check reads
// instead of the classifier when its statistics name one (docs/lesion_check.md). It sees every
// image the same way whatever the classifier is, and it has seen cats, cups and text.
//
//   auto b = explain::LesionBackbone::load("models/lesion_backbone_mnv2_112.onnx", {"block_3", "block_12"});
//   std::vector<double> f = b->features(image);  // per layer: channel means, then channel stds
//
// Its input contract, fixed: RGB, bilinear resize stretched to the graph's input size, / 255 (the
// preprocessing the backbone's weights were trained with). Not thread-safe: the classifier that
// owns it serialises its calls.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "formats/model_loader.h"
#include "vision/image.h"
#include "vision/normalize.h"

namespace dermal::engine {
class Executor;
}

namespace dermal::explain {

class LesionBackbone {
 public:
  // layers: the tensors to read; empty: the network's outputs (what a backbone file is made of).
  // Throws invalid_model when the file is not a one-input [1,3,H,W] network with these [N,C,H,W]
  // layers.
  static std::unique_ptr<LesionBackbone> load(const std::string& path, const std::vector<std::string>& layers);
  ~LesionBackbone();

  std::vector<double> features(const vision::Image& image);
  int64_t channels() const { return channels_; }  // over all its layers
  const std::vector<std::string>& layers() const { return layers_; }
  const std::string& path() const { return path_; }
  size_t weight_bytes() const;

 private:
  LesionBackbone() = default;
  std::string path_, input_;
  std::vector<std::string> layers_;
  formats::LoadedModel model_;
  vision::Preprocess preprocess_;
  std::unique_ptr<engine::Executor> executor_;
  int64_t channels_ = 0;
};

}  // namespace dermal::explain
