// The trainer's data order: llm.c's sequential order with shuffle=false, a
// seeded permutation without replacement with shuffle=true, and refusals
// naming the file.
#include "runtime/train/data.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "formats/tokens.h"

using namespace tlc::train;
namespace fs = std::filesystem;

namespace {

std::string freshDir(const std::string &name) {
  std::string dir = ::testing::TempDir() + "train_data_" + name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Token t of the stream is t % vocab, so positions are recoverable.
std::vector<uint16_t> ramp(size_t n, size_t start, int vocab) {
  std::vector<uint16_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint16_t>((start + i) % vocab);
  return v;
}

template <typename F>
std::string errorOf(F f) {
  try {
    f();
  } catch (const DataError &e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(TrainData, SequentialOrderIsLlmCs) {
  std::string dir = freshDir("seq");
  const int64_t B = 2, T = 4, V = 50000;
  // Shard a: 3 micro-batches (3*8+1 = 25 tokens; 30 tokens leave 5 over),
  // shard b: 1 micro-batch. A val shard is not training data.
  tlc::tokens::writeShard(dir + "/x_train_000.bin", ramp(30, 0, V));
  tlc::tokens::writeShard(dir + "/x_train_001.bin", ramp(9, 1000, V));
  tlc::tokens::writeShard(dir + "/x_val_000.bin", ramp(17, 5000, V));
  Dataset d(dir, V, B, T, 1, false);
  EXPECT_EQ(d.epochSize(), 4);
  for (int64_t i = 0; i < 4; ++i) {
    Batch b = d.next();
    int64_t start = i < 3 ? i * B * T : 1000;
    for (int64_t k = 0; k < B * T; ++k) {
      EXPECT_EQ(b.inputs[k], start + k) << i;
      EXPECT_EQ(b.targets[k], start + k + 1) << i;
    }
  }
  EXPECT_EQ(d.position(), (Position{1, 0}));  // next epoch starts over
  EXPECT_EQ(d.next().inputs[0], 0);
  ASSERT_TRUE(d.hasValidation());
  EXPECT_EQ(d.validationBatches(), 2);
  EXPECT_EQ(d.validation(1).inputs[0], 5008);
}

TEST(TrainData, ShuffledOrderIsAPermutationPerEpoch) {
  std::string dir = freshDir("shuffle");
  const int64_t B = 3, T = 5, V = 60000;
  tlc::tokens::writeShard(dir + "/a_train_0.bin", ramp(5 * 10 + 1, 0, V));      // 10 windows
  tlc::tokens::writeShard(dir + "/a_train_1.bin", ramp(5 * 8 + 3, 20000, V));   // 8 windows
  Dataset d(dir, V, B, T, 42, true);
  EXPECT_EQ(d.epochSize(), 6);  // 18 windows / 3
  std::vector<std::set<int>> epochs(2);
  for (int e = 0; e < 2; ++e)
    for (int i = 0; i < 6; ++i) {
      EXPECT_EQ(d.position(), (Position{e, i}));
      Batch b = d.next();
      for (int64_t r = 0; r < B; ++r) {
        int first = b.inputs[r * T];
        for (int64_t k = 0; k < T; ++k) EXPECT_EQ(b.targets[r * T + k], first + k + 1);  // a contiguous window
        EXPECT_TRUE(epochs[e].insert(first).second) << "window drawn twice in epoch " << e;
        EXPECT_EQ(first < 20000 ? first % T : (first - 20000) % T, 0);
      }
    }
  EXPECT_EQ(epochs[0], epochs[1]);  // every window once per epoch
  // Deterministic from the seed and the position; another seed differs.
  Dataset again(dir, V, B, T, 42, true), other(dir, V, B, T, 43, true);
  again.seek({1, 4});
  Dataset replay(dir, V, B, T, 42, true);
  for (int i = 0; i < 10; ++i) replay.next();
  EXPECT_EQ(again.next().inputs, replay.next().inputs);
  bool differs = false;
  Dataset base(dir, V, B, T, 42, true);
  for (int i = 0; i < 6; ++i) differs |= base.next().inputs != other.next().inputs;
  EXPECT_TRUE(differs);
  // Epochs differ in order.
  Dataset e0(dir, V, B, T, 42, true), e1(dir, V, B, T, 42, true);
  e1.seek({1, 0});
  differs = false;
  for (int i = 0; i < 6; ++i) differs |= e0.next().inputs != e1.next().inputs;
  EXPECT_TRUE(differs);
  EXPECT_NE(errorOf([&] { e0.seek({0, 6}); }).find("outside the 6 micro-batches"), std::string::npos);
}

TEST(TrainData, RefusesBadShardsNamingTheFile) {
  std::string dir = freshDir("bad");
  const int V = 100;
  EXPECT_NE(errorOf([&] { Dataset d(dir + "/absent", V, 1, 4, 1, false); }).find("absent: cannot open the data directory"),
            std::string::npos);
  EXPECT_NE(errorOf([&] { Dataset d(dir, V, 1, 4, 1, false); }).find("holds no training shards"), std::string::npos);

  std::string shard = dir + "/t_train.bin";
  tlc::tokens::writeShard(shard, ramp(40, 0, V));
  // Truncated.
  fs::resize_file(shard, 1024 + 30);
  EXPECT_NE(errorOf([&] { Dataset d(dir, V, 1, 4, 1, false); }).find(shard + ": truncated: the header announces 40 tokens"),
            std::string::npos);
  // Foreign: not a shard at all.
  std::ofstream(shard, std::ios::trunc) << std::string(2000, 'x');
  EXPECT_NE(errorOf([&] { Dataset d(dir, V, 1, 4, 1, false); }).find(shard + ": bad magic"), std::string::npos);
  std::ofstream(shard, std::ios::trunc) << "tiny";
  EXPECT_NE(errorOf([&] { Dataset d(dir, V, 1, 4, 1, false); }).find(shard + ": shorter"), std::string::npos);
  // Ids beyond the vocabulary.
  std::vector<uint16_t> ids = ramp(40, 0, V);
  ids[17] = 100;
  tlc::tokens::writeShard(shard, ids);
  EXPECT_NE(errorOf([&] { Dataset d(dir, V, 1, 4, 1, false); })
                .find(shard + ": token 17 is id 100, beyond the model's vocabulary of 100"),
            std::string::npos);
  // Too small for one micro-batch.
  tlc::tokens::writeShard(shard, ramp(8, 0, V));
  EXPECT_NE(errorOf([&] { Dataset d(dir, V, 2, 4, 1, false); }).find("no full micro-batch"), std::string::npos);
  // A tokenizer larger than the model.
  tlc::tokens::writeShard(shard, ramp(40, 0, V));
  std::ofstream(dir + "/manifest.json") << R"({"vocab_size": 32000})";
  std::string e = errorOf([&] { Dataset d(dir, V, 1, 4, 1, false); });
  EXPECT_NE(e.find("manifest.json: the tokenizer's vocab_size 32000 exceeds the model's vocabulary of 100"), std::string::npos) << e;
  std::ofstream(dir + "/manifest.json", std::ios::trunc) << R"({"vocab_size": 100})";
  Dataset ok(dir, V, 1, 4, 1, false);
  EXPECT_EQ(ok.epochSize(), 9);
}
