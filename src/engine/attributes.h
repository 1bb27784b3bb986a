// Node attributes, independent of any file format. Importers fill them; an op's factory reads
// what it understands. Any attribute it did not read is reported as unsupported at load, so a
// model never silently runs with an ignored setting.
//
//   int64_t group = attrs.get_int("group", 1);
//   std::vector<int64_t> pads = attrs.get_ints("pads", {0, 0, 0, 0});
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "engine/tensor.h"

namespace dermal::engine {

using AttrValue = std::variant<int64_t, double, std::string, std::vector<int64_t>, std::vector<double>, Tensor>;

class Attributes {
 public:
  void set(const std::string& name, AttrValue value) { values_[name] = std::move(value); }
  bool has(const std::string& name) const { return values_.count(name) != 0; }

  int64_t get_int(const std::string& name, int64_t fallback) const;
  double get_float(const std::string& name, double fallback) const;
  std::string get_string(const std::string& name, const std::string& fallback) const;
  std::vector<int64_t> get_ints(const std::string& name, const std::vector<int64_t>& fallback) const;
  std::vector<double> get_floats(const std::string& name, const std::vector<double>& fallback) const;
  std::optional<int64_t> find_int(const std::string& name) const;
  std::optional<std::vector<int64_t>> find_ints(const std::string& name) const;
  const Tensor* find_tensor(const std::string& name) const;

  // Marks an attribute as understood without reading it (e.g. Dropout's seed).
  void ignore(const std::string& name) const { read_.insert(name); }
  // Attributes present but never read: the op does not support them.
  std::vector<std::string> unread() const;
  const std::map<std::string, AttrValue>& all() const { return values_; }

 private:
  const AttrValue* lookup(const std::string& name) const;
  std::map<std::string, AttrValue> values_;
  mutable std::set<std::string> read_;
};

}  // namespace dermal::engine
