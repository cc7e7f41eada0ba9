// The command-line layer shared by tlc and tlrun (CLI11; no MLIR here).
//
// Conventions, the same for every tool and subcommand:
//   exit 0  success, and --help / -h on the tool or any subcommand (stdout);
//   exit 2  usage error: unknown command or option, an option given twice,
//           conflicting options, a missing required argument, an extra
//           positional, a value outside its choices, a malformed --set item
//           or config file; the message names the option;
//   exit 1  failure while doing the work (bad input file, invalid model...).
// Every message goes to stderr prefixed with "<tool>: " (and the subcommand
// for usage errors), e.g. "tlc: emit: --preset is required".
//
// A tool is a CLI::App; each subcommand is added by one function that
// declares its options and registers its work with setAction():
//
//   void addEvalCommand(CLI::App &tlrun) {
//     CLI::App *eval = tlrun.add_subcommand("eval", "Run a compiled step");
//     auto opts = std::make_shared<EvalOptions>();
//     eval->add_option("--weights", opts->weights, "...")->required();
//     cli::repeatable(eval->add_option("--set", opts->sets, "k=v,..."));
//     cli::setAction(*eval, [opts] { return runEval(*opts); });
//   }
//   int main(int argc, char **argv) {
//     CLI::App tlrun{"tlrun: ...", "tlrun"};
//     cli::configureTool(tlrun);
//     addEvalCommand(tlrun);
//     return cli::run(tlrun, argc, argv);
//   }
#pragma once

#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace tlc::cli {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// A usage error found after CLI11's parse (exit 2): a bad --set item, a bad
// config file, an unknown key. The message names the option, key or file.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Gives a tool's root app the conventions above: a subcommand is required,
// options given twice are refused (except those marked repeatable()), help
// shows every default. Call it before adding subcommands: they inherit the
// option defaults.
void configureTool(CLI::App &tool);

// Makes a std::vector option repeatable, one value per occurrence
// (`--set a=1 --set b=2`), so that it never swallows a following
// positional argument. Returns `option`.
CLI::Option *repeatable(CLI::Option *option);

// A CLI11 check: a decimal integer in [lo, hi]; the message names the range
// ("must be in 1..8, got 9"), where CLI11's own range checks print doubles.
CLI::Validator integerIn(long long lo, long long hi);

// The work of `command`: runs after the whole command line parsed and
// validated; its return value is the exit code. Exceptions it throws become
// "<tool>: <what>" and exit 1 (UsageError: exit 2).
void setAction(CLI::App &command, std::function<int()> action);

// Parses argv, runs the chosen subcommand's action, reports errors; returns
// the process exit code.
int run(CLI::App &tool, int argc, char **argv);

// Parses --set style items ("key=value,key=value"; each std::string is one
// occurrence of the option, split at commas) into {key: value}. Values are
// typed: decimal integers (64-bit), finite decimal numbers, true/false,
// else strings ("0x10", "inf" stay strings). A malformed
// item, an empty key or value, or a key given twice (in one item or across
// occurrences) is a UsageError naming `option` and the key.
nlohmann::json parseSetList(const std::vector<std::string> &items,
                            const std::string &option = "--set");

// Reads a config file into {key: value}, typed as parseSetList types them.
// JSON when the name ends in .json or the first non-blank character is '{',
// else a TOML subset (with `lines`, the line each key was set on):
//   key = value            # comment
//   [section]              # later keys become "section.key"
// values: "basic strings" (\" \\ \n \t escapes), 'literal strings',
// integers (with _ separators), floats, true/false, and one-line arrays of
// those. Nested JSON objects are flattened the same way ("a.b"). Anything
// else (inline tables, multi-line strings, dates, a key given twice) is a
// UsageError naming the file, the line and the key.
nlohmann::json loadConfigFile(const std::string &path, std::map<std::string, int> *lines = nullptr);

// Throws a UsageError naming `where` (a file or option), the first unknown
// key and the allowed ones, when `keyValues` holds a key not in `allowed`.
void rejectUnknownKeys(const nlohmann::json &keyValues, const std::vector<std::string> &allowed,
                       const std::string &where);

}  // namespace tlc::cli
