#include "explain/layer_choice.h"

#include <algorithm>
#include <set>

#include "engine/error.h"

namespace dermal::explain {

bool layout_plumbing(const engine::Graph& g, const std::string& tensor) {
  const engine::Node* n = g.producer(tensor);
  return n && (n->type == "Transpose" || n->type == "Reshape" || n->type == "Flatten" || n->type == "Pad");
}

std::string choose_layer(const engine::Graph& g, const std::vector<engine::TensorPlanInfo>& tensors,
                         const std::string& logits, const std::string& request) {
  auto spatial = [](const engine::TensorPlanInfo& t) {
    const engine::Shape& s = t.info.shape;
    return !t.known && s.size() == 4 && s[2] > 1 && s[3] > 1;
  };
  if (request.empty() || request == "auto") {
    // The last spatial tensor the logits depend on: what global pooling (or flattening) reads.
    std::set<std::string> ancestors{logits};
    for (auto it = g.nodes.rbegin(); it != g.nodes.rend(); ++it) {
      bool feeds = std::any_of(it->outputs.begin(), it->outputs.end(), [&](const std::string& o) { return ancestors.count(o); });
      if (feeds) ancestors.insert(it->inputs.begin(), it->inputs.end());
    }
    for (auto it = tensors.rbegin(); it != tensors.rend(); ++it)
      if (spatial(*it) && ancestors.count(it->name) && !g.is_input(it->name) && !layout_plumbing(g, it->name))
        return it->name;
    throw Error(ErrorKind::unsupported, "the model has no spatial layer (H and W > 1) to explain");
  }
  for (const auto& t : tensors)
    if (t.name == request) {
      if (!spatial(t))
        throw Error(ErrorKind::invalid_input, "layer '" + request + "' has shape " + engine::shape_str(t.info.shape) +
                                                  ": a class activation map needs a [N,C,H,W] activation");
      return request;
    }
  for (const auto& n : g.nodes)
    if (n.name == request && !n.outputs.empty()) return choose_layer(g, tensors, logits, n.outputs[0]);
  std::string close;
  int shown = 0;
  for (const auto& t : tensors)
    if (spatial(t) && t.name.find(request) != std::string::npos && shown++ < 5) close += "\n  " + t.name;
  throw Error(ErrorKind::invalid_input, "no layer named '" + request + "'" +
                                            (close.empty() ? std::string(" (dermal inspect lists them)") : "; did you mean:" + close));
}

}  // namespace dermal::explain
