#include "runtime/train/command.h"

#include <cstdio>
#include <limits>
#include <memory>

#include <CLI/CLI.hpp>

#include "cli/cli.h"
#include "runtime/train/checkpoint.h"
#include "runtime/train/checkpoint_list.h"
#include "runtime/train/config.h"
#include "runtime/train/metrics.h"
#include "runtime/train/trainer.h"

namespace tlc::train {

void addTrainCommand(CLI::App &tlrun, std::vector<WorkFactory> work) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App *cmd = tlrun.add_subcommand("train", "Train a compiled model on llm.c token shards (docs/training.md)");
  cmd->add_option("MODEL", o->model, "the compiled model (.tlx from tlc compile)")->required();
  cli::repeatable(cmd->add_option("--data", o->data,
                                  "directory of llm.c token shards (*.bin): names holding 'train' are training data, "
                                  "'val' validation; or a mixture, NAME=DIR:WEIGHT per source (repeatable; or "
                                  "[data.NAME] tables in --config; from the checkpoint on --resume)")
                      ->type_name("DIR|NAME=DIR:W"));
  cmd->add_option("--out", o->runDir,
                  "run directory: config.json, metrics.jsonl, checkpoints/<step>/, checkpoints/latest")
      ->required();
  cmd->add_option("--config", o->configFile, "configuration file, JSON or TOML (keys below)");
  cli::repeatable(cmd->add_option("--set", o->sets, "overrides key=value,... (repeatable; applied after --config)"));
  cmd->add_option("--steps", o->steps, "same as --set steps=N (applied last)")
      ->check(cli::integerIn(1, std::numeric_limits<int64_t>::max()));
  CLI::Option *resume = cmd->add_option("--resume", o->resumeFrom,
                                        "continue from RUN_DIR's latest checkpoint, or from CHECKPOINT: a run "
                                        "directory (its latest), RUN_DIR:STEP, checkpoints/latest or a checkpoint "
                                        "directory; write --resume=PATH or put it last")
                            ->expected(0, 1);
  cmd->add_option("--device", o->device, "cpu or cuda")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--init-from", o->initWeights,
                  "start from these weights instead of the artifact's initialisation (fresh optimizer and schedule): "
                  "a Hugging Face Llama directory (tlrun export's), a .safetensors file (Hugging Face names; f32, "
                  "bf16 or f16) or a tlc checkpoint (RUN_DIR, RUN_DIR:STEP, a checkpoint directory)")
      ->excludes(resume);
  cmd->add_flag("--resume-optimizer", o->resumeOptimizer,
                "with --init-from CHECKPOINT: also its AdamW moments and step count (a new phase: fresh schedule, "
                "step 0, the data from the start)");
  cmd->footer(keysHelp() +
              "\nDefaults are the TinyLlama recipe (batch_tokens = 1024 x 2048); on a small model or a CPU set\n"
              "batch_tokens, steps and warmup_steps to fit. Exit status: 0 done, 1 failure, 2 bad usage or\n"
              "configuration, 128+N when stopped by signal N (SIGINT/SIGTERM finish the step and write a checkpoint).\n");
  cli::setAction(*cmd, [o, resume, work] {
    o->resume = resume->count() > 0;
    return runTrain(*o, work);
  });
}

void addPlotCommand(CLI::App &tlrun) {
  auto runDir = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  CLI::App *cmd = tlrun.add_subcommand(
      "plot", "Draw train and validation loss and the learning rate against steps as an SVG (RUN_DIR/plot.svg)");
  cmd->add_option("RUN_DIR", *runDir, "a run directory of tlrun train")->required();
  cmd->add_option("-o,--output", *out, "the SVG file (default RUN_DIR/plot.svg)");
  cli::setAction(*cmd, [runDir, out] {
    std::string svg = out->empty() ? *runDir + "/plot.svg" : *out;
    try {
      writePlot(*runDir + "/metrics.jsonl", svg, *runDir);
    } catch (const std::exception &e) {
      std::fprintf(stderr, "tlrun plot: %s\n", e.what());
      return cli::kExitFailure;
    }
    std::printf("wrote %s\n", svg.c_str());
    return cli::kExitOk;
  });
}

void addCheckpointsCommand(CLI::App &tlrun) {
  auto runDir = std::make_shared<std::string>();
  auto verify = std::make_shared<bool>(false);
  auto json = std::make_shared<bool>(false);
  CLI::App *cmd = tlrun.add_subcommand(
      "checkpoints", "List a run's checkpoints: step, save time, loss, size and whether each is intact");
  cmd->add_option("RUN_DIR", *runDir, "a run directory of tlrun train (or its checkpoints/ folder)")->required();
  cmd->add_flag("--verify", *verify, "also check every file's FNV-1a 64 checksum (reads every file)");
  cmd->add_flag("--json", *json, "print one JSON object instead of the table");
  cmd->footer("Exit status: 0 every checkpoint intact, 1 a damaged checkpoint or `latest` (still listed), or no\n"
              "checkpoints/ folder.\n");
  cli::setAction(*cmd, [runDir, verify, json] {
    CheckpointListing l;
    try {
      l = listCheckpoints(*runDir, *verify);
    } catch (const CheckpointError &e) {
      std::fprintf(stderr, "tlrun checkpoints: %s\n", e.what());
      return cli::kExitFailure;
    }
    if (*json) std::printf("%s\n", listingJson(l).dump(2).c_str());
    else std::fputs(formatListing(l, *verify).c_str(), stdout);
    return listingIntact(l) ? cli::kExitOk : cli::kExitFailure;
  });
}

}  // namespace tlc::train
