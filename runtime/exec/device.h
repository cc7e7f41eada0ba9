// Where a compiled step runs. The executor drives a Device through this
// interface; the CPU and CUDA implementations JIT-compile the artifact's
// kernel sources and call BLAS for GEMMs.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "formats/artifact.h"

namespace tlc {

struct DeviceError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Device {
 public:
  virtual ~Device() = default;
  virtual std::string describe() const = 0;

  virtual void *alloc(size_t bytes) = 0;  // zero-filled
  virtual void release(void *p) = 0;
  virtual void upload(void *dst, const void *src, size_t bytes) = 0;
  virtual void download(void *dst, const void *src, size_t bytes) = 0;
  virtual void zero(void *p, size_t bytes) = 0;
  // Zeroes the bytes and hands the memory behind them back where the device
  // can (the CPU: every whole page inside, MADV_DONTNEED; it is faulted in
  // again, zero, when next touched): a sharded rank's gathered parameters
  // and reduced gradients between uses. Elsewhere the same as zero().
  virtual void decommit(void *p, size_t bytes) { zero(p, bytes); }

  // JIT-compiles (or loads from the cache) every kernel of the artifact.
  virtual void loadKernels(const artifact::Artifact &a) = 0;
  // `args` are device pointers in the kernel's parameter order; `error`
  // the device error flag (passed to kernels that check indices).
  // `counts`: the kernel's count arguments (tl_n0, ...; its last), `grid`
  // its CUDA grid (-1: the kernel's own), both the step's for this run.
  virtual void launch(const artifact::Kernel &k, const std::vector<void *> &args, int *error,
                      int64_t grid = -1, const std::vector<int64_t> &counts = {}) = 0;
  virtual void gemm(const artifact::Gemm &g, const void *a, const void *b, void *c) = 0;
  virtual void synchronize() = 0;

  // Graphs (CUDA graphs): a run's launches recorded once and replayed as
  // one, so the host no longer pays a few microseconds for each of a step's
  // ~900 launches. Between beginCapture and endCapture, launch, gemm and
  // zero are recorded, not run. beginCapture returns false where the device
  // has no graphs (the default: the CPU); both may throw DeviceError when a
  // capture fails, and endCapture returns null when it yields no graph. A
  // replay is ordered like the launches it stands for, issued in its place
  // (it throws DeviceError when the graph cannot be launched). The executor
  // keeps the graphs (executor.h) and releases each with releaseGraph.
  virtual bool beginCapture() { return false; }
  virtual void *endCapture() { return nullptr; }
  virtual void replay(void * /*graph*/) {}
  virtual void releaseGraph(void * /*graph*/) {}
};

std::unique_ptr<Device> makeCpuDevice();
// Throws DeviceError (with the reason) when no CUDA driver or GPU is usable.
// `ordinal`: the GPU to open (a data-parallel rank's node-local rank).
std::unique_ptr<Device> makeCudaDevice(int ordinal = 0);

}  // namespace tlc
