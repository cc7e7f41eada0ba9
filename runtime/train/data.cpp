#include "runtime/train/data.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "formats/tokens.h"

namespace tlc::train {
namespace {

[[noreturn]] void fail(const std::string &path, const std::string &what) { throw DataError(path + ": " + what); }

std::vector<std::string> listShards(const std::string &dir, const char *kind) {
  std::vector<std::string> out;
  DIR *d = opendir(dir.c_str());
  if (!d) fail(dir, std::string("cannot open the data directory: ") + std::strerror(errno));
  while (dirent *e = readdir(d)) {
    std::string name = e->d_name;
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".bin") == 0 && name.find(kind) != std::string::npos)
      out.push_back(dir + "/" + name);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

// A permutation of [0, n) from `rng` (Fisher-Yates; rng() % k keeps it
// independent of the standard library's distributions).
template <typename T>
void shuffleInPlace(std::vector<T> &v, std::mt19937_64 &rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng() % i]);
}

std::mt19937_64 rngFor(uint64_t seed, int64_t epoch, int64_t stream) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(epoch),
                    static_cast<uint32_t>(epoch >> 32), static_cast<uint32_t>(stream)};
  return std::mt19937_64(seq);
}

}  // namespace

Shard::Shard(const std::string &path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    fail(path, std::string("cannot stat: ") + std::strerror(errno));
  }
  mapBytes_ = static_cast<size_t>(st.st_size);
  size_t headerBytes = tokens::kHeaderInts * sizeof(int32_t);
  if (mapBytes_ < headerBytes) {
    ::close(fd);
    fail(path, "shorter (" + std::to_string(mapBytes_) + " bytes) than the 1024-byte shard header");
  }
  map_ = mmap(nullptr, mapBytes_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    fail(path, std::string("cannot map: ") + std::strerror(errno));
  }
  int32_t header[3];
  std::memcpy(header, map_, sizeof(header));
  if (header[0] != tokens::kShardMagic)
    fail(path, "bad magic " + std::to_string(header[0]) + " (expected " + std::to_string(tokens::kShardMagic) +
                   "): not an llm.c token shard");
  if (header[1] != tokens::kShardVersion) fail(path, "unsupported shard version " + std::to_string(header[1]));
  if (header[2] < 0) fail(path, "negative token count");
  count_ = static_cast<size_t>(header[2]);
  size_t expected = headerBytes + count_ * sizeof(uint16_t);
  if (mapBytes_ < expected)
    fail(path, "truncated: the header announces " + std::to_string(count_) + " tokens (" + std::to_string(expected) +
                   " bytes) but the file has " + std::to_string(mapBytes_) + " bytes");
  if (mapBytes_ > expected)
    fail(path, "trailing bytes after the " + std::to_string(count_) + " announced tokens");
  tokens_ = reinterpret_cast<const uint16_t *>(static_cast<const char *>(map_) + headerBytes);
}

Shard::~Shard() {
  if (map_) munmap(map_, mapBytes_);
}

void Shard::checkVocabulary(int64_t vocab) const {
  for (size_t i = 0; i < count_; ++i)
    if (tokens_[i] >= vocab)
      fail(path_, "token " + std::to_string(i) + " is id " + std::to_string(tokens_[i]) +
                      ", beyond the model's vocabulary of " + std::to_string(vocab));
}

Dataset::Dataset(const std::string &dir, int64_t vocab, int64_t batch, int64_t seq, uint64_t seed, bool shuffle)
    : batch_(batch), seq_(seq), seed_(seed), shuffle_(shuffle) {
  std::string manifest = dir + "/manifest.json";
  if (std::ifstream f{manifest}) {
    nlohmann::json m;
    try {
      m = nlohmann::json::parse(f);
    } catch (const nlohmann::json::exception &e) {
      fail(manifest, std::string("not valid JSON: ") + e.what());
    }
    if (m.is_object() && m.contains("vocab_size") && m["vocab_size"].is_number_integer() &&
        m["vocab_size"].get<int64_t>() > vocab)
      fail(manifest, "the tokenizer's vocab_size " + std::to_string(m["vocab_size"].get<int64_t>()) +
                         " exceeds the model's vocabulary of " + std::to_string(vocab));
  }
  trainFiles_ = listShards(dir, "train");
  if (trainFiles_.empty()) fail(dir, "holds no training shards (*.bin files with 'train' in the name)");
  // Names are classed by substring (llm.c's convention): one that says both
  // would validate on training data.
  for (const std::string &p : trainFiles_)
    if (p.substr(dir.size() + 1).find("val") != std::string::npos)
      fail(p, "the name contains both 'train' and 'val': is it training or validation data? Rename it");
  for (const std::string &p : trainFiles_) {
    train_.push_back(std::make_unique<Shard>(p));
    train_.back()->checkVocabulary(vocab);
  }
  for (const std::string &p : listShards(dir, "val")) {
    val_.push_back(std::make_unique<Shard>(p));
    val_.back()->checkVocabulary(vocab);
  }
  prefix_.push_back(0);
  for (auto &s : train_) {
    totalWindows_ += s->size() > 0 ? static_cast<int64_t>((s->size() - 1) / seq_) : 0;
    prefix_.push_back(prefix_.back() + static_cast<int64_t>(tokens::countMicroBatches(s->size(), batch_, seq_)));
  }
  valPrefix_.push_back(0);
  for (auto &s : val_)
    valPrefix_.push_back(valPrefix_.back() + static_cast<int64_t>(tokens::countMicroBatches(s->size(), batch_, seq_)));
  if (!val_.empty() && valPrefix_.back() == 0)
    fail(dir, "the validation shards hold no full micro-batch of B*T+1 = " + std::to_string(batch_ * seq_ + 1) +
                  " tokens in one shard (" + std::to_string(val_.front()->size()) + " tokens in " + val_.front()->path() +
                  "): add validation tokens or move the shards away");
  if (epochSize() == 0)
    fail(dir, "the training shards hold no full micro-batch of " +
                  std::string(shuffle_ ? std::to_string(batch_) + " windows of T+1 = " + std::to_string(seq_ + 1) + " tokens"
                                       : "B*T+1 = " + std::to_string(batch_ * seq_ + 1) + " tokens in one shard"));
}

Dataset::~Dataset() = default;

int64_t Dataset::epochSize() const { return shuffle_ ? totalWindows_ / batch_ : prefix_.back(); }

void Dataset::planEpoch(int64_t epoch) {
  if (plannedEpoch_ == epoch) return;
  std::vector<size_t> shards(train_.size());
  for (size_t i = 0; i < shards.size(); ++i) shards[i] = i;
  std::mt19937_64 rng = rngFor(seed_, epoch, 0);
  shuffleInPlace(shards, rng);
  order_.clear();
  order_.reserve(static_cast<size_t>(totalWindows_));
  for (size_t s : shards) {
    int64_t n = train_[s]->size() > 0 ? static_cast<int64_t>((train_[s]->size() - 1) / seq_) : 0;
    std::vector<int64_t> w(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) w[i] = i * seq_;
    std::mt19937_64 shardRng = rngFor(seed_, epoch, static_cast<int64_t>(s) + 1);
    shuffleInPlace(w, shardRng);
    for (int64_t t : w) order_.push_back({s, t});
  }
  plannedEpoch_ = epoch;
}

Batch Dataset::at(Position p) {
  if (p.index < 0 || p.index >= epochSize() || p.epoch < 0)
    throw DataError("data position (epoch " + std::to_string(p.epoch) + ", micro-batch " + std::to_string(p.index) +
                    ") is outside the " + std::to_string(epochSize()) + " micro-batches of an epoch");
  size_t T = static_cast<size_t>(seq_), B = static_cast<size_t>(batch_);
  Batch b;
  b.inputs.resize(B * T);
  b.targets.resize(B * T);
  if (!shuffle_) {
    size_t shard = static_cast<size_t>(std::upper_bound(prefix_.begin(), prefix_.end(), p.index) - prefix_.begin() - 1);
    const uint16_t *src = train_[shard]->tokens() + (p.index - prefix_[shard]) * batch_ * seq_;
    for (size_t i = 0; i < B * T; ++i) {
      b.inputs[i] = src[i];
      b.targets[i] = src[i + 1];
    }
    return b;
  }
  planEpoch(p.epoch);
  for (size_t r = 0; r < B; ++r) {
    const Location &w = order_[static_cast<size_t>(p.index) * B + r];
    const uint16_t *src = train_[w.shard]->tokens() + w.token;
    for (size_t i = 0; i < T; ++i) {
      b.inputs[r * T + i] = src[i];
      b.targets[r * T + i] = src[i + 1];
    }
  }
  return b;
}

Batch Dataset::next() {
  Batch b = at(pos_);
  skip();
  return b;
}

void Dataset::skip() {
  if (++pos_.index == epochSize()) pos_ = {pos_.epoch + 1, 0};
}

void Dataset::seek(Position p) {
  if (p.epoch < 0 || p.index < 0 || p.index >= epochSize())
    throw DataError("the checkpoint's data position (epoch " + std::to_string(p.epoch) + ", micro-batch " +
                    std::to_string(p.index) + ") is outside the " + std::to_string(epochSize()) +
                    " micro-batches of an epoch of these shards: not the data it was trained on");
  pos_ = p;
}

int64_t Dataset::validationBatches() const { return valPrefix_.back(); }

Batch Dataset::validation(int64_t i) {
  size_t shard = static_cast<size_t>(std::upper_bound(valPrefix_.begin(), valPrefix_.end(), i) - valPrefix_.begin() - 1);
  const uint16_t *src = val_[shard]->tokens() + (i - valPrefix_[shard]) * batch_ * seq_;
  size_t n = static_cast<size_t>(batch_ * seq_);
  Batch b;
  b.inputs.resize(n);
  b.targets.resize(n);
  for (size_t k = 0; k < n; ++k) {
    b.inputs[k] = src[k];
    b.targets[k] = src[k + 1];
  }
  return b;
}

}  // namespace tlc::train
