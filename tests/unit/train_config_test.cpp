// Trainer configuration: defaults, files, --set, rejection naming the key, schedule.
#include "runtime/train/config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <tuple>

using namespace tlc::train;

namespace {
std::string writeTemp(const std::string &name, const std::string &text) {
  std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}

template <typename F>
std::string errorOf(F f) {
  try {
    f();
  } catch (const ConfigError &e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(TrainConfig, DefaultsAreTheTinyLlamaRecipe) {
  Config c;
  EXPECT_EQ(c.batch_tokens, 1024 * 2048);
  EXPECT_DOUBLE_EQ(c.lr, 4e-4);
  EXPECT_DOUBLE_EQ(c.min_lr, 4e-5);
  EXPECT_EQ(c.warmup_steps, 2000);
  EXPECT_DOUBLE_EQ(c.beta1, 0.9);
  EXPECT_DOUBLE_EQ(c.beta2, 0.95);
  EXPECT_DOUBLE_EQ(c.eps, 1e-8);
  EXPECT_DOUBLE_EQ(c.weight_decay, 0.1);
  EXPECT_DOUBLE_EQ(c.grad_clip, 1.0);
  // Every key is documented with its default.
  std::string help = keysHelp();
  for (const KeyInfo &k : configKeys()) EXPECT_NE(help.find(std::string("  ") + k.name + " = "), std::string::npos) << k.name;
  EXPECT_NE(help.find("batch_tokens = 2097152"), std::string::npos);
}

TEST(TrainConfig, SetParsesEveryType) {
  Config c;
  applySet(c, {"steps=20, lr=1e-3,shuffle=false", "batch_tokens=2048", "grad_clip=0"});
  EXPECT_EQ(c.steps, 20);
  EXPECT_DOUBLE_EQ(c.lr, 1e-3);
  EXPECT_FALSE(c.shuffle);
  EXPECT_EQ(c.batch_tokens, 2048);
  EXPECT_DOUBLE_EQ(c.grad_clip, 0.0);
}

TEST(TrainConfig, RejectsNamingTheKey) {
  Config c;
  EXPECT_NE(errorOf([&] { applySet(c, {"stepz=3"}); }).find("unknown key 'stepz'"), std::string::npos);
  EXPECT_NE(errorOf([&] { applySet(c, {"steps=0"}); }).find("key 'steps' must be >= 1"), std::string::npos);
  EXPECT_NE(errorOf([&] { applySet(c, {"steps=2.5"}); }).find("key 'steps' must be an integer"), std::string::npos);
  EXPECT_NE(errorOf([&] { applySet(c, {"shuffle=1"}); }).find("key 'shuffle' must be true or false"), std::string::npos);
  EXPECT_NE(errorOf([&] { applySet(c, {"lr=fast"}); }).find("key 'lr' has an invalid value 'fast'"), std::string::npos);
  EXPECT_NE(errorOf([&] { applySet(c, {"beta2=-0.1"}); }).find("key 'beta2'"), std::string::npos);
  EXPECT_NE(errorOf([&] { applySet(c, {"steps=3", "steps=4"}); }).find("--set: key 'steps' given twice"),
            std::string::npos);
  EXPECT_NE(errorOf([&] { applySet(c, {"lr"}); }).find("--set: 'lr' is not of the form key=value"), std::string::npos);
  Config bad;
  bad.min_lr = 1, bad.lr = 0.5;
  EXPECT_NE(errorOf([&] { validate(bad); }).find("key 'min_lr'"), std::string::npos);
  bad = Config();
  bad.beta1 = 1;
  EXPECT_NE(errorOf([&] { validate(bad); }).find("key 'beta1'"), std::string::npos);
}

TEST(TrainConfig, JsonAndTomlFiles) {
  Config c;
  applyFile(c, writeTemp("c.json", R"({"steps": 7, "lr": 0.01, "shuffle": false, "min_lr": 0.001})"));
  EXPECT_EQ(c.steps, 7);
  EXPECT_DOUBLE_EQ(c.lr, 0.01);
  EXPECT_FALSE(c.shuffle);
  Config t;
  applyFile(t, writeTemp("c.toml", "# run\n[train]\nsteps = 9 # nine\nwarmup_steps=3\nweight_decay = 0.0\nshuffle = true\n"));
  EXPECT_EQ(t.steps, 9);
  EXPECT_EQ(t.warmup_steps, 3);
  EXPECT_DOUBLE_EQ(t.weight_decay, 0.0);

  std::string path = writeTemp("bad.toml", "steps = 3\nlearning_rate = 2\n");
  std::string e = errorOf([&] { Config x; applyFile(x, path); });
  EXPECT_NE(e.find(path + ":2: unknown key 'learning_rate'"), std::string::npos) << e;
  path = writeTemp("range.toml", "[train]\nsteps = 3\n\nlr = -1 # negative\n");
  e = errorOf([&] { Config x; applyFile(x, path); });
  EXPECT_NE(e.find(path + ":4: key 'lr' must be >= 0"), std::string::npos) << e;
  path = writeTemp("other.toml", "[model]\nsteps = 3\n");
  e = errorOf([&] { Config x; applyFile(x, path); });
  EXPECT_NE(e.find(path + ":2: unknown key 'model.steps'"), std::string::npos) << e;
  path = writeTemp("twice.toml", "steps = 3\nsteps = 4\n");
  e = errorOf([&] { Config x; applyFile(x, path); });
  EXPECT_NE(e.find(path + ":2: key 'steps' given twice (first on line 1)"), std::string::npos) << e;
  Config nested;
  applyFile(nested, writeTemp("nested.json", R"({"train": {"steps": 5}})"));
  EXPECT_EQ(nested.steps, 5);
  path = writeTemp("bad.json", R"({"steps": -1})");
  e = errorOf([&] { Config x; applyFile(x, path); });
  EXPECT_NE(e.find(path + ": key 'steps' must be >= 1"), std::string::npos) << e;
  path = writeTemp("broken.json", "{\"steps\": ");
  e = errorOf([&] { Config x; applyFile(x, path); });
  EXPECT_NE(e.find(path + ":1: invalid JSON"), std::string::npos) << e;
  e = errorOf([&] { Config x; applyFile(x, ::testing::TempDir() + "absent.toml"); });
  EXPECT_NE(e.find("absent.toml: cannot open config file"), std::string::npos) << e;
}

TEST(TrainConfig, JsonRoundTrip) {
  Config c;
  applySet(c, {"steps=11,lr=0.003,decay_norms=true,seed=5"});
  Config back = fromJson(c.toJson(), "config.json");
  EXPECT_EQ(back.toJson(), c.toJson());
}

// checkpoint_weights: full or sharded, refused otherwise naming the key and
// the values; unset, the job decides (sharded only with zero=3 on several
// ranks) and the resolved value is what config.json records.
TEST(TrainConfig, CheckpointWeightsAndItsDefault) {
  Config c;
  EXPECT_NE(errorOf([&] { applySet(c, {"checkpoint_weights=gathered"}); })
                .find("--set: key 'checkpoint_weights' must be one of full|sharded, got 'gathered'"),
            std::string::npos);
  EXPECT_FALSE(c.toJson().contains("checkpoint_weights"));  // unresolved: read back as unset
  EXPECT_EQ(fromJson(c.toJson(), "config.json").checkpoint_weights, "");
  for (auto [zero, world, expected] : {std::tuple{3, 4, "sharded"}, {3, 1, "full"}, {2, 4, "full"}, {0, 2, "full"}}) {
    Config d;
    d.zero = zero;
    resolveCheckpointWeights(d, world);
    EXPECT_EQ(d.checkpoint_weights, expected) << "zero=" << zero << " world=" << world;
    EXPECT_EQ(d.toJson()["checkpoint_weights"], expected);
  }
  Config given;
  given.zero = 3;
  applySet(given, {"checkpoint_weights=full"});
  resolveCheckpointWeights(given, 4);
  EXPECT_EQ(given.checkpoint_weights, "full");
  EXPECT_EQ(fromJson(given.toJson(), "config.json").checkpoint_weights, "full");
}

TEST(TrainConfig, ScheduleIsLlmCs) {
  Config c;
  c.steps = 100, c.warmup_steps = 10, c.lr = 1e-3, c.min_lr = 1e-4;
  EXPECT_DOUBLE_EQ(learningRate(c, 0), 1e-4);
  EXPECT_DOUBLE_EQ(learningRate(c, 9), 1e-3);
  EXPECT_DOUBLE_EQ(learningRate(c, 10), 1e-3);  // cos(0)
  EXPECT_NEAR(learningRate(c, 55), 1e-4 + 0.5 * (1e-3 - 1e-4), 1e-15);
  EXPECT_NEAR(learningRate(c, 99), 1e-4 + 0.5 * (1 + std::cos(M_PI * 89 / 90)) * 9e-4, 1e-15);
  c.warmup_steps = 0;
  EXPECT_DOUBLE_EQ(learningRate(c, 0), 1e-3);
}
