#include "runtime/hf/hf_config.h"

#include <cmath>
#include <cstdio>

namespace tlc::hf {
namespace {

// LlamaConfig key <- tl.model key. max_position_embeddings is the trained
// context (seq); it is not compared on import (a longer one is fine).
struct IntKey {
  const char *hf, *tl;
};
constexpr IntKey kIntKeys[] = {{"hidden_size", "dim"},          {"intermediate_size", "ffn"},
                               {"num_hidden_layers", "layers"}, {"num_attention_heads", "heads"},
                               {"num_key_value_heads", "kv_heads"}, {"vocab_size", "vocab"}};
struct FloatKey {
  const char *hf, *tl;
  double llamaDefault;  // LlamaConfig's default when config.json omits the key
};
constexpr FloatKey kFloatKeys[] = {{"rms_norm_eps", "norm_eps", 1e-6}, {"rope_theta", "rope_theta", 10000.0}};

int64_t intField(const nlohmann::json &model, const char *key) {
  auto it = model.find(key);
  if (it == model.end() || !it->is_number_integer() || it->get<int64_t>() <= 0)
    throw Error(std::string("the model configuration has no positive integer '") + key + "'");
  return it->get<int64_t>();
}

double floatField(const nlohmann::json &model, const char *key) {
  auto it = model.find(key);
  if (it == model.end() || !it->is_number()) throw Error(std::string("the model configuration has no number '") + key + "'");
  return it->get<double>();
}

}  // namespace

std::string shapeText(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

nlohmann::json llamaConfig(const nlohmann::json &model, const std::string &torchDType, int64_t bosId, int64_t eosId) {
  nlohmann::json c = {{"architectures", {"LlamaForCausalLM"}},
                      {"model_type", "llama"},
                      {"hidden_act", "silu"},
                      {"max_position_embeddings", intField(model, "seq")},
                      {"tie_word_embeddings", false},
                      {"attention_bias", false},
                      {"mlp_bias", false},
                      {"rope_scaling", nullptr},
                      {"attention_dropout", 0.0},
                      {"pretraining_tp", 1},
                      {"initializer_range", 0.02},
                      {"use_cache", true},
                      {"torch_dtype", torchDType},
                      {"bos_token_id", bosId},
                      {"eos_token_id", eosId}};
  for (const IntKey &k : kIntKeys) c[k.hf] = intField(model, k.tl);
  for (const FloatKey &k : kFloatKeys) c[k.hf] = floatField(model, k.tl);
  c["head_dim"] = intField(model, "dim") / intField(model, "heads");
  return c;
}

void checkLlamaConfig(const nlohmann::json &hf, const nlohmann::json &model, const std::string &path) {
  if (!hf.is_object()) throw Error(path + ": not a JSON object");
  auto fail = [&](const std::string &what) { throw Error(path + ": " + what); };
  std::string type = hf.value("model_type", "");
  if (type != "llama") fail("key 'model_type' is '" + type + "'; only Llama models ('llama') are read");
  if (hf.value("hidden_act", "silu") != "silu")
    fail("key 'hidden_act' is " + hf["hidden_act"].dump() + "; the model uses SiLU ('silu')");
  for (const char *key : {"attention_bias", "mlp_bias"})
    if (hf.value(key, false)) fail(std::string("key '") + key + "' is true; the model has no biases");
  if (hf.contains("rope_scaling") && !hf["rope_scaling"].is_null())
    fail("key 'rope_scaling' is " + hf["rope_scaling"].dump() + "; the model has plain rotary embeddings");
  for (const IntKey &k : kIntKeys) {
    int64_t ours = intField(model, k.tl);
    // num_key_value_heads defaults to num_attention_heads in LlamaConfig.
    const char *key = !hf.contains(k.hf) && std::string(k.hf) == "num_key_value_heads" ? "num_attention_heads" : k.hf;
    if (!hf.contains(key) || !hf[key].is_number_integer()) fail(std::string("key '") + k.hf + "' is missing or not an integer");
    int64_t theirs = hf[key].get<int64_t>();
    if (theirs != ours)
      fail(std::string("key '") + k.hf + "' is " + std::to_string(theirs) + " but the model's " + k.tl + " is " +
           std::to_string(ours) + " (tlc emit --set " + k.tl + "=" + std::to_string(theirs) + ")");
  }
  for (const FloatKey &k : kFloatKeys) {
    double ours = floatField(model, k.tl);
    double theirs = k.llamaDefault;
    if (hf.contains(k.hf)) {
      if (!hf[k.hf].is_number()) fail(std::string("key '") + k.hf + "' is not a number");
      theirs = hf[k.hf].get<double>();
    }
    if (std::fabs(theirs - ours) > 1e-9 * std::fabs(ours)) {
      char msg[256];
      std::snprintf(msg, sizeof(msg), "key '%s' is %g but the model's %s is %g (tlc emit --set %s=%g)", k.hf, theirs,
                    k.tl, ours, k.tl, theirs);
      fail(msg);
    }
  }
}

std::vector<std::pair<std::string, std::vector<int64_t>>> llamaTensors(const nlohmann::json &model) {
  int64_t d = intField(model, "dim"), ffn = intField(model, "ffn"), vocab = intField(model, "vocab");
  int64_t heads = intField(model, "heads"), kvHeads = intField(model, "kv_heads"), layers = intField(model, "layers");
  if (d % heads != 0) throw Error("the model configuration's dim " + std::to_string(d) + " is not a multiple of heads");
  int64_t kvDim = d / heads * kvHeads;
  std::vector<std::pair<std::string, std::vector<int64_t>>> t = {{"model.embed_tokens.weight", {vocab, d}}};
  for (int64_t i = 0; i < layers; ++i) {
    std::string p = "model.layers." + std::to_string(i) + ".";
    t.push_back({p + "self_attn.q_proj.weight", {d, d}});
    t.push_back({p + "self_attn.k_proj.weight", {kvDim, d}});
    t.push_back({p + "self_attn.v_proj.weight", {kvDim, d}});
    t.push_back({p + "self_attn.o_proj.weight", {d, d}});
    t.push_back({p + "mlp.gate_proj.weight", {ffn, d}});
    t.push_back({p + "mlp.up_proj.weight", {ffn, d}});
    t.push_back({p + "mlp.down_proj.weight", {d, ffn}});
    t.push_back({p + "input_layernorm.weight", {d}});
    t.push_back({p + "post_attention_layernorm.weight", {d}});
  }
  t.push_back({"model.norm.weight", {d}});
  t.push_back({"lm_head.weight", {vocab, d}});
  return t;
}

}  // namespace tlc::hf
