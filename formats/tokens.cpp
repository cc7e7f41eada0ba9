#include "formats/tokens.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace tlc::tokens {
namespace {
[[noreturn]] void fail(const std::string &path, const std::string &what) {
  throw Error(path + ": " + what);
}
}  // namespace

std::vector<uint16_t> readShard(const std::string &path) {
  std::unique_ptr<FILE, int (*)(FILE *)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f) fail(path, std::string("cannot open: ") + std::strerror(errno));
  int32_t header[kHeaderInts];
  if (std::fread(header, sizeof(int32_t), kHeaderInts, f.get()) != kHeaderInts)
    fail(path, "shorter than the 1024-byte shard header");
  if (header[0] != kShardMagic)
    fail(path, "bad magic " + std::to_string(header[0]) + " (expected " +
                   std::to_string(kShardMagic) + "): not an llm.c token shard");
  if (header[1] != kShardVersion)
    fail(path, "unsupported shard version " + std::to_string(header[1]));
  if (header[2] < 0) fail(path, "negative token count");
  size_t count = static_cast<size_t>(header[2]);
  std::vector<uint16_t> tokens(count);
  if (std::fread(tokens.data(), sizeof(uint16_t), count, f.get()) != count)
    fail(path, "header announces " + std::to_string(count) + " tokens but the file holds fewer");
  if (std::fgetc(f.get()) != EOF)
    fail(path, "trailing bytes after the " + std::to_string(count) + " announced tokens");
  return tokens;
}

void writeShard(const std::string &path, const std::vector<uint16_t> &tokens) {
  if (tokens.size() > static_cast<size_t>(INT32_MAX)) fail(path, "too many tokens for one shard");
  int32_t header[kHeaderInts] = {kShardMagic, kShardVersion, static_cast<int32_t>(tokens.size())};
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  FILE *f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(path, "cannot create " + tmp + ": " + std::strerror(errno));
  bool ok = std::fwrite(header, sizeof(int32_t), kHeaderInts, f) == kHeaderInts;
  ok &= std::fwrite(tokens.data(), sizeof(uint16_t), tokens.size(), f) == tokens.size();
  ok &= std::fclose(f) == 0;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail(path, "write failed");
  }
}

size_t countMicroBatches(size_t count, int64_t batch, int64_t seq) {
  size_t span = static_cast<size_t>(batch * seq);
  return count == 0 || span == 0 ? 0 : (count - 1) / span;
}

size_t requireMicroBatches(const std::string &path, size_t count, int64_t batch, int64_t seq) {
  size_t steps = countMicroBatches(count, batch, seq);
  if (steps == 0)
    fail(path, std::to_string(count) + " tokens hold no full micro-batch of B*T+1 = " +
                   std::to_string(batch * seq + 1));
  return steps;
}

MicroBatch microBatch(const std::vector<uint16_t> &tokens, size_t index, int64_t batch,
                      int64_t seq) {
  size_t span = static_cast<size_t>(batch * seq);
  size_t start = index * span;
  if (start + span + 1 > tokens.size())
    throw Error("micro-batch " + std::to_string(index) + " needs tokens up to " +
                std::to_string(start + span + 1) + " but there are " +
                std::to_string(tokens.size()));
  MicroBatch mb;
  mb.inputs.resize(span);
  mb.targets.resize(span);
  for (size_t i = 0; i < span; ++i) {
    mb.inputs[i] = tokens[start + i];
    mb.targets[i] = tokens[start + i + 1];
  }
  return mb;
}

}  // namespace tlc::tokens
