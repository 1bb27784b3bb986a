// README's list of supported ONNX ops against the op registry: the list is written by hand, so
// this keeps it from claiming an op the engine lacks or leaving out one it has.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "engine/op.h"

namespace dermal::engine {
namespace {

// The op names of README's paragraph "Supported ONNX ops ...:", parentheticals dropped.
std::set<std::string> readme_ops() {
  std::ifstream in(std::string(DERMAL_SOURCE_DIR) + "/README.md");
  std::stringstream all;
  all << in.rdbuf();
  const std::string text = all.str();
  const size_t start = text.find("Supported ONNX ops");
  if (start == std::string::npos) return {};
  const size_t list_start = text.find(":\n", start);
  const size_t list_end = text.find("Chains that only compute shapes", list_start);
  if (list_start == std::string::npos || list_end == std::string::npos) return {};
  std::string list = text.substr(list_start + 2, list_end - list_start - 2);
  list = std::regex_replace(list, std::regex(R"(\([^)]*\))"), "");  // "(groups, depthwise, ...)"
  std::set<std::string> ops;
  const std::regex name(R"(\b[A-Z][A-Za-z]+\b)");
  for (auto it = std::sregex_iterator(list.begin(), list.end(), name); it != std::sregex_iterator(); ++it)
    ops.insert(it->str());
  return ops;
}

TEST(OpList, ReadmeNamesExactlyTheRegisteredOps) {
  const std::set<std::string> documented = readme_ops();
  ASSERT_FALSE(documented.empty()) << "README.md has no 'Supported ONNX ops ...:' paragraph ending before "
                                      "'Chains that only compute shapes'";
  std::set<std::string> registered;
  for (const auto& type : OpRegistry::global().types())
    if (type.rfind("DermalTest", 0) != 0) registered.insert(type);  // ops this test binary registers itself
  for (const auto& op : registered)
    EXPECT_TRUE(documented.count(op)) << op << " is registered but missing from README's op list";
  for (const auto& op : documented)
    EXPECT_TRUE(registered.count(op)) << op << " is in README's op list but not registered";
}

}  // namespace
}  // namespace dermal::engine
