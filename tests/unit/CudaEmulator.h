// A test-only Device that runs the generated CUDA kernels on the CPU: the
// CUDA source is compiled by the host C++ compiler against a small emulation
// of blockIdx/threadIdx, __syncthreads (a block barrier), warp shuffles (a
// warp barrier and exchange slots), shared memory and atomics. Kernels that
// cooperate run one OS thread per CUDA thread; the others run their threads
// in sequence. Memory and GEMMs are the CPU device's. It lets CI check the
// CUDA bodies (warp reductions, tiled attention) without a GPU.
#pragma once

#include <memory>

#include "runtime/exec/device.h"

namespace tlc::testing {
std::unique_ptr<Device> makeEmulatedCudaDevice();
}
