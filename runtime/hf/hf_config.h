// Hugging Face Llama conventions: config.json from tlc's model dictionary
// (tl.model: dim, layers, heads, kv_heads, ffn, vocab, seq, norm_eps,
// rope_theta) and back, and the tensor names and shapes of
// LlamaForCausalLM's state dict.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace tlc::hf {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// LlamaConfig's fields for the model; `torchDType` is "float32", "bfloat16"
// or "float16" (what model.safetensors holds). Throws Error naming a
// missing or non-positive key of `model`.
nlohmann::json llamaConfig(const nlohmann::json &model, const std::string &torchDType, int64_t bosId, int64_t eosId);

// Checks a config.json (at `path`, for messages) against the model: the
// architecture is Llama's with SiLU and no rope scaling, and every
// dimension, rms_norm_eps and rope_theta agree. Throws Error naming the key
// and both values.
void checkLlamaConfig(const nlohmann::json &hf, const nlohmann::json &model, const std::string &path);

// The state dict of LlamaForCausalLM for the model, in Hugging Face's order:
// names and shapes ([out, in] for linear layers).
std::vector<std::pair<std::string, std::vector<int64_t>>> llamaTensors(const nlohmann::json &model);

std::string shapeText(const std::vector<int64_t> &shape);

}  // namespace tlc::hf
