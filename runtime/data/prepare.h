// tlrun prepare: text (plain, JSON Lines, fortune) or TinyLlama's LITPKDS
// files -> tokenizer.model + llm.c uint16 shards + manifest.json.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/data/manifest.h"

namespace tlc::data {

// Token ids of uint16 shards: the largest vocabulary.
constexpr uint64_t kMaxVocab = 65536;
// The smallest vocabulary SentencePiece trains with byte fallback: the 256
// byte pieces, <unk>, <s>, </s> and at least one character.
constexpr int kMinTrainedVocab = 260;

struct PrepareOptions {
  std::vector<std::string> inputs;  // files and directories
  std::string out;
  std::string tokenizer;            // an existing tokenizer.model, or
  int trainVocab = 0;               // train one with this many pieces
  double valFraction = 0.01;
  std::string format;               // text|jsonl|fortune|litpkd; empty: detect
  bool force = false;               // replace shards already in `out`
  uint64_t shardTokens = 100'000'000;
  int threads = 0;                  // encoding threads; 0: all cores
  bool progress = true;             // progress lines on stderr
};

// Runs the whole preparation into a temporary directory beside `out` and
// moves the result into place only when everything succeeded.
Manifest prepare(const PrepareOptions &options);

}  // namespace tlc::data
