// Expecting a refusal: runs fn, which must throw dermal::Error of one of `kinds` (any kind when
// the list is empty) whose message holds every fragment. Returns the message, for checks of the
// caller's own ("" when fn threw no Error: the test has failed then).
//
//   expect_error([&] { load_model(path); }, {ErrorKind::invalid_model}, {"config.json"});
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <initializer_list>
#include <string>
#include <vector>

#include "engine/error.h"

namespace dermal::test {

template <class Fn>
std::string expect_error(Fn&& fn, std::initializer_list<ErrorKind> kinds, const std::vector<std::string>& fragments = {}) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (kinds.size() > 0) {
      EXPECT_NE(std::find(kinds.begin(), kinds.end(), e.kind()), kinds.end()) << msg;
    }
    for (const std::string& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' is not in: " << msg;
    return msg;
  }
  ADD_FAILURE() << "expected an error" << (fragments.empty() ? std::string() : " mentioning '" + fragments[0] + "'");
  return "";
}

}  // namespace dermal::test
