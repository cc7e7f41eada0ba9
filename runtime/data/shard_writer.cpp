#include "runtime/data/shard_writer.h"

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "runtime/data/tokenizer.h"  // Error
#include "formats/tokens.h"

namespace tlc::data {

ShardWriter::ShardWriter(std::string dir, double valFraction, uint64_t shardTokens, int vocabSize)
    : dir_(std::move(dir)), valFraction_(valFraction), shardTokens_(shardTokens), vocabSize_(vocabSize) {
  if (shardTokens_ == 0 || shardTokens_ > (1u << 30)) throw Error("shard size must be in 1..2^30 tokens");
}

void ShardWriter::beginDocument() {
  double i = static_cast<double>(documents_);
  bool val = std::floor((i + 1) * valFraction_) > std::floor(i * valFraction_);
  current_ = val ? &val_ : &train_;
  ++current_->pendingDocs;
  ++documents_;
}

void ShardWriter::add(const int *ids, size_t n) {
  if (!current_) throw Error("internal: tokens before the first document");
  for (size_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= vocabSize_)
      throw Error("token id " + std::to_string(ids[i]) + " is outside the vocabulary of " +
                  std::to_string(vocabSize_));
    if (current_->pending.capacity() == 0) current_->pending.reserve(shardTokens_);  // no regrowth
    current_->pending.push_back(static_cast<uint16_t>(ids[i]));
    // A document crossing the boundary counts in the shard holding its BOS.
    if (current_->pending.size() == shardTokens_) flush(*current_);
  }
  tokens_ += n;
}

void ShardWriter::flush(Split &s) {
  if (s.pending.empty()) return;
  char name[32];
  std::snprintf(name, sizeof name, "%s_%06d.bin", s.name, s.count++);
  tokens::writeShard((std::filesystem::path(dir_) / name).string(), s.pending);
  shards_.push_back({name, s.name, s.pending.size(), s.pendingDocs});
  s.lastShard = static_cast<int>(shards_.size()) - 1;
  s.pending.clear();
  s.pendingDocs = 0;
}

void ShardWriter::finish() {
  for (Split *s : {&train_, &val_}) {
    if (s->pending.empty()) continue;
    if (s->lastShard >= 0 && s->pending.size() * 4 < shardTokens_) {
      ShardEntry &last = shards_[s->lastShard];
      std::string path = (std::filesystem::path(dir_) / last.file).string();
      std::vector<uint16_t> tokens = tokens::readShard(path);
      tokens.insert(tokens.end(), s->pending.begin(), s->pending.end());
      tokens::writeShard(path, tokens);
      last.tokens = tokens.size();
      last.documents += s->pendingDocs;
      s->pending.clear();
      s->pendingDocs = 0;
    } else {
      flush(*s);
    }
  }
}

}  // namespace tlc::data
