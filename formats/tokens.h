// Token shards in llm.c's format: a header of 256 int32 (magic 20240520,
// version 1, token count, rest zero) followed by the tokens as uint16.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace tlc::tokens {

constexpr int32_t kShardMagic = 20240520;
constexpr int32_t kShardVersion = 1;
constexpr size_t kHeaderInts = 256;

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Reads a whole shard; throws Error naming the file on any inconsistency.
std::vector<uint16_t> readShard(const std::string &path);

// Writes a shard atomically (temporary file, then rename).
void writeShard(const std::string &path, const std::vector<uint16_t> &tokens);

// A micro-batch as llm.c reads one: B*T+1 consecutive tokens starting at
// k*B*T; row b's inputs are [b*T, (b+1)*T) of that span, its targets the
// same span shifted by one.
struct MicroBatch {
  std::vector<int32_t> inputs, targets;  // each B*T, row-major [B, T]
};

// Number of full micro-batches in `count` tokens.
size_t countMicroBatches(size_t count, int64_t batch, int64_t seq);
// The same, but a shard (`path`) without one full micro-batch is an Error.
size_t requireMicroBatches(const std::string &path, size_t count, int64_t batch, int64_t seq);
MicroBatch microBatch(const std::vector<uint16_t> &tokens, size_t index, int64_t batch,
                      int64_t seq);

}  // namespace tlc::tokens
