// TinyLlama's recipe pieces without a device: the schedules (cosine, wsd,
// constant), string keys, data sources from --data and [data.NAME] tables,
// and the mixture's plan (exact totals at every window's end, seeded order,
// seek equal to reading on, epochs per source).
#include "runtime/train/config.h"
#include "runtime/train/mixture.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "formats/tokens.h"

using namespace tlc::train;
namespace fs = std::filesystem;

namespace {

template <typename F>
std::string errorOf(F f) {
  try {
    f();
  } catch (const std::exception &e) {
    return e.what();
  }
  return "";
}

// A source whose token ids all lie in [lo, lo + span): micro-batches show
// where they came from.
std::string sourceDir(const std::string &name, size_t tokens, int lo, int span, uint32_t seed) {
  std::string dir = ::testing::TempDir() + "train_recipe_" + name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::mt19937 rng(seed);
  std::vector<uint16_t> t(tokens);
  for (uint16_t &x : t) x = static_cast<uint16_t>(lo + static_cast<int>(rng() % static_cast<unsigned>(span)));
  tlc::tokens::writeShard(dir + "/x_train_000.bin", t);
  return dir;
}

}  // namespace

TEST(TrainRecipe, SchedulesFollowTheirFormulas) {
  Config c;
  c.lr = 1e-3, c.min_lr = 1e-4, c.warmup_steps = 10, c.steps = 110;
  c.schedule = "constant";
  EXPECT_DOUBLE_EQ(learningRate(c, 4), 5e-4);  // warmup is shared
  EXPECT_DOUBLE_EQ(learningRate(c, 10), 1e-3);
  EXPECT_DOUBLE_EQ(learningRate(c, 109), 1e-3);
  c.schedule = "wsd";  // decay_steps 0: a fifth of 110 = 22 steps, 88..109
  EXPECT_EQ(decaySteps(c), 22);
  EXPECT_DOUBLE_EQ(learningRate(c, 87), 1e-3);
  EXPECT_NEAR(learningRate(c, 88), 1e-4 + (1 - 1.0 / 22) * 9e-4, 1e-15);
  EXPECT_NEAR(learningRate(c, 98), 1e-4 + (1 - 11.0 / 22) * 9e-4, 1e-15);
  EXPECT_DOUBLE_EQ(learningRate(c, 109), 1e-4);  // the last step reaches min_lr
  c.decay_steps = 40, c.decay_shape = "cosine";
  EXPECT_DOUBLE_EQ(learningRate(c, 69), 1e-3);
  EXPECT_NEAR(learningRate(c, 89), 1e-4 + 0.5 * (1 + std::cos(M_PI * 20 / 40)) * 9e-4, 1e-15);
  c.decay_shape = "sqrt";
  EXPECT_NEAR(learningRate(c, 79), 1e-4 + (1 - std::sqrt(10.0 / 40)) * 9e-4, 1e-15);
  EXPECT_DOUBLE_EQ(learningRate(c, 109), 1e-4);
  c.schedule = "cosine";  // unchanged: llm.c's
  EXPECT_NEAR(learningRate(c, 60), 1e-4 + 0.5 * (1 + std::cos(M_PI * 50 / 100)) * 9e-4, 1e-15);
}

TEST(TrainRecipe, StringKeysAndTheirErrors) {
  Config c;
  applySet(c, {"schedule=wsd,decay_shape=sqrt,sample_prompt=Once upon a time,sample_every=5"});
  EXPECT_EQ(c.schedule, "wsd");
  EXPECT_EQ(c.decay_shape, "sqrt");
  EXPECT_EQ(c.sample_prompt, "Once upon a time");
  EXPECT_NE(errorOf([&] { applySet(c, {"schedule=linear"}); }).find("key 'schedule' must be one of cosine|wsd|constant"),
            std::string::npos);
  EXPECT_NE(errorOf([&] { applySet(c, {"decay_shape=1"}); }).find("key 'decay_shape' must be one of"), std::string::npos);
  applySet(c, {"sample_prompt=1234"});  // --set types digits as a number: still the prompt's text
  EXPECT_EQ(c.sample_prompt, "1234");
  Config d;
  d.steps = 100, d.warmup_steps = 50, d.schedule = "wsd", d.decay_steps = 60;
  EXPECT_NE(errorOf([&] { validate(d); }).find("key 'decay_steps' (60) exceeds steps - warmup_steps (50)"),
            std::string::npos);
  Config e;
  e.eval_every = 10;
  EXPECT_NE(errorOf([&] { validate(e); }).find("key 'eval_every' needs key 'eval_tasks'"), std::string::npos);
  // Round trip through config.json (what a checkpoint records).
  Config back = fromJson(c.toJson(), "test");
  EXPECT_EQ(back.schedule, "wsd");
  EXPECT_EQ(back.sample_prompt, "1234");
}

TEST(TrainRecipe, DataSourcesFromTheCommandLineAndTables) {
  std::vector<DataSource> d = parseDataOptions({"slim=/data/slim:0.7", "star=/data/a:b/star:0.3"});
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].name, "slim");
  EXPECT_EQ(d[0].dir, "/data/slim");
  EXPECT_DOUBLE_EQ(d[0].weight, 0.7);
  EXPECT_EQ(d[1].dir, "/data/a:b/star");  // the weight is after the last colon
  d = parseDataOptions({"only=/data/x"});
  EXPECT_DOUBLE_EQ(d[0].weight, 1.0);
  d = parseDataOptions({"/plain/dir"});
  EXPECT_EQ(d[0].name, "");
  EXPECT_NE(errorOf([] { parseDataOptions({"/a", "/b"}); }).find("each is NAME=DIR:WEIGHT"), std::string::npos);
  EXPECT_NE(errorOf([] { parseDataOptions({"a=/x:1", "a=/y:1"}); }).find("name 'a' given twice"), std::string::npos);
  EXPECT_NE(errorOf([] { parseDataOptions({"a=/x:0"}); }).find("weights must be > 0"), std::string::npos);
  EXPECT_NE(errorOf([] { parseDataOptions({"a=/x:-1"}); }).find("weights must be > 0"), std::string::npos);
  EXPECT_NE(errorOf([] { parseDataOptions({"a b=/x:1"}); }).find("must be 1-64 of"), std::string::npos);
  EXPECT_NE(errorOf([] { parseDataOptions({"a=:1"}); }).find("empty directory"), std::string::npos);
  std::string toml = ::testing::TempDir() + "recipe.toml";
  std::ofstream(toml) << "lr = 1e-3\n[data.slim]\ndir = \"/data/slim\"\nweight = 7\n[data.star]\ndir = \"/data/star\"\n"
                         "weight = 3\n";
  Config c;
  applyFile(c, toml);
  ASSERT_EQ(c.data.size(), 2u);
  EXPECT_EQ(c.data[1].name, "star");
  EXPECT_DOUBLE_EQ(c.data[1].weight, 3);
  EXPECT_EQ(fromJson(c.toJson(), "test").data, c.data);
  std::ofstream(toml) << "[data.slim]\nweight = 7\n";
  EXPECT_NE(errorOf([&] { Config x; applyFile(x, toml); }).find("[data.slim] has no dir"), std::string::npos);
  std::ofstream(toml) << "[data.slim]\ndir = \"/x\"\nshare = 7\n";
  EXPECT_NE(errorOf([&] { Config x; applyFile(x, toml); }).find(toml + ":3: key 'data.slim.share'"), std::string::npos);
}

TEST(TrainRecipe, MixtureIsExactAtEveryWindowAndSeekable) {
  std::string a = sourceDir("a", 4000, 0, 100, 1), b = sourceDir("b", 900, 100, 100, 2), c = sourceDir("c", 2500, 200, 100, 3);
  std::vector<DataSource> sources = {{"a", a, 0.6}, {"b", b, 0.1}, {"c", c, 0.3}};
  const int64_t B = 2, T = 8;
  TrainingData data(sources, 300, B, T, 42, true);
  ASSERT_TRUE(data.mixture());
  int64_t W = data.window();
  std::vector<int64_t> counts(3, 0);
  std::vector<std::vector<int32_t>> stream;
  for (int64_t g = 0; g < 10 * W; ++g) {
    Batch batch = data.next();
    size_t s = static_cast<size_t>(batch.inputs[0] / 100);
    for (int32_t t : batch.inputs) ASSERT_EQ(t / 100, batch.inputs[0] / 100) << "a micro-batch mixes sources";
    ASSERT_EQ(s, data.sourceOf(g));
    ++counts[s];
    stream.push_back(batch.inputs);
    if ((g + 1) % W == 0)  // exact at every window's end: within one micro-batch of the share
      for (size_t k = 0; k < 3; ++k)
        EXPECT_LT(std::fabs(static_cast<double>(counts[k]) - data.share(k) * static_cast<double>(g + 1)), 1.0)
            << "source " << k << " after " << g + 1;
  }
  EXPECT_EQ(data.consumed(), counts);
  // Each source ran out (b, 56 micro-batches an epoch, twice) and said so.
  std::vector<std::string> notices = data.takeNotices();
  auto said = [&](const std::string &what) {
    return std::any_of(notices.begin(), notices.end(), [&](const std::string &n) { return n.find(what) != std::string::npos; });
  };
  EXPECT_TRUE(said("data source 'b' begins epoch 2 after 56 micro-batches"));
  EXPECT_EQ(counts[1] >= 112, said("data source 'b' begins epoch 3"));
  EXPECT_TRUE(said("data source 'a' begins epoch 2"));
  EXPECT_TRUE(data.takeNotices().empty());
  // Seeking to any g reads on exactly as the straight run did.
  TrainingData again(sources, 300, B, T, 42, true);
  for (int64_t g : {int64_t{0}, int64_t{1}, W - 1, W, 3 * W + 7, 9 * W + 5}) {
    again.seek({0, g});
    EXPECT_EQ(again.next().inputs, stream[static_cast<size_t>(g)]) << "g = " << g;
  }
  // Another seed: another order, the same totals at window ends.
  TrainingData other(sources, 300, B, T, 43, true);
  int64_t differ = 0;
  for (int64_t g = 0; g < W; ++g) differ += other.sourceOf(g) != data.sourceOf(g);
  EXPECT_GT(differ, 0);
  for (size_t k = 0; k < 3; ++k) EXPECT_EQ(other.countBefore(k, 4 * W), data.countBefore(k, 4 * W));
  EXPECT_NE(errorOf([&] { again.seek({2, 5}); }).find("not a mixture's"), std::string::npos);
  EXPECT_NE(errorOf([&] { TrainingData tiny({{"a", a, 1}, {"b", b, 1e-5}}, 300, B, T, 1, true); })
                .find("below the smallest share"),
            std::string::npos);
}
