// tlrun: run compiled .tlx models: train, evaluate, generate, prepare data,
// export (see `tlrun --help`). No MLIR.
//
// Each subcommand lives in its folder's command.h/.cpp and adds itself, its
// options and its work with one function `void addXCommand(CLI::App &tlrun)`
// (see cli/cli.h for the conventions). Wiring a new subcommand is one
// #include and one line below.
#include "cli/cli.h"
#include "runtime/data/command.h"
#include "runtime/eval/command.h"
#include "runtime/evaluate/command.h"
#include "runtime/generate/command.h"
#include "runtime/generate/training_samples.h"
#include "runtime/evaluate/training_eval.h"
#include "runtime/hf/command.h"
#include "runtime/train/command.h"

int main(int argc, char **argv) {
  CLI::App tlrun{"tlrun: train, evaluate and sample compiled .tlx models on a CPU or a CUDA GPU", "tlrun"};
  tlc::cli::configureTool(tlrun);
  tlc::data::addPrepareCommand(tlrun);
  // What the training loop runs every N steps: samples and evaluations.
  tlc::train::addTrainCommand(tlrun, {tlc::generate::makeTrainingSamples, tlc::evaluate::makeTrainingEvaluation});
  tlc::train::addPlotCommand(tlrun);
  tlc::train::addCheckpointsCommand(tlrun);
  tlc::addEvalCommand(tlrun);
  tlc::evaluate::addEvaluateCommand(tlrun);
  tlc::generate::addGenerateCommand(tlrun);
  tlc::hf::addExportCommand(tlrun);
  return tlc::cli::run(tlrun, argc, argv);
}
