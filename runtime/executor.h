// Runs a compiled step: owns the device buffers (arena, parameters, inputs,
// outputs, error flag) and walks the artifact's schedule.
#pragma once

#include "runtime/artifact.h"
#include "runtime/device.h"

namespace tlc {

class Executor {
 public:
  // Allocates every buffer and JIT-compiles (or loads cached) kernels.
  Executor(const artifact::Artifact &a, Device &device);
  ~Executor();  // prints the profile when TLC_PROFILE is set
  Executor(const Executor &) = delete;
  Executor &operator=(const Executor &) = delete;

  void setParam(size_t i, const void *host);
  void setInput(size_t i, const void *host);
  // Runs every step; throws DeviceError naming the op whose kernel reported
  // an out-of-range index.
  void run();
  void getOutput(size_t i, void *host);

 private:
  void *pointer(int buffer) const;
  void printProfile() const;

  const artifact::Artifact &a_;
  Device &device_;
  void *arena_ = nullptr;
  int *error_ = nullptr;
  std::vector<void *> params_, inputs_, outputs_;
  // With TLC_PROFILE set: seconds per step, summed over runs (each step is
  // synchronised, so the figures are per kernel, not overlapped).
  bool profile_ = false;
  std::vector<double> stepSeconds_;
};

}  // namespace tlc
