#include "runtime/train/config.h"

#include <cmath>
#include <fstream>
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
      {{"lr", "float", ">= 0", "peak learning rate"}, &Config::lr, 0, 1e30},
      {{"min_lr", "float", "0 .. lr", "learning rate at the end of the cosine decay"}, &Config::min_lr, 0, 1e30},
      {{"warmup_steps", "int", ">= 0", "steps of linear warmup"}, &Config::warmup_steps, 0, kBig},
      {{"beta1", "float", "[0, 1)", "AdamW first-moment decay"}, &Config::beta1, 0, 1},
      {{"beta2", "float", "[0, 1)", "AdamW second-moment decay"}, &Config::beta2, 0, 1},
      {{"eps", "float", "> 0", "AdamW epsilon"}, &Config::eps, 0, 1},
      {{"weight_decay", "float", ">= 0", "decoupled weight decay (2-D tensors only unless decay_norms)"},
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
      {{"decay_norms", "bool", "true/false", "apply weight decay to 1-D tensors (norms) as well"}, &Config::decay_norms, 0, 1},
      {{"zero", "int", "0 .. 2", "data parallelism: 0 replicated (all-reduce), 1 optimizer state sharded, 2 gradients "
        "reduced to their owners every micro-batch too (3, parameters sharded, is not built)"}, &Config::zero, 0, 2},
      {{"comm_timeout_s", "float", "> 0", "seconds a rank waits in a collective before the job is ended naming the "
        "ranks that did not arrive"}, &Config::comm_timeout_s, 1e-3, 1e9},
      {{"bucket_mb", "float", "> 0", "MiB of f32 gradients per reduction bucket (zero=2)"}, &Config::bucket_mb, 1e-6, 1e9},
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

std::string trim(const std::string &s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

[[noreturn]] void fail(const std::string &where, const std::string &what) {
  throw ConfigError(where + ": " + what);
}

// TOML: strips a trailing comment outside of a string.
std::string stripComment(const std::string &line) {
  bool inString = false;
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '"') inString = !inString;
    if (line[i] == '#' && !inString) return line.substr(0, i);
  }
  return line;
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
      if (v < k->min || static_cast<double>(v) > k->max)
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

nlohmann::json parseScalar(const std::string &raw, const std::string &key, const std::string &where) {
  std::string text = trim(raw);
  if (text.empty()) fail(where, "key '" + key + "' has no value");
  if (text == "true") return true;
  if (text == "false") return false;
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"') return text.substr(1, text.size() - 2);
  std::string digits;  // TOML allows 2_097_152
  for (char ch : text)
    if (ch != '_') digits += ch;
  try {
    size_t used = 0;
    if (digits.find_first_of(".eEnN") == std::string::npos) {
      long long v = std::stoll(digits, &used);
      if (used == digits.size()) return static_cast<int64_t>(v);
    } else {
      double v = std::stod(digits, &used);
      if (used == digits.size() && std::isfinite(v)) return v;
    }
  } catch (const std::exception &) {
  }
  fail(where, "key '" + key + "' has an invalid value '" + text + "'");
}

void applySet(Config &c, const std::string &list) {
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    item = trim(item);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string::npos) fail("--set", "'" + item + "' is not key=value");
    std::string key = trim(item.substr(0, eq));
    if (!findKey(key)) setKey(c, key, nullptr, "--set");  // unknown key: the usual message
    setKey(c, key, parseScalar(item.substr(eq + 1), key, "--set"), "--set");
  }
}

Config fromJson(const nlohmann::json &j, const std::string &where) {
  if (!j.is_object()) fail(where, "the configuration must be a JSON object of key: value");
  Config c;
  for (auto it = j.begin(); it != j.end(); ++it) setKey(c, it.key(), it.value(), where);
  return c;
}

void applyFile(Config &c, const std::string &path) {
  std::ifstream f(path);
  if (!f) fail(path, "cannot read the configuration file");
  std::stringstream buffer;
  buffer << f.rdbuf();
  std::string text = buffer.str();
  bool json = path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0;
  bool toml = path.size() >= 5 && path.compare(path.size() - 5, 5, ".toml") == 0;
  if (!json && !toml) json = trim(text).rfind('{', 0) == 0;
  if (json) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error &e) {
      fail(path, std::string("not valid JSON: ") + e.what());
    }
    if (!j.is_object()) fail(path, "the configuration must be a JSON object of key: value");
    for (auto it = j.begin(); it != j.end(); ++it) setKey(c, it.key(), it.value(), path);
    return;
  }
  // Flat TOML: key = value lines; a [train] table header is accepted.
  std::stringstream in(text);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::string where = path + ":" + std::to_string(number);
    line = trim(stripComment(line));
    if (line.empty() || line == "[train]") continue;
    if (line.front() == '[') fail(where, "unexpected table " + line + " (keys are top-level or under [train])");
    size_t eq = line.find('=');
    if (eq == std::string::npos) fail(where, "expected key = value");
    std::string key = trim(line.substr(0, eq));
    if (!findKey(key)) setKey(c, key, nullptr, where);
    setKey(c, key, parseScalar(line.substr(eq + 1), key, where), where);
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
