//===- tinyllama.cpp - TinyLlama in the DSL ------------------------------===//
#include "models/tinyllama.h"

#include "models/llama_weights.h"
#include "models/nn.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/StringExtras.h"

#include <cmath>

using namespace mlir;

namespace tlc::models {
namespace {

llvm::Error error(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

// One table drives overrides, the tl.model attribute and reading it back.
struct IntField {
  const char *key;
  int64_t LlamaConfig::*member;
};
constexpr IntField kIntFields[] = {
    {"dim", &LlamaConfig::dim},         {"layers", &LlamaConfig::layers},
    {"heads", &LlamaConfig::heads},     {"kv_heads", &LlamaConfig::kvHeads},
    {"ffn", &LlamaConfig::ffn},         {"vocab", &LlamaConfig::vocab},
    {"seq", &LlamaConfig::seq},         {"micro_batch", &LlamaConfig::microBatch},
};
struct FloatField {
  const char *key;
  double LlamaConfig::*member;
};
constexpr FloatField kFloatFields[] = {
    {"norm_eps", &LlamaConfig::normEps},
    {"rope_theta", &LlamaConfig::ropeTheta},
};

std::string knownKeys() { return llvm::join(overrideKeys(), ", "); }

/// The product of `dims`, or -1 when it overflows int64.
int64_t checkedProduct(std::initializer_list<int64_t> dims) {
  int64_t n = 1;
  for (int64_t d : dims)
    if (__builtin_mul_overflow(n, d, &n)) return -1;
  return n;
}

} // namespace

int64_t LlamaConfig::parameterCount() const {
  int64_t perLayer = 2 * dim * dim      // q, o
                     + 2 * dim * kvDim() // k, v
                     + 3 * dim * ffn     // gate, up, down
                     + 2 * dim;          // two norms
  return 2 * vocab * dim + layers * perLayer + dim;
}

std::vector<std::string> presetNames() { return {"tiny", "124m", "1.1b"}; }

std::vector<std::string> overrideKeys() {
  std::vector<std::string> keys;
  for (const auto &f : kIntFields) keys.push_back(f.key);
  for (const auto &f : kFloatFields) keys.push_back(f.key);
  return keys;
}

llvm::Expected<LlamaConfig> preset(const std::string &name) {
  LlamaConfig c;
  c.preset = name;
  if (name == "tiny") {
    c.dim = 256, c.layers = 4, c.heads = 8, c.kvHeads = 2, c.ffn = 704;
    c.vocab = 4096, c.seq = 256, c.microBatch = 4;
  } else if (name == "124m") {
    c.dim = 768, c.layers = 12, c.heads = 12, c.kvHeads = 4, c.ffn = 2048;
    c.vocab = 32000, c.seq = 1024, c.microBatch = 16;
  } else if (name == "1.1b") {
    c.dim = 2048, c.layers = 22, c.heads = 32, c.kvHeads = 4, c.ffn = 5632;
    c.vocab = 32000, c.seq = 2048, c.microBatch = 8;
  } else {
    return error("unknown preset '" + name + "' (known: " +
                 llvm::join(presetNames(), ", ") + ")");
  }
  return c;
}

llvm::Error applyOverrides(LlamaConfig &config, const std::string &overrides) {
  llvm::SmallVector<llvm::StringRef> items;
  llvm::StringRef(overrides).split(items, ',', -1, /*KeepEmpty=*/false);
  for (llvm::StringRef item : items) {
    auto [key, value] = item.trim().split('=');
    key = key.trim();
    value = value.trim();
    if (!item.contains('=') || value.empty())
      return error("override '" + item + "' is not of the form key=value");
    bool known = false;
    for (const auto &f : kIntFields) {
      if (key != f.key) continue;
      known = true;
      int64_t v;
      if (value.getAsInteger(10, v) || v <= 0)
        return error("override '" + item + "': " + key + " must be a positive integer");
      config.*f.member = v;
    }
    for (const auto &f : kFloatFields) {
      if (key != f.key) continue;
      known = true;
      double v;
      if (value.getAsDouble(v) || !(v > 0) || !std::isfinite(v))
        return error("override '" + item + "': " + key + " must be a positive number");
      config.*f.member = v;
    }
    if (!known)
      return error("override '" + item + "': unknown key '" + key + "' (known: " +
                   knownKeys() + ")");
    if (config.preset.find('+') == std::string::npos) config.preset += "+overrides";
  }
  return llvm::Error::success();
}

llvm::Error validate(const LlamaConfig &c) {
  for (const auto &f : kIntFields)
    if (c.*f.member <= 0)
      return error(llvm::Twine(f.key) + " must be positive, got " +
                   llvm::Twine(c.*f.member));
  for (const auto &f : kFloatFields)
    if (!(c.*f.member > 0) || !std::isfinite(c.*f.member))
      return error(llvm::Twine(f.key) + " must be a positive number");
  if (c.dim % c.heads != 0)
    return error("heads (" + llvm::Twine(c.heads) + ") must divide dim (" +
                 llvm::Twine(c.dim) + ")");
  if (c.heads % c.kvHeads != 0)
    return error("kv_heads (" + llvm::Twine(c.kvHeads) + ") must divide heads (" +
                 llvm::Twine(c.heads) + ")");
  if (c.headDim() % 2 != 0)
    return error("the head dimension dim/heads (" + llvm::Twine(c.headDim()) +
                 ") must be even for rotary embedding");
  if (c.layers > kMaxLayers)
    return error("layers (" + llvm::Twine(c.layers) + ") is above the limit of " +
                 llvm::Twine(kMaxLayers));
  // Every tensor the model holds or computes. Not the attention scores
  // [micro_batch, heads, seq, seq]: fused attention never stores them, and
  // tlc compile and eval check every remaining tensor (checkTensorSizes).
  const int64_t B = c.microBatch, T = c.seq, D = c.dim;
  struct Sized {
    const char *what;
    int64_t elements;
  };
  const Sized tensors[] = {
      {"the embedding and lm_head [vocab, dim]", checkedProduct({c.vocab, D})},
      {"q_proj and o_proj [dim, dim]", checkedProduct({D, D})},
      {"k_proj and v_proj [kv_heads*head_dim, dim]", checkedProduct({c.kvDim(), D})},
      {"the FFN weights [ffn, dim]", checkedProduct({c.ffn, D})},
      {"the hidden states [micro_batch, seq, dim]", checkedProduct({B, T, D})},
      {"the FFN activations [micro_batch, seq, ffn]", checkedProduct({B, T, c.ffn})},
      {"the logits [micro_batch, seq, vocab]", checkedProduct({B, T, c.vocab})},
  };
  for (const Sized &t : tensors)
    if (t.elements < 0 || t.elements > artifact::kMaxTensorElements)
      return error(llvm::Twine(t.what) + " would have " +
                   (t.elements < 0 ? llvm::Twine("more than 2^63") : llvm::Twine(t.elements)) +
                   " elements, above the limit of 2^31-1 per tensor (GEMM sizes are int)");
  return llvm::Error::success();
}

namespace {

/// The logits [B, T, vocab] of `tokens` [B, T]: the decoder both the loss and
/// forward_logits are made of, so the two are the same model op for op.
dsl::Tensor llamaLogits(dsl::Graph &g, const LlamaConfig &c, const LlamaWeights &w, dsl::Tensor tokens) {
  using namespace dsl;
  const int64_t B = c.microBatch, T = c.seq, D = c.dim, H = c.heads,
                KV = c.kvHeads, hd = c.headDim();
  Tensor h = gather(w.embed, tokens);  // [B, T, D]
  nn::RopeTables rope = nn::ropeTables(g, T, hd, c.ropeTheta);
  auto heads = [&](Tensor x, int64_t n) {  // [B, T, n*hd] -> [B, n, T, hd]
    return transpose(reshape(x, {B, T, n, hd}), {0, 2, 1, 3});
  };
  for (int64_t i = 0; i < c.layers; ++i) {
    const LlamaLayerWeights &l = w.layers[i];
    std::string name = "model.layers." + std::to_string(i);
    {
      Graph::Scope scope(g, name + ".self_attn");
      Tensor x = nn::rmsNorm(h, l.inputNorm, c.normEps);
      Tensor q = nn::rotary(heads(nn::linear(x, l.q), H), rope);
      Tensor k = nn::rotary(heads(nn::linear(x, l.k), KV), rope);
      Tensor v = heads(nn::linear(x, l.v), KV);
      Tensor a = nn::attention(q, k, v, /*causal=*/true);
      a = reshape(transpose(a, {0, 2, 1, 3}), {B, T, D});
      h = h + nn::linear(a, l.o);
    }
    {
      Graph::Scope scope(g, name + ".mlp");
      Tensor x = nn::rmsNorm(h, l.postNorm, c.normEps);
      h = h + nn::swiglu(x, l.gate, l.up, l.down);
    }
  }
  Graph::Scope scope(g, "lm_head");
  return nn::linear(nn::rmsNorm(h, w.finalNorm, c.normEps), w.lmHead);
}

/// Records the config as the function's tl.model dictionary.
void setModelConfig(dsl::Graph &g, const LlamaConfig &c) {
  Builder &b = g.builder();
  g.setConfig("model", b.getStringAttr("tinyllama"));
  g.setConfig("preset", b.getStringAttr(c.preset));
  for (const auto &f : kIntFields) g.setConfig(f.key, b.getI64IntegerAttr(c.*f.member));
  for (const auto &f : kFloatFields) g.setConfig(f.key, b.getF64FloatAttr(c.*f.member));
}

} // namespace

OwningOpRef<ModuleOp> buildTinyLlama(MLIRContext &context, const LlamaConfig &c,
                                     Type floatType) {
  using namespace dsl;
  Graph g(context, "tinyllama", floatType);
  const int64_t B = c.microBatch, T = c.seq;
  // Parameters in Hugging Face state-dict order.
  LlamaWeights w = declareLlamaWeights(g, c);
  Tensor tokens = g.input("tokens", {B, T}, g.i32());
  Tensor targets = g.input("targets", {B, T}, g.i32());
  Tensor logits = llamaLogits(g, c, w, tokens);
  Graph::Scope scope(g, "lm_head");
  Tensor loss = nn::crossEntropy(reshape(logits, {B * T, c.vocab}),
                                 reshape(targets, {B * T}));
  setModelConfig(g, c);
  return g.finish(loss);
}

OwningOpRef<ModuleOp> buildTinyLlamaLogits(MLIRContext &context, const LlamaConfig &c,
                                           Type floatType) {
  using namespace dsl;
  Graph g(context, "tinyllama_logits", floatType);
  LlamaWeights w = declareLlamaWeights(g, c);
  Tensor tokens = g.input(kLogitsTokens, {c.microBatch, c.seq}, g.i32());
  Tensor logits = llamaLogits(g, c, w, tokens);
  setModelConfig(g, c);
  return g.finish({logits}, {kLogitsOutput});
}

llvm::Expected<LlamaConfig> configFromAttr(Attribute modelAttr) {
  auto dict = dyn_cast_or_null<DictionaryAttr>(modelAttr);
  if (!dict) return error("the function has no tl.model dictionary");
  LlamaConfig c;
  if (auto p = dict.getAs<StringAttr>("preset")) c.preset = p.str();
  for (const auto &f : kIntFields) {
    auto v = dict.getAs<IntegerAttr>(f.key);
    if (!v) return error(llvm::Twine("tl.model lacks integer field '") + f.key + "'");
    c.*f.member = v.getInt();
  }
  for (const auto &f : kFloatFields) {
    auto v = dict.getAs<FloatAttr>(f.key);
    if (!v) return error(llvm::Twine("tl.model lacks float field '") + f.key + "'");
    c.*f.member = v.getValueAsDouble();
  }
  if (llvm::Error e = validate(c)) return std::move(e);
  return c;
}

} // namespace tlc::models
