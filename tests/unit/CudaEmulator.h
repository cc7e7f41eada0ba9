// A test-only Device that runs the generated CUDA kernels on the CPU: the
// CUDA source is compiled by the host C++ compiler against a small emulation
// of blockIdx/threadIdx, __syncthreads (a block barrier), warp shuffles (a
// warp barrier and exchange slots), shared memory, atomics, and the
// tensor-core primitives of Library/cuda_mma.cuh (mma, ldmatrix, cp.async,
// from the PTX ISA's fragment layouts, with alignment and shared-memory
// bounds checked). Kernels that cooperate run one OS thread per CUDA thread;
// the others run their threads in sequence. Memory and GEMMs are the CPU
// device's. It lets CI check the CUDA bodies (warp reductions, tiled and
// tensor-core attention) without a GPU.
#pragma once

#include <memory>

#include "runtime/exec/device.h"

namespace tlc::testing {
std::unique_ptr<Device> makeEmulatedCudaDevice();
}
