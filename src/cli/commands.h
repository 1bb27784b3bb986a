// The `dermal` subcommands. Each registers its options on the CLI11 app and returns the function
// that runs it; main() maps dermal::Error kinds to exit codes.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace dermal::cli {

using Command = std::function<int()>;

Command add_inspect(CLI::App& app);
Command add_predict(CLI::App& app);
Command add_explain(CLI::App& app);
Command add_eval(CLI::App& app);
Command add_serve(CLI::App& app);
Command add_fit_check(CLI::App& app);

}  // namespace dermal::cli
