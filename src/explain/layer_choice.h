// Which activation a class activation map is computed on: "auto" (the last spatial tensor the
// logits depend on, what global pooling or flattening reads, skipping layout plumbing such as a
// Keras importer's transpose before Flatten), a tensor name, or a node name (its first output).
//
//   std::string layer = choose_layer(graph, executor.tensor_infos(), logits_name, "auto");
//
// An unknown name is refused (invalid_input) with up to five close matches; a tensor that is not
// [N, C, H, W] with H and W above 1 is refused naming its shape.
#pragma once

#include <string>
#include <vector>

#include "engine/executor.h"
#include "engine/graph.h"

namespace dermal::explain {

// Layout plumbing is not a layer: a Keras importer's transpose back to channels-last before Flatten
// (its dims are no longer N, C, H, W), a reshape, a flatten, the padding in front of a convolution.
bool layout_plumbing(const engine::Graph& graph, const std::string& tensor);

std::string choose_layer(const engine::Graph& graph, const std::vector<engine::TensorPlanInfo>& tensors,
                         const std::string& logits, const std::string& request);

}  // namespace dermal::explain
