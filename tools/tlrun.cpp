// tlrun: run compiled .tlx training steps (see `tlrun --help`). No MLIR.
//
// Each subcommand lives in its own file and adds itself, its options and its
// work with one function `void addXCommand(CLI::App &tlrun)` (see
// runtime/cli.h for the conventions). Wiring a new subcommand is one
// #include and one line below.
#include "runtime/cli.h"
#include "runtime/commands/eval.h"

int main(int argc, char **argv) {
  CLI::App tlrun{"tlrun: run compiled .tlx training steps on a CPU or a CUDA GPU", "tlrun"};
  tlc::cli::configureTool(tlrun);
  tlc::addEvalCommand(tlrun);
  return tlc::cli::run(tlrun, argc, argv);
}
