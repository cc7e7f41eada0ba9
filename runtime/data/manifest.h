// manifest.json of a prepared data directory (written by tlrun prepare, read
// by the trainer and generator): the tokenizer's ids, the shards with their
// split, token and document counts, and where the data came from.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tlc::data {

struct ShardEntry {
  std::string file;   // relative to the data directory, e.g. train_000000.bin
  std::string split;  // "train" or "val"
  uint64_t tokens = 0;
  uint64_t documents = 0;  // documents whose BOS is in this shard
};

struct Manifest {
  static constexpr int kVersion = 1;
  std::string format;  // text, jsonl, fortune or litpkd
  std::vector<std::string> sources;
  std::string tokenizerFile = "tokenizer.model";
  bool tokenizerTrained = false;
  std::vector<std::pair<std::string, std::string>> tokenizerSettings;  // when trained here
  int vocabSize = 0, bosId = -1, eosId = -1, unkId = -1, padId = -1;
  double valFraction = 0;
  uint64_t shardTokens = 0;
  std::vector<ShardEntry> shards;

  uint64_t tokens(const std::string &split) const;
  uint64_t documents(const std::string &split) const;
  // Paths of the split's shards under `dir`, in order.
  std::vector<std::string> shardPaths(const std::string &dir, const std::string &split) const;
};

// Reads DIR/manifest.json and checks that every listed shard exists with the
// size its token count implies; throws Error naming the file and the key.
Manifest readManifest(const std::string &dir);
// The tokenizer file of a data directory (the manifest's, else
// tokenizer.model); "" when there is none.
std::string tokenizerPathOf(const std::string &dir);
// Writes `path` atomically (temporary file, then rename).
void writeManifest(const std::string &path, const Manifest &m);

}  // namespace tlc::data
