#include "runtime/train/config.h"

#include "cli/cli.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <variant>

namespace tlc::train {
namespace {

using Member = std::variant<int64_t Config::*, double Config::*, bool Config::*, std::string Config::*>;

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
      {{"checkpoint_weights", "string", "full|sharded", "master weights in checkpoints: full (model.safetensors, "
        "gathered to rank 0) or sharded (each rank writes its flat range, no gather; tlrun export writes "
        "model.safetensors from them); unset: sharded with zero=3 on several ranks, else full"},
       &Config::checkpoint_weights, 0, 0},
      {{"nonfinite_limit", "int", ">= 1", "consecutive steps with a non-finite loss or gradient norm that stop the run"},
       &Config::nonfinite_limit, 1, kBig},
      {{"decay_norms", "bool", "true/false", "apply weight decay to the parameters the model exempts (norms) as well"}, &Config::decay_norms, 0, 1},
      {{"final_checkpoint", "bool", "true/false", "write a checkpoint when the run ends (false: benchmarks; a signal "
        "still writes one)"}, &Config::final_checkpoint, 0, 1},
      {{"zero", "int", "0 .. 3", "data parallelism: 0 replicated (all-reduce), 1 optimizer state sharded, 2 gradients "
        "reduced to their owners every micro-batch too, 3 parameters sharded between steps too"}, &Config::zero, 0, 3},
      {{"comm_timeout_s", "float", "1 .. 1e9", "seconds a rank waits in a collective before the job is ended naming "
        "the ranks that did not arrive"}, &Config::comm_timeout_s, 1, 1e9},
      {{"bucket_mb", "float", "1e-6 .. 1e9", "MiB of f32 gradients per reduction bucket (zero=2, 3)"}, &Config::bucket_mb,
       1e-6, 1e9},
      {{"overlap", "bool", "true/false", "zero=2, 3 on CPU ranks (MPI): reduce each gradient bucket on a communication "
        "thread as soon as the backward pass has finished it"}, &Config::overlap, 0, 1},
      {{"schedule", "string", "cosine|wsd|constant", "learning rate after warmup: cosine to min_lr at the last step; "
        "wsd holds lr, then decays to min_lr over the last decay_steps; constant holds lr"}, &Config::schedule, 0, 0},
      {{"decay_steps", "int", ">= 0", "wsd: steps of the final decay (0: a fifth of steps)"}, &Config::decay_steps, 0,
       kBig},
      {{"decay_shape", "string", "linear|cosine|sqrt", "wsd: the decay's shape (sqrt: lr * (1 - sqrt(progress)), "
        "floored at min_lr)"}, &Config::decay_shape, 0, 0},
      {{"sample_every", "int", ">= 0", "steps between samples written to the log and samples.jsonl (0: none; needs "
        "the artifact's decode step and the data's tokenizer)"}, &Config::sample_every, 0, kBig},
      {{"sample_prompt", "string", "text", "the prompt of the samples (BOS first; empty: BOS alone)"},
       &Config::sample_prompt, 0, 0},
      {{"sample_tokens", "int", "1 .. 100000", "tokens per sample at most"}, &Config::sample_tokens, 1, 100000},
      {{"sample_count", "int", "1 .. 16", "samples per sampling"}, &Config::sample_count, 1, 16},
      {{"sample_temperature", "float", "0 .. 100", "sampling temperature (0: greedy), top-p 0.9"},
       &Config::sample_temperature, 0, 100},
      {{"eval_every", "int", ">= 0", "steps between downstream evaluations of eval_tasks into metrics.jsonl (0: none)"},
       &Config::eval_every, 0, kBig},
      {{"eval_tasks", "string", "text", "tasks for eval_every, as tlrun evaluate --tasks: NAME=FILE.jsonl,..."},
       &Config::eval_tasks, 0, 0},
      {{"eval_limit", "int", ">= 0", "examples per task in eval_every (0: all)"}, &Config::eval_limit, 0, kBig},
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
    // A choice left empty is decided later (checkpoint_weights: by the job).
    else if constexpr (std::is_same_v<T, std::string>) {
      if ((c.*m).empty() && std::string(k.info.range) != "text") s << "(unset)";
      else s << '"' << c.*m << '"';
    }
    else s << c.*m;
  }, k.member);
  return s.str();
}

bool validName(const std::string &n) {
  return !n.empty() && n.size() <= 64 && std::all_of(n.begin(), n.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-';
  });
}

// A mixture's sources from JSON: [{name, dir, weight}, ...].
std::vector<DataSource> sourcesFromJson(const nlohmann::json &j, const std::string &where) {
  if (!j.is_array()) fail(where, "key 'data' must be a list of {name, dir, weight}");
  std::vector<DataSource> out;
  for (const nlohmann::json &e : j) {
    if (!e.is_object() || !e.contains("dir") || !e["dir"].is_string())
      fail(where, "key 'data': every source needs a string 'dir', got " + e.dump());
    DataSource d;
    d.name = e.value("name", "");
    d.dir = e["dir"].get<std::string>();
    if (e.contains("weight") && !e["weight"].is_number()) fail(where, "key 'data': weight must be a number");
    d.weight = e.value("weight", 1.0);
    out.push_back(d);
  }
  return out;
}

void checkSources(const std::vector<DataSource> &sources, const std::string &where) {
  for (size_t i = 0; i < sources.size(); ++i) {
    const DataSource &d = sources[i];
    if (d.name.empty() && sources.size() > 1)
      fail(where, "data source '" + d.dir + "' needs a name: a mixture is NAME=DIR:WEIGHT for every source");
    if (!d.name.empty() && !validName(d.name))
      fail(where, "data source name '" + d.name + "' must be 1-64 of A-Z a-z 0-9 _ -");
    if (!std::isfinite(d.weight) || d.weight <= 0 || d.weight > 1e9)
      fail(where, "data source '" + (d.name.empty() ? d.dir : d.name) + "' has weight " + std::to_string(d.weight) +
                      ": weights must be > 0");
    if (d.dir.empty()) fail(where, "data source '" + d.name + "' has an empty directory");
    for (size_t k = 0; k < i; ++k)
      if (sources[k].name == d.name) fail(where, "data source name '" + d.name + "' given twice");
  }
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
  if (checkpoint_weights.empty()) j.erase("checkpoint_weights");  // unresolved: read back as unset
  if (!data.empty()) {
    nlohmann::json sources = nlohmann::json::array();
    for (const DataSource &d : data) sources.push_back({{"name", d.name}, {"dir", d.dir}, {"weight", d.weight}});
    j["data"] = sources;
  }
  return j;
}

void setKey(Config &c, const std::string &key, const nlohmann::json &value, const std::string &where) {
  const Key *k = findKey(key);
  if (!k) fail(where, "unknown key '" + key + "' (known keys: " + knownKeys() + ")");
  std::string named = "key '" + key + "'";
  bool textKey = std::holds_alternative<std::string Config::*>(k->member);
  if (value.is_string() && !textKey) fail(where, named + " has an invalid value '" + value.get<std::string>() + "'");
  std::visit([&](auto m) {
    using T = std::decay_t<decltype(c.*m)>;
    if constexpr (std::is_same_v<T, std::string>) {
      // --set types its values: a prompt of digits arrives as a number.
      std::string v = value.is_string() ? value.get<std::string>() : value.is_primitive() ? value.dump() : "";
      if (!value.is_primitive() || value.is_null()) fail(where, named + " must be a string, got " + value.dump());
      std::string range = k->info.range;
      if (range != "text") {
        std::string choices = "|" + range + "|";
        if (v.empty() || v.find('|') != std::string::npos || choices.find("|" + v + "|") == std::string::npos)
          fail(where, named + " must be one of " + range + ", got '" + v + "'");
      }
      c.*m = v;
    } else if constexpr (std::is_same_v<T, bool>) {
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
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "data") c.data = sourcesFromJson(it.value(), where);
    else setKey(c, it.key(), it.value(), where);
  }
  checkSources(c.data, where);
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
  std::vector<DataSource> sources;  // [data.NAME] tables, in file order
  std::string dataWhere = path;
  for (auto it = keyValues.begin(); it != keyValues.end(); ++it) {
    auto line = lines.find(it.key());
    std::string where = line == lines.end() ? path : path + ":" + std::to_string(line->second);
    // Keys may sit at the top level or in a [train] table ({"train": {...}} in JSON).
    std::string key = it.key().rfind("train.", 0) == 0 ? it.key().substr(6) : it.key();
    if (key.rfind("data.", 0) == 0) {  // data.NAME.dir, data.NAME.weight
      std::string rest = key.substr(5);
      size_t dot = rest.rfind('.');
      std::string name = dot == std::string::npos ? "" : rest.substr(0, dot), field = rest.substr(dot + 1);
      if (dot == std::string::npos || (field != "dir" && field != "weight"))
        fail(where, "key '" + key + "': a data source is a table [data.NAME] with keys dir and weight");
      auto src = std::find_if(sources.begin(), sources.end(), [&](const DataSource &d) { return d.name == name; });
      if (src == sources.end()) {
        sources.push_back({name, "", 1});
        src = sources.end() - 1;
      }
      if (field == "dir") {
        if (!it.value().is_string()) fail(where, "key '" + key + "' must be a directory (a string)");
        src->dir = it.value().get<std::string>();
      } else {
        if (!it.value().is_number()) fail(where, "key '" + key + "' must be a number");
        src->weight = it.value().get<double>();
      }
      if (dataWhere == path) dataWhere = where;
      continue;
    }
    auto [first, fresh] = spelledAs.emplace(key, it.key());
    if (!fresh) fail(where, "key '" + key + "' given twice (as '" + first->second + "' and '" + it.key() + "')");
    setKey(c, key, it.value(), where);
  }
  if (!sources.empty()) {
    for (const DataSource &d : sources)
      if (d.dir.empty()) fail(path, "[data." + d.name + "] has no dir");
    checkSources(sources, dataWhere);
    c.data = sources;
  }
}

void validate(const Config &c) {
  if (c.min_lr > c.lr)
    fail("config", "key 'min_lr' (" + std::to_string(c.min_lr) + ") must not exceed key 'lr' (" + std::to_string(c.lr) + ")");
  if (c.beta1 >= 1) fail("config", "key 'beta1' must be below 1");
  if (c.beta2 >= 1) fail("config", "key 'beta2' must be below 1");
  if (c.eps <= 0) fail("config", "key 'eps' must be positive");
  if (c.schedule == "wsd" && c.decay_steps > 0 && c.decay_steps > c.steps - c.warmup_steps)
    fail("config", "key 'decay_steps' (" + std::to_string(c.decay_steps) + ") exceeds steps - warmup_steps (" +
                       std::to_string(c.steps - c.warmup_steps) + "): the decay would start during warmup");
  if (c.eval_every > 0 && c.eval_tasks.empty())
    fail("config", "key 'eval_every' needs key 'eval_tasks' (NAME=FILE.jsonl,...)");
}

void resolveCheckpointWeights(Config &c, int world) {
  if (c.checkpoint_weights.empty()) c.checkpoint_weights = c.zero == 3 && world > 1 ? "sharded" : "full";
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

int64_t decaySteps(const Config &c) {
  int64_t n = c.decay_steps > 0 ? c.decay_steps : c.steps / 5;
  return std::max<int64_t>(1, std::min(n, c.steps));
}

double learningRate(const Config &c, int64_t s) {
  if (s < c.warmup_steps) return c.lr * static_cast<double>(s + 1) / static_cast<double>(c.warmup_steps);
  if (c.schedule == "constant" || c.steps <= c.warmup_steps) return c.lr;
  if (c.schedule == "wsd") {
    int64_t decay = decaySteps(c), start = c.steps - decay;
    if (s < start) return c.lr;
    // Step `start` is the decay's first step; the last step reaches min_lr.
    double progress = decay <= 1 ? 1.0 : static_cast<double>(s - start + 1) / static_cast<double>(decay);
    double f = c.decay_shape == "cosine" ? 0.5 * (1.0 + std::cos(M_PI * progress))
               : c.decay_shape == "sqrt" ? 1.0 - std::sqrt(progress)
                                         : 1.0 - progress;
    return c.min_lr + f * (c.lr - c.min_lr);
  }
  double progress = static_cast<double>(s - c.warmup_steps) / static_cast<double>(c.steps - c.warmup_steps);
  return c.min_lr + 0.5 * (1.0 + std::cos(M_PI * progress)) * (c.lr - c.min_lr);
}

std::vector<DataSource> parseDataOptions(const std::vector<std::string> &items) {
  std::vector<DataSource> out;
  for (const std::string &item : items) {
    size_t eq = item.find('=');
    if (eq == std::string::npos) {  // a plain directory
      if (items.size() > 1)
        fail("--data", "'" + item + "': with several --data, each is NAME=DIR:WEIGHT (e.g. slim=/data/slim:0.7)");
      out.push_back({"", item, 1});
      continue;
    }
    DataSource d;
    d.name = item.substr(0, eq);
    std::string rest = item.substr(eq + 1);
    size_t colon = rest.rfind(':');
    d.dir = rest;
    if (colon != std::string::npos) {
      std::string w = rest.substr(colon + 1);
      char *end = nullptr;
      double v = std::strtod(w.c_str(), &end);
      if (!w.empty() && end && *end == '\0') {
        d.dir = rest.substr(0, colon);
        d.weight = v;
      }
    }
    out.push_back(d);
  }
  checkSources(out, "--data");
  return out;
}

std::string describeData(const std::vector<DataSource> &sources) {
  std::string s;
  double total = 0;
  for (const DataSource &d : sources) total += d.weight;
  for (const DataSource &d : sources) {
    char w[32];
    std::snprintf(w, sizeof w, "%.3g", d.weight / total);
    s += (s.empty() ? "" : ", ") + (d.name.empty() ? d.dir : d.name + "=" + d.dir + " (" + w + ")");
  }
  return s;
}

}  // namespace tlc::train
