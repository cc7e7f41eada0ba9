#include "runtime/generate/decoder.h"

#include <stdexcept>
#include <string>

#include "formats/half.h"

namespace tlc::generate {
namespace {

// `a`, checked to have a decode step first.
const artifact::Artifact &withDecodeStep(const artifact::Artifact &a, const std::string &path) {
  if (!a.entry(artifact::kDecodeStep))
    throw artifact::Error(path + ": the artifact has no decode step ('" + std::string(artifact::kDecodeStep) +
                          "'; it was compiled before tlc emitted one, or from a function that is not a DSL "
                          "model): recompile the model with tlc compile");
  return a;
}

}  // namespace

Decoder::Decoder(const artifact::Artifact &a, Device &device, const std::string &path)
    : a_(a), ex_(withDecodeStep(a, path), device, 0, {artifact::kDecodeStep}) {
  entry_ = ex_.entryIndex(artifact::kDecodeStep);
  const artifact::EntryPoint &e = a.entries[entry_];
  auto bad = [&](const std::string &why) {
    return artifact::Error(path + ": decode_step: " + why + ": recompile the model with tlc compile");
  };
  bool token = false, position = false, logits = false;
  for (size_t i = 0; i < e.inputs.size(); ++i) {
    const artifact::Tensor &t = e.inputs[i];
    if (t.name == "token" || t.name == "position") {
      if (t.dtype != artifact::DType::I32 || t.numel() != 1) throw bad("input '" + t.name + "' is not one i32");
      (t.name == "token" ? token_ : position_) = i;
      (t.name == "token" ? token : position) = true;
      continue;
    }
    size_t o = 0;
    while (o < e.outputs.size() && e.outputs[o].name != t.name) ++o;
    if (o == e.outputs.size() || e.outputs[o].shape != t.shape || e.outputs[o].dtype != t.dtype || t.shape.size() != 3)
      throw bad("input '" + t.name + "' is neither token, position nor a [kv_heads, seq, head_dim] cache returned "
                "under the same name");
    caches_.push_back({i, o});
    if (context_ != 0 && context_ != t.shape[1]) throw bad("caches of different lengths");
    context_ = t.shape[1];
  }
  for (size_t o = 0; o < e.outputs.size(); ++o)
    if (e.outputs[o].name == "logits") {
      const artifact::Tensor &t = e.outputs[o];
      if (t.shape.size() != 2 || t.shape[0] != 1 || t.dtype == artifact::DType::I32)
        throw bad("output 'logits' is not a float [1, vocab]");
      logits_ = o, logits = true;
      vocab_ = t.shape[1];
      bf16Logits_ = t.dtype == artifact::DType::BF16;
    }
  if (!token || !position || !logits || caches_.empty())
    throw bad("expected inputs token, position and KV caches, and the output logits");
  logitsHost_.resize(vocab_);
  raw_.resize(vocab_);
}

void Decoder::setParam(size_t i, const float *host) {
  const artifact::Tensor &p = a_.params.at(i);
  if (p.dtype == artifact::DType::BF16) {
    std::vector<uint16_t> raw(p.numel());
    for (int64_t k = 0; k < p.numel(); ++k) raw[k] = floatToBf16(host[k]);
    ex_.setParam(i, raw.data());
  } else {
    ex_.setParam(i, host);
  }
}

const std::vector<float> &Decoder::step(int32_t token, int64_t position) {
  if (position < 0 || position >= context_)
    throw std::out_of_range("decode position " + std::to_string(position) + " outside the context of " +
                            std::to_string(context_) + " tokens");
  int32_t pos = static_cast<int32_t>(position);
  ex_.setInput(entry_, token_, &token);
  ex_.setInput(entry_, position_, &pos);
  ex_.run(entry_);
  // The caches just written are the next step's inputs.
  for (auto [i, o] : caches_) ex_.swapInputOutput(entry_, i, o);
  if (bf16Logits_) {
    ex_.getOutput(entry_, logits_, raw_.data());
    for (int64_t k = 0; k < vocab_; ++k) logitsHost_[k] = bf16ToFloat(raw_[k]);
  } else {
    ex_.getOutput(entry_, logits_, logitsHost_.data());
  }
  return logitsHost_;
}

}  // namespace tlc::generate
