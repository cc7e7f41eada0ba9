// The trainer's data: llm.c token shards memory-mapped from a directory
// (names containing "train" are training data, "val" validation), checked up
// front (header, size, ids within the vocabulary), and a deterministic order
// of micro-batches whose position is part of the training state.
//
// shuffle=false: llm.c's order. Micro-batch i reads B*T+1 consecutive tokens
// starting at i*B*T of the first training shard; when fewer than B*T+1 remain
// the next shard starts at token 0; after the last shard a new epoch begins.
// shuffle=true: each epoch cuts every shard into windows of T+1 tokens at
// stride T, shuffles the shards and the windows of each shard (seeded by
// seed and epoch), and takes B consecutive windows per micro-batch: windows
// are drawn without replacement within an epoch.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace tlc::train {

struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A read-only memory-mapped shard.
class Shard {
 public:
  // Validates the header and the size; throws DataError naming the file.
  explicit Shard(const std::string &path);
  ~Shard();
  Shard(const Shard &) = delete;
  Shard &operator=(const Shard &) = delete;
  const std::string &path() const { return path_; }
  size_t size() const { return count_; }
  const uint16_t *tokens() const { return tokens_; }
  // Throws DataError naming the file and the position of the first id >= vocab.
  void checkVocabulary(int64_t vocab) const;

 private:
  std::string path_;
  void *map_ = nullptr;
  size_t mapBytes_ = 0, count_ = 0;
  const uint16_t *tokens_ = nullptr;
};

struct Position {
  int64_t epoch = 0, index = 0;  // micro-batch `index` of epoch `epoch`
  bool operator==(const Position &o) const { return epoch == o.epoch && index == o.index; }
};

struct Batch {
  std::vector<int32_t> inputs, targets;  // [B, T] row-major
};

class Dataset {
 public:
  // Opens every *.bin shard of `dir` holding "train" or "val" in its name.
  // Refuses (DataError) a missing directory, no training shards, a bad or
  // truncated shard, ids >= vocab, and a manifest.json whose vocab_size
  // exceeds `vocab`.
  Dataset(const std::string &dir, int64_t vocab, int64_t batch, int64_t seq, uint64_t seed, bool shuffle);
  ~Dataset();

  // Micro-batches per epoch of the training shards.
  int64_t epochSize() const;
  // The micro-batch at `p`; next() returns the one at position() and advances.
  Batch at(Position p);
  Batch next();
  void skip();  // advances like next() without reading (another rank's micro-batch)
  Position position() const { return pos_; }
  void seek(Position p);  // throws DataError when p is out of range

  bool hasValidation() const { return !val_.empty(); }
  int64_t validationBatches() const;  // full micro-batches in the val shards
  Batch validation(int64_t i);        // sequential, llm.c order

  const std::vector<std::string> &trainFiles() const { return trainFiles_; }

 private:
  struct Location {
    size_t shard;
    int64_t token;
  };
  void planEpoch(int64_t epoch);

  int64_t batch_, seq_;
  uint64_t seed_;
  bool shuffle_;
  std::vector<std::unique_ptr<Shard>> train_, val_;
  std::vector<std::string> trainFiles_;
  Position pos_;
  // shuffle=false: micro-batches per shard (prefix sums). shuffle=true: the
  // planned epoch's windows.
  std::vector<int64_t> prefix_, valPrefix_;
  int64_t plannedEpoch_ = -1;
  std::vector<Location> order_;
  int64_t totalWindows_ = 0;
};

}  // namespace tlc::train
