// The library's one error type. Every message names what failed (node, op type, shapes) so that
// a user can act on it; front ends map the kind to exit codes and HTTP statuses.
//
//   throw dermal::Error(dermal::ErrorKind::unsupported,
//                       "op 'Foo' (node 'n1', opset 13) is not supported");
#pragma once

#include <stdexcept>
#include <string>

namespace dermal {

enum class ErrorKind {
  invalid_model,   // the model file is malformed or inconsistent
  unsupported,     // well-formed, but uses an op, attribute or dtype we do not implement
  invalid_input,   // the caller passed something wrong (shape, name, value)
  too_large,       // an input beyond a configured limit (file size, pixels): HTTP 413
  resources,       // the machine could not give what a valid request needs (memory): HTTP 503,
                   // the server's condition and not the caller's mistake
  internal,        // a broken invariant: a bug in Dermal
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

// Checks a condition that only a bug could break.
#define DERMAL_ASSERT(cond)                                                              \
  do {                                                                                   \
    if (!(cond))                                                                         \
      throw ::dermal::Error(::dermal::ErrorKind::internal,                               \
                            std::string("internal error: ") + #cond + " at " + __FILE__ + \
                                ":" + std::to_string(__LINE__));                         \
  } while (0)

}  // namespace dermal
