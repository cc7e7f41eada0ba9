// `tlrun generate`'s command line (CLI11).
#include "runtime/generate/command.h"

#include <CLI/CLI.hpp>

#include <memory>

#include "cli/cli.h"
#include "runtime/generate/generate.h"

namespace tlc::generate {
namespace {

// --seed: a decimal integer in 0..2^64-1; CLI11 would wrap -1 and round 1e23.
std::string checkSeed(std::string &value) {
  bool digits = !value.empty() && value.size() <= 20 &&
                value.find_first_not_of("0123456789") == std::string::npos;
  if (digits && (value.size() < 20 || value <= "18446744073709551615")) return "";
  return "must be an integer in 0..18446744073709551615, got '" + value + "'";
}

}  // namespace

void addGenerateCommand(CLI::App &tlrun) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App *cmd = tlrun.add_subcommand(
      "generate", "Generate text from a trained model with its compiled decode step (docs/generation.md)");
  cmd->add_option("SOURCE", o->source,
                  "a checkpoint (a run directory: its latest, RUN_DIR:STEP, checkpoints/latest, a checkpoint directory) or a weights .safetensors")
      ->required();
  cmd->add_option("--prompt", o->prompt, "the text to continue (BOS is put before it)")->required();
  cmd->add_option("--max-tokens", o->maxTokens, "most tokens to generate")->capture_default_str();
  cmd->add_option("--temperature", o->sampling.temperature, "softmax temperature; 0: greedy")->capture_default_str();
  cmd->add_option("--top-k", o->sampling.topK, "sample among the k most likely tokens; 0: all")->capture_default_str();
  cmd->add_option("--top-p", o->sampling.topP, "sample among the fewest tokens whose probability reaches p")
      ->capture_default_str();
  cmd->add_option("--seed", o->sampling.seed, "random seed: the same seed, the same text")
      ->capture_default_str()
      ->check(CLI::Validator(checkSeed, "", "seed"));
  cmd->add_option("--model", o->model, "the compiled model (.tlx; default: the one the run was trained with)");
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer.model (default: the run's data directory's)");
  cmd->add_option("--device", o->device, "cpu or cuda")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_flag("--json", o->json, "print one JSON object (ids, text, stop reason) instead of streaming text");
  cli::setAction(*cmd, [o] { return runGenerate(*o); });
}

}  // namespace tlc::generate
