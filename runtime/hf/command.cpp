// `tlrun export`'s command line (CLI11).
#include "runtime/hf/command.h"

#include <CLI/CLI.hpp>

#include <memory>

#include "cli/cli.h"
#include "runtime/hf/export.h"

namespace tlc::hf {

void addExportCommand(CLI::App &tlrun) {
  auto o = std::make_shared<ExportOptions>();
  CLI::App *cmd = tlrun.add_subcommand(
      "export", "Write a checkpoint as a Hugging Face Llama directory (docs/training.md, \"Hugging Face interop\")");
  cmd->add_option("SOURCE", o->source, "a checkpoint: a run directory (its latest), RUN_DIR:STEP, checkpoints/latest or a checkpoint directory")->required();
  cmd->add_option("--hf", o->outDir,
                  "output directory: config.json, model.safetensors, generation_config.json, tokenizer.model")
      ->required();
  cmd->add_option("--dtype", o->dtype, "dtype of model.safetensors")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "bf16", "f16"}));
  cmd->add_option("--model", o->model, "the compiled model (.tlx) giving the dimensions (default: RUN_DIR/run.json's)");
  cmd->add_option("--data", o->dataDir,
                  "data directory of tlrun prepare holding tokenizer.model and manifest.json (default: the run's)");
  cmd->add_flag("--force", o->force, "replace the files of an earlier export in the output directory");
  cmd->footer("Exit status: 0 done, 1 failure, 2 bad usage.\n");
  cli::setAction(*cmd, [o] { return runExport(*o); });
}

}  // namespace tlc::hf
