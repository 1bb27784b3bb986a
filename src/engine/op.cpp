#include "engine/op.h"

#include <algorithm>

namespace dermal::engine {

std::string OpContext::where() const {
  return "op '" + type + "' (node '" + node + "', opset " + std::to_string(opset) + ")";
}

void OpContext::fail(ErrorKind kind, const std::string& what) const { throw Error(kind, where() + ": " + what); }

void Kernel::backward(const std::vector<Tensor>&, const std::vector<Tensor>&, const std::vector<Tensor>&,
                      const std::vector<Tensor>&) {
  throw Error(ErrorKind::unsupported, "this kernel has no backward");
}

void Op::hold_weight(size_t input, Tensor) const {
  ctx_.fail(ErrorKind::internal, "cannot hold input " + std::to_string(input) + " as its own weight");
}

Tensor Op::held_weight(size_t input) const {
  ctx_.fail(ErrorKind::internal, "holds no weight for input " + std::to_string(input));
}

OpRegistry& OpRegistry::global() {
  static OpRegistry registry;
  return registry;
}

bool OpRegistry::add(const std::string& type, OpFactory factory) {
  DERMAL_ASSERT(find(type) == nullptr);
  entries_.emplace_back(type, std::move(factory));
  return true;
}

const OpFactory* OpRegistry::find(const std::string& type) const {
  for (const auto& [name, factory] : entries_)
    if (name == type) return &factory;
  return nullptr;
}

std::vector<std::string> OpRegistry::types() const {
  std::vector<std::string> out;
  for (const auto& e : entries_) out.push_back(e.first);
  std::sort(out.begin(), out.end());
  return out;
}

std::unique_ptr<Op> create_op(const Attributes& attrs, const OpContext& ctx) {
  const OpFactory* factory = OpRegistry::global().find(ctx.type);
  if (!factory) ctx.fail(ErrorKind::unsupported, "this op type is not supported");
  std::unique_ptr<Op> op = (*factory)(attrs, ctx);
  auto unread = attrs.unread();
  if (!unread.empty()) {
    std::string names;
    for (const auto& n : unread) names += (names.empty() ? "" : ", ") + n;
    ctx.fail(ErrorKind::unsupported, "unsupported attribute(s): " + names);
  }
  return op;
}

}  // namespace dermal::engine
