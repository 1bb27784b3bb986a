#include "engine/attributes.h"

#include "engine/error.h"

namespace dermal::engine {

const AttrValue* Attributes::lookup(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return nullptr;
  read_.insert(name);
  return &it->second;
}

namespace {
[[noreturn]] void wrong_type(const std::string& name, const char* want) {
  throw Error(ErrorKind::invalid_model, "attribute '" + name + "' should be " + want);
}
}  // namespace

int64_t Attributes::get_int(const std::string& name, int64_t fallback) const {
  auto v = find_int(name);
  return v ? *v : fallback;
}

std::optional<int64_t> Attributes::find_int(const std::string& name) const {
  const AttrValue* v = lookup(name);
  if (!v) return std::nullopt;
  if (auto* i = std::get_if<int64_t>(v)) return *i;
  wrong_type(name, "an integer");
}

double Attributes::get_float(const std::string& name, double fallback) const {
  const AttrValue* v = lookup(name);
  if (!v) return fallback;
  if (auto* f = std::get_if<double>(v)) return *f;
  if (auto* i = std::get_if<int64_t>(v)) return static_cast<double>(*i);
  wrong_type(name, "a float");
}

std::string Attributes::get_string(const std::string& name, const std::string& fallback) const {
  const AttrValue* v = lookup(name);
  if (!v) return fallback;
  if (auto* s = std::get_if<std::string>(v)) return *s;
  wrong_type(name, "a string");
}

std::vector<int64_t> Attributes::get_ints(const std::string& name, const std::vector<int64_t>& fallback) const {
  auto v = find_ints(name);
  return v ? *v : fallback;
}

std::optional<std::vector<int64_t>> Attributes::find_ints(const std::string& name) const {
  const AttrValue* v = lookup(name);
  if (!v) return std::nullopt;
  if (auto* i = std::get_if<std::vector<int64_t>>(v)) return *i;
  wrong_type(name, "a list of integers");
}

std::vector<double> Attributes::get_floats(const std::string& name, const std::vector<double>& fallback) const {
  const AttrValue* v = lookup(name);
  if (!v) return fallback;
  if (auto* f = std::get_if<std::vector<double>>(v)) return *f;
  wrong_type(name, "a list of floats");
}

const Tensor* Attributes::find_tensor(const std::string& name) const {
  const AttrValue* v = lookup(name);
  if (!v) return nullptr;
  if (auto* t = std::get_if<Tensor>(v)) return t;
  wrong_type(name, "a tensor");
}

std::vector<std::string> Attributes::unread() const {
  std::vector<std::string> out;
  for (const auto& [name, value] : values_)
    if (!read_.count(name)) out.push_back(name);
  return out;
}

}  // namespace dermal::engine
