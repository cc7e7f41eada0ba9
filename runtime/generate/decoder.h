// The compiled decode step of an artifact ("decode_step"): one token's
// forward pass at a position, with the KV cache kept on the device (each
// cache is an input and an output of the step; the executor swaps their
// buffers after every step, so nothing but the token, the position and the
// logits crosses to the host).
#pragma once

#include <cstdint>
#include <vector>

#include "formats/artifact.h"
#include "runtime/exec/device.h"
#include "runtime/exec/executor.h"

namespace tlc::generate {

class Decoder {
 public:
  // Throws artifact::Error naming `path` when the artifact has no decode
  // step ("recompile with tlc compile") or the step's inputs and outputs
  // are not the expected ones. `a` and `device` must outlive the decoder.
  Decoder(const artifact::Artifact &a, Device &device, const std::string &path);

  int64_t context() const { return context_; }  // positions the cache holds
  int64_t vocab() const { return vocab_; }
  // Parameter i (artifact order) from f32 values, rounded to the compute dtype.
  void setParam(size_t i, const float *host);
  // The logits (as f32) of the token following `token` at `position`
  // (0-based, < context()). Positions must be fed in order from 0 for one
  // sequence; starting again at 0 begins a new sequence (later cache rows
  // are masked, so nothing needs clearing).
  const std::vector<float> &step(int32_t token, int64_t position);

 private:
  const artifact::Artifact &a_;
  Executor ex_;
  size_t entry_ = 0, token_ = 0, position_ = 0, logits_ = 0;
  std::vector<std::pair<size_t, size_t>> caches_;  // (input, output) pairs
  int64_t context_ = 0, vocab_ = 0;
  bool bf16Logits_ = false;
  std::vector<float> logitsHost_;
  std::vector<uint16_t> raw_;
};

}  // namespace tlc::generate
