// The .tlx artifact: everything tlrun needs to execute a compiled training
// step, in one self-describing, versioned file. No MLIR here.
//
// Layout: "TLX\x01" | u32 version | u64 n + manifest JSON | u64 n + CPU C++
// source | u64 n + CUDA C++ source | u64 count, then per precompiled cubin
// u64 n + arch, u64 n + cubin | u64 FNV-1a 64 of all preceding bytes.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tlc::artifact {

constexpr uint32_t kVersion = 1;

// The largest tensor, in elements, that tlc compiles and the runtime runs:
// generated kernels index with int64, but GEMM sizes reach BLAS
// (cblas_sgemm) as int and CUDA grids are 31-bit.
constexpr int64_t kMaxTensorElements = 2147483647;  // 2^31-1

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class DType { F32, BF16, I32 };
const char *dtypeName(DType d);
size_t dtypeSize(DType d);
DType parseDType(const std::string &name);  // throws Error

// Where a buffer lives: in the arena at an offset, or bound by the runtime
// (parameters, data inputs, outputs) by index.
enum class BufferKind { Arena, Param, Input, Output };

struct Buffer {
  int64_t bytes = 0;
  BufferKind kind = BufferKind::Arena;
  int64_t offset = 0;  // arena offset, or index into params/inputs/outputs
};

// A named tensor the runtime binds: a parameter, an input or an output.
struct Tensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  int buffer = -1;
  nlohmann::json init;  // parameters: {"kind": "normal", "std": s} | {"kind": "ones"}
  int64_t numel() const;
};

// Matrix products, row-major: C[b] = op(A[b]) @ op(B[b]) with element
// strides between batches (0 for a shared operand).
struct Gemm {
  bool transA = false, transB = false;
  int64_t m = 0, n = 0, k = 0, batch = 1;
  int64_t strideA = 0, strideB = 0, strideC = 0;
  DType dtype = DType::F32;
};

struct Step {
  enum Kind { Kernel, Gemm, Zero } kind = Kernel;
  std::string kernel;       // Kernel: the kernel's name
  std::vector<int> buffers; // operands, in the kernel's parameter order
  struct Gemm gemm;         // Gemm: A, B, C = buffers[0..2]
  std::string location;     // the source op, for error messages
};

struct Kernel {
  std::string name;
  int64_t grid = 1, block = 1, sharedBytes = 0;  // CUDA launch
  bool checksErrors = false;  // takes a trailing int* error flag
};

struct Artifact {
  nlohmann::json config;  // the model's tl.model dictionary
  std::vector<Tensor> params, inputs, outputs;
  std::vector<Buffer> buffers;
  int64_t arenaBytes = 0;
  int64_t unplannedBytes = 0;  // sum of every arena tensor: what planning saved
  std::vector<Kernel> kernels;
  std::vector<Step> steps;
  std::string cpuSource, cudaSource;
  // Precompiled CUDA binaries by architecture ("sm_90"); optional.
  std::vector<std::pair<std::string, std::string>> cubins;
};

void write(const std::string &path, const Artifact &a);  // atomic
Artifact read(const std::string &path);                  // throws Error naming the file

}  // namespace tlc::artifact
