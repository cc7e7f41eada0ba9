#include "runtime/train/config.h"

#include "cli/cli.h"

#include <cmath>
#include <map>
#include <sstream>
#include <variant>

namespace tlc::train {
namespace {

using Member = std::variant<int64_t Config::*, double Config::*, bool Config::*>;

struct Key {
  KeyInfo info;
  Member member;
  double min, max;  // inclusive bounds for numbers
};

constexpr double kBig = 9.2e18;

const std::vector<Key> &table() {
  static const std::vector<Key> keys = {
      {{"steps", "int", ">= 1", "optimizer steps of the run (the schedule's horizon)"}, &Config::steps, 1, kBig},
      {{"batch_tokens", "int", "multiple of B*T", "global batch in tokens, reached by accumulating micro-batches"},
       &Config::batch_tokens, 1, kBig},
      {{"micro_batch", "int", "0 .. compiled", "sequences per micro-batch, B (0: the artifact's; any B up to the "
        "compiled one runs on the same kernels)"}, &Config::micro_batch, 0, kBig},
      {{"lr", "float", ">= 0", "peak learning rate"}, &Config::lr, 0, 1e30},
      {{"min_lr", "float", "0 .. lr", "learning rate at the end of the cosine decay"}, &Config::min_lr, 0, 1e30},
      {{"warmup_steps", "int", ">= 0", "steps of linear warmup"}, &Config::warmup_steps, 0, kBig},
      {{"beta1", "float", "[0, 1)", "AdamW first-moment decay"}, &Config::beta1, 0, 1},
      {{"beta2", "float", "[0, 1)", "AdamW second-moment decay"}, &Config::beta2, 0, 1},
      {{"eps", "float", "> 0", "AdamW epsilon"}, &Config::eps, 0, 1},
      {{"weight_decay", "float", ">= 0", "decoupled weight decay (on the parameters the model decays, unless decay_norms)"},
       &Config::weight_decay, 0, 1e30},
      {{"grad_clip", "float", ">= 0", "clip the global gradient norm to this (0: off)"}, &Config::grad_clip, 0, 1e30},
      {{"seed", "int", ">= 0", "seeds the data order and fresh weights"}, &Config::seed, 0, kBig},
      {{"shuffle", "bool", "true/false", "shuffle shards and windows per epoch (false: llm.c's sequential order)"},
       &Config::shuffle, 0, 1},
      {{"log_every", "int", ">= 1", "steps between progress lines and metrics.jsonl entries"}, &Config::log_every, 1, kBig},
      {{"val_every", "int", ">= 0", "steps between validation losses (0: only at the end)"}, &Config::val_every, 0, kBig},
      {{"val_batches", "int", ">= 1", "micro-batches of the validation shards per validation"}, &Config::val_batches, 1, kBig},
      {{"checkpoint_every", "int", ">= 0", "steps between checkpoints (0: only the final one)"},
       &Config::checkpoint_every, 0, kBig},
      {{"keep_checkpoints", "int", ">= 0", "newest checkpoints kept (0: all)"}, &Config::keep_checkpoints, 0, kBig},
      {{"nonfinite_limit", "int", ">= 1", "consecutive steps with a non-finite loss or gradient norm that stop the run"},
       &Config::nonfinite_limit, 1, kBig},
      {{"decay_norms", "bool", "true/false", "apply weight decay to the parameters the model exempts (norms) as well"}, &Config::decay_norms, 0, 1},
      {{"final_checkpoint", "bool", "true/false", "write a checkpoint when the run ends (false: benchmarks; a signal "
        "still writes one)"}, &Config::final_checkpoint, 0, 1},
      {{"zero", "int", "0 .. 2", "data parallelism: 0 replicated (all-reduce), 1 optimizer state sharded, 2 gradients "
        "reduced to their owners every micro-batch too (3, parameters sharded, is not built)"}, &Config::zero, 0, 2},
      {{"comm_timeout_s", "float", "1 .. 1e9", "seconds a rank waits in a collective before the job is ended naming "
        "the ranks that did not arrive"}, &Config::comm_timeout_s, 1, 1e9},
      {{"bucket_mb", "float", "1e-6 .. 1e9", "MiB of f32 gradients per reduction bucket (zero=2)"}, &Config::bucket_mb,
       1e-6, 1e9},
  };
  return keys;
}

const Key *findKey(const std::string &name) {
  for (const Key &k : table())
    if (name == k.info.name) return &k;
  return nullptr;
}

std::string knownKeys() {
  std::string s;
  for (const Key &k : table()) s += (s.empty() ? "" : ", ") + std::string(k.info.name);
  return s;
}

[[noreturn]] void fail(const std::string &where, const std::string &what) {
  throw ConfigError(where + ": " + what);
}

std::string formatDefault(const Config &c, const Key &k) {
  std::ostringstream s;
  std::visit([&](auto m) {
    using T = std::decay_t<decltype(c.*m)>;
    if constexpr (std::is_same_v<T, bool>) s << (c.*m ? "true" : "false");
    else s << c.*m;
  }, k.member);
  return s.str();
}

}  // namespace

const std::vector<KeyInfo> &configKeys() {
  static const std::vector<KeyInfo> infos = [] {
    std::vector<KeyInfo> v;
    for (const Key &k : table()) v.push_back(k.info);
    return v;
  }();
  return infos;
}

nlohmann::json Config::toJson() const {
  nlohmann::json j = nlohmann::json::object();
  for (const Key &k : table()) std::visit([&](auto m) { j[k.info.name] = this->*m; }, k.member);
  return j;
}

void setKey(Config &c, const std::string &key, const nlohmann::json &value, const std::string &where) {
  const Key *k = findKey(key);
  if (!k) fail(where, "unknown key '" + key + "' (known keys: " + knownKeys() + ")");
  std::string named = "key '" + key + "'";
  if (value.is_string()) fail(where, named + " has an invalid value '" + value.get<std::string>() + "'");
  std::visit([&](auto m) {
    using T = std::decay_t<decltype(c.*m)>;
    if constexpr (std::is_same_v<T, bool>) {
      if (!value.is_boolean()) fail(where, named + " must be true or false, got " + value.dump());
      c.*m = value.get<bool>();
    } else if constexpr (std::is_same_v<T, int64_t>) {
      double d = value.is_number() ? value.get<double>() : NAN;
      if (!value.is_number_integer() && !(value.is_number_float() && d == std::floor(d) && std::fabs(d) < 9e15))
        fail(where, named + " must be an integer, got " + value.dump());
      int64_t v = value.is_number_integer() ? value.get<int64_t>() : static_cast<int64_t>(d);
      if (static_cast<double>(v) > k->max)
        fail(where, named + " is too large (at most " + std::to_string(static_cast<int64_t>(k->max)) + "), got " +
                        std::to_string(v));
      if (v < k->min)
        fail(where, named + " must be " + k->info.range + ", got " + std::to_string(v));
      c.*m = v;
    } else {
      if (!value.is_number()) fail(where, named + " must be a number, got " + value.dump());
      double v = value.get<double>();
      if (!std::isfinite(v) || v < k->min || v > k->max) fail(where, named + " must be " + k->info.range + ", got " + value.dump());
      c.*m = v;
    }
  }, k->member);
}

void applySet(Config &c, const std::vector<std::string> &items) {
  nlohmann::json keyValues;
  try {
    keyValues = cli::parseSetList(items, "--set");
  } catch (const cli::UsageError &e) {
    throw ConfigError(e.what());
  }
  for (auto it = keyValues.begin(); it != keyValues.end(); ++it) setKey(c, it.key(), it.value(), "--set");
}

Config fromJson(const nlohmann::json &j, const std::string &where) {
  if (!j.is_object()) fail(where, "the configuration must be a JSON object of key: value");
  Config c;
  for (auto it = j.begin(); it != j.end(); ++it) setKey(c, it.key(), it.value(), where);
  return c;
}

void applyFile(Config &c, const std::string &path) {
  nlohmann::json keyValues;
  std::map<std::string, int> lines;
  try {
    keyValues = cli::loadConfigFile(path, &lines);
  } catch (const cli::UsageError &e) {
    throw ConfigError(e.what());
  }
  std::map<std::string, std::string> spelledAs;  // key -> as the file wrote it
  for (auto it = keyValues.begin(); it != keyValues.end(); ++it) {
    auto line = lines.find(it.key());
    std::string where = line == lines.end() ? path : path + ":" + std::to_string(line->second);
    // Keys may sit at the top level or in a [train] table ({"train": {...}} in JSON).
    std::string key = it.key().rfind("train.", 0) == 0 ? it.key().substr(6) : it.key();
    auto [first, fresh] = spelledAs.emplace(key, it.key());
    if (!fresh) fail(where, "key '" + key + "' given twice (as '" + first->second + "' and '" + it.key() + "')");
    setKey(c, key, it.value(), where);
  }
}

void validate(const Config &c) {
  if (c.min_lr > c.lr)
    fail("config", "key 'min_lr' (" + std::to_string(c.min_lr) + ") must not exceed key 'lr' (" + std::to_string(c.lr) + ")");
  if (c.beta1 >= 1) fail("config", "key 'beta1' must be below 1");
  if (c.beta2 >= 1) fail("config", "key 'beta2' must be below 1");
  if (c.eps <= 0) fail("config", "key 'eps' must be positive");
}

std::string keysHelp() {
  Config defaults;
  std::string s = "Configuration keys (--config FILE as JSON or TOML, --set key=value,...):\n";
  for (const Key &k : table()) {
    std::string head = "  " + std::string(k.info.name) + " = " + formatDefault(defaults, k);
    if (head.size() < 28) head.resize(28, ' ');
    else head += "  ";
    s += head + k.info.help + " (" + k.info.type + ", " + k.info.range + ")\n";
  }
  return s;
}

double learningRate(const Config &c, int64_t s) {
  if (s < c.warmup_steps) return c.lr * static_cast<double>(s + 1) / static_cast<double>(c.warmup_steps);
  if (c.steps <= c.warmup_steps) return c.lr;
  double progress = static_cast<double>(s - c.warmup_steps) / static_cast<double>(c.steps - c.warmup_steps);
  return c.min_lr + 0.5 * (1.0 + std::cos(M_PI * progress)) * (c.lr - c.min_lr);
}

}  // namespace tlc::train
