// Hugging Face Llama config.json and state-dict conventions (runtime/hf/hf_config.h).
#include "runtime/hf/hf_config.h"

#include <gtest/gtest.h>

#include <random>

using nlohmann::json;

namespace {

json tinyLlama11B() {  // tl.model of `tlc emit tinyllama --preset 1.1b`
  return {{"dim", 2048}, {"layers", 22}, {"heads", 32}, {"kv_heads", 4},    {"ffn", 5632},
          {"vocab", 32000}, {"seq", 2048}, {"micro_batch", 8}, {"norm_eps", 1e-5}, {"rope_theta", 10000.0}};
}

// TinyLlama-1.1B's released config.json (no rope_theta: LlamaConfig's 10000 applies).
json releasedConfig() {
  return json::parse(R"({"architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
    "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 5632,
    "max_position_embeddings": 2048, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 22,
    "num_key_value_heads": 4, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null,
    "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.31.0.dev0",
    "use_cache": true, "vocab_size": 32000})");
}

std::string refusal(const json &hf, const json &model) {
  try {
    tlc::hf::checkLlamaConfig(hf, model, "config.json");
  } catch (const tlc::hf::Error &e) {
    return e.what();
  }
  return "";
}

TEST(HfConfig, TinyLlamasReleasedConfigMatchesThePreset) {
  EXPECT_EQ(refusal(releasedConfig(), tinyLlama11B()), "");
}

TEST(HfConfig, ExportedConfigChecksAgainstItsModel) {
  std::mt19937 rng(std::random_device{}());
  for (int i = 0; i < 20; ++i) {
    int64_t kv = 1 + rng() % 4, heads = kv * (1 + rng() % 4), hd = 2 * (1 + rng() % 16);
    json m = {{"dim", heads * hd}, {"layers", 1 + rng() % 6}, {"heads", heads}, {"kv_heads", kv},
              {"ffn", 1 + rng() % 300}, {"vocab", 2 + rng() % 1000}, {"seq", 1 + rng() % 64},
              {"norm_eps", 1e-6 * (1 + rng() % 10)}, {"rope_theta", 100.0 * (1 + rng() % 1000)}};
    json c = tlc::hf::llamaConfig(m, "float32", 1, 2);
    EXPECT_EQ(refusal(c, m), "") << c.dump();
    EXPECT_EQ(c["head_dim"], hd);
    EXPECT_EQ(c["max_position_embeddings"], m["seq"]);
    EXPECT_EQ(c["tie_word_embeddings"], false);
    EXPECT_EQ(c["architectures"], json::array({"LlamaForCausalLM"}));
  }
}

TEST(HfConfig, EveryDisagreementIsNamed) {
  json m = tinyLlama11B();
  struct Case {
    const char *key;
    json value;
    std::string expect;
  } cases[] = {
      {"model_type", "mistral", "key 'model_type' is 'mistral'"},
      {"hidden_act", "gelu", "key 'hidden_act' is \"gelu\""},
      {"attention_bias", true, "key 'attention_bias' is true"},
      {"rope_scaling", json{{"type", "linear"}, {"factor", 2.0}}, "key 'rope_scaling'"},
      {"num_hidden_layers", 24, "key 'num_hidden_layers' is 24 but the model's layers is 22 (tlc emit --set layers=24)"},
      {"intermediate_size", 5000, "key 'intermediate_size' is 5000 but the model's ffn is 5632"},
      {"rope_theta", 500000.0, "key 'rope_theta' is 500000 but the model's rope_theta is 10000"},
      {"rms_norm_eps", 1e-6, "key 'rms_norm_eps' is 1e-06 but the model's norm_eps is 1e-05"},
      {"vocab_size", "32000", "key 'vocab_size' is missing or not an integer"},
  };
  for (const Case &c : cases) {
    json hf = releasedConfig();
    hf[c.key] = c.value;
    std::string msg = refusal(hf, m);
    EXPECT_NE(msg.find("config.json: "), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.key << ": " << msg;
  }
  // num_key_value_heads defaults to num_attention_heads (multi-head attention).
  json hf = releasedConfig();
  hf.erase("num_key_value_heads");
  EXPECT_NE(refusal(hf, m).find("key 'num_key_value_heads' is 32 but the model's kv_heads is 4"), std::string::npos);
  // rms_norm_eps defaults to LlamaConfig's 1e-6.
  hf = releasedConfig();
  hf.erase("rms_norm_eps");
  EXPECT_NE(refusal(hf, m).find("key 'rms_norm_eps' is 1e-06"), std::string::npos);
}

TEST(HfConfig, StateDictOfTinyLlama) {
  auto tensors = tlc::hf::llamaTensors(tinyLlama11B());
  ASSERT_EQ(tensors.size(), 2u + 22 * 9 + 1);
  int64_t total = 0;
  for (const auto &[name, shape] : tensors) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    total += n;
  }
  EXPECT_EQ(total, 1100048384);  // TinyLlama 1.1B exactly
  EXPECT_EQ(tensors.front().first, "model.embed_tokens.weight");
  EXPECT_EQ(tensors[2].first, "model.layers.0.self_attn.k_proj.weight");
  EXPECT_EQ(tensors[2].second, (std::vector<int64_t>{256, 2048}));
  EXPECT_EQ(tensors.back().first, "lm_head.weight");
}

TEST(HfConfig, IncompleteModelConfigIsNamed) {
  json m = tinyLlama11B();
  m.erase("kv_heads");
  try {
    tlc::hf::llamaConfig(m, "float32", 1, 2);
    FAIL() << "no error";
  } catch (const tlc::hf::Error &e) {
    EXPECT_NE(std::string(e.what()).find("'kv_heads'"), std::string::npos) << e.what();
  }
}

}  // namespace
