// `tlrun prepare`'s command line (CLI11).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "cli/cli.h"
#include "runtime/data/command.h"
#include "runtime/data/prepare.h"

namespace tlc::data {
void addPrepareCommand(CLI::App &tlrun) {
  auto o = std::make_shared<PrepareOptions>();
  CLI::App *cmd = tlrun.add_subcommand(
      "prepare", "Tokenize text (or convert TinyLlama's LITPKDS files) into llm.c token shards");
  cmd->add_option("--input", o->inputs, "Input files and directories (walked recursively)")
      ->required();
  cmd->add_option("--out", o->out, "Output directory (shards, tokenizer.model, manifest.json)")
      ->required();
  CLI::Option *tok =
      cmd->add_option("--tokenizer", o->tokenizer, "An existing SentencePiece tokenizer.model");
  CLI::Option *train = cmd->add_option("--train-tokenizer", o->trainVocab,
                                       "Train a SentencePiece BPE with this many pieces (Llama-2 settings)");
  train->check(cli::integerIn(kMinTrainedVocab, static_cast<long long>(kMaxVocab)));
  tok->excludes(train);
  cmd->add_option("--val-fraction", o->valFraction, "Fraction of documents for validation")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string &value) -> std::string {
            char *end = nullptr;
            double v = std::strtod(value.c_str(), &end);
            if (value.empty() || *end != '\0' || !(v >= 0 && v < 1))
              return "must be in [0, 1), got " + value;
            return "";
          },
          "", "fraction"));
  cmd->add_option("--format", o->format,
                  "text (a file is a document), jsonl (\"text\" field), fortune (%-separated), "
                  "litpkd (TinyLlama's packed tokens; detected when the first input is one)")
      ->check(CLI::IsMember({"text", "jsonl", "fortune", "litpkd"}));
  cmd->add_option("--shard-tokens", o->shardTokens, "Tokens per shard")
      ->capture_default_str()
      ->check(cli::integerIn(1, 1 << 30));
  cmd->add_flag("--force", o->force, "Replace prepared data already in --out");
  cmd->add_flag("--quiet", [o](int64_t) { o->progress = false; }, "No progress on stderr");
  cli::setAction(*cmd, [o] {
    if (o->tokenizer.empty() && o->trainVocab == 0)
      throw cli::UsageError("prepare: give --tokenizer FILE or --train-tokenizer VOCAB_SIZE");
    Manifest m = prepare(*o);
    std::printf("prepared %s: train %llu tokens (%llu documents, %zu shards), val %llu tokens "
                "(%llu documents), vocabulary %d (bos %d, eos %d, unk %d)\n",
                o->out.c_str(), (unsigned long long)m.tokens("train"),
                (unsigned long long)m.documents("train"), m.shardPaths(o->out, "train").size(),
                (unsigned long long)m.tokens("val"), (unsigned long long)m.documents("val"),
                m.vocabSize, m.bosId, m.eosId, m.unkId);
    return cli::kExitOk;
  });
}

}  // namespace tlc::data
