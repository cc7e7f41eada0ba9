// Writes documents' tokens into llm.c shards, train_NNNNNN.bin and
// val_NNNNNN.bin, assigning whole documents to the validation split evenly
// (document i goes there when floor((i+1)*f) > floor(i*f)).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/data/manifest.h"

namespace tlc::data {

class ShardWriter {
public:
  // `vocabSize` bounds every id written.
  ShardWriter(std::string dir, double valFraction, uint64_t shardTokens, int vocabSize);

  void beginDocument();
  void add(const int *ids, size_t n);
  void add(int id) { add(&id, 1); }
  // Writes what is pending. A last shard under a quarter of shardTokens is
  // appended to the split's previous shard rather than left tiny.
  void finish();

  const std::vector<ShardEntry> &shards() const { return shards_; }
  uint64_t documents() const { return documents_; }
  uint64_t tokens() const { return tokens_; }

private:
  struct Split {
    explicit Split(const char *n) : name(n) {}
    const char *name;
    std::vector<uint16_t> pending;
    uint64_t pendingDocs = 0;
    int count = 0;
    int lastShard = -1;  // index into shards_
  };
  void flush(Split &s);

  std::string dir_;
  double valFraction_;
  uint64_t shardTokens_;
  int vocabSize_;
  Split train_{"train"}, val_{"val"};
  Split *current_ = nullptr;
  std::vector<ShardEntry> shards_;
  uint64_t documents_ = 0, tokens_ = 0;
};

}  // namespace tlc::data
