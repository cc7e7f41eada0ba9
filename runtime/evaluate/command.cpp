// `tlrun evaluate`'s command line (CLI11).
#include "runtime/evaluate/command.h"

#include <CLI/CLI.hpp>

#include <memory>

#include "cli/cli.h"
#include "runtime/evaluate/evaluate.h"
#include "runtime/evaluate/tasks.h"

namespace tlc::evaluate {

void addEvaluateCommand(CLI::App &tlrun) {
  auto o = std::make_shared<EvaluateOptions>();
  std::string names;
  for (const TaskKind &k : taskKinds()) names += (names.empty() ? "" : ", ") + std::string(k.name);
  CLI::App *cmd = tlrun.add_subcommand(
      "evaluate", "Score zero-shot multiple-choice tasks (acc, acc_norm as lm-evaluation-harness) and the\n"
                  "perplexity of text files with the compiled forward_logits (docs/evaluation.md)");
  cmd->add_option("SOURCE", o->source,
                  "a checkpoint (a run directory: its latest, RUN_DIR:STEP, checkpoints/latest, a checkpoint "
                  "directory), a Hugging Face directory or a weights .safetensors")
      ->required()
      ->type_name("");
  cli::repeatable(cmd->add_option("--tasks", o->tasks,
                                  "tasks to score, NAME=FILE.jsonl,... (repeatable); NAME picks the layout: " + names))
      ->type_name("NAME=FILE,...");
  cli::repeatable(cmd->add_option("--text", o->texts, "a UTF-8 text file to compute the perplexity of (repeatable)"))
      ->type_name("FILE");
  cmd->add_option("--limit", o->limit, "score only the first N examples of each task (default: all)")
      ->type_name("N")
      ->default_str("")
      ->check(cli::integerIn(1, 1000000000000LL));
  cmd->add_option("--model", o->model, "the compiled model (.tlx; default: the one the run was trained with)")
      ->type_name("M.tlx");
  cmd->add_option("--tokenizer", o->tokenizer,
                  "tokenizer.model (default: the run's data directory's, or the Hugging Face directory's)")
      ->type_name("T.model");
  cmd->add_option("--device", o->device, "cpu or cuda")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_flag("--json", o->json, "print one JSON object (every metric) instead of the table");
  cmd->add_option("--output", o->output, "also write that JSON object to this file")->type_name("FILE.json");
  cmd->add_flag("--log-samples", o->logSamples,
                "put every example's per-choice log-likelihoods, greedy flags and token ids in the JSON");
  cli::setAction(*cmd, [o] { return runEvaluate(*o); });
}

}  // namespace tlc::evaluate
