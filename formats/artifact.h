// The .tlx artifact: everything tlrun needs to train and evaluate a compiled
// model, in one self-describing, versioned file. No MLIR here.
//
// Version 5: the compiler's communication plan: parameter groups (layers)
// and, per entry point, where data parallelism gathers, releases and
// reduces each group (CommEvent). Version 4: kernels take their counts of rows and elements as arguments
// (`int64_t tl_n0, ...`, last), recorded per step with which follow the
// micro-batch, so steps of different shapes share one kernel. Version 3:
// entry points that allow it record the compiled micro-batch. Version 2: the
// parameters live in one flat buffer (and their gradients in
// another, f32) at aligned element offsets recorded here; the artifact holds
// several named entry points ("train_step", "eval_loss", ...) that share the
// parameters, the kernels and the arena, and the optimizer kernels.
//
// Layout: "TLX\x01" | u32 version | u64 n + manifest JSON | u64 n + CPU C++
// source | u64 n + CUDA C++ source | u64 count, then per precompiled cubin
// u64 n + arch, u64 n + cubin | u64 FNV-1a 64 of all preceding bytes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tlc::artifact {

constexpr uint32_t kVersion = 6;
constexpr int64_t kFlatAlignment = 64;  // elements: 256 bytes of f32

// Entry point names the runtime knows.
constexpr const char *kTrainStep = "train_step";  // tokens, targets -> loss; grads += dL/dparams
constexpr const char *kEvalLoss = "eval_loss";    // tokens, targets -> loss; forward only
// token, position, KV caches -> logits, KV caches with the token (generation)
constexpr const char *kDecodeStep = "decode_step";
// tokens i32 [B, T] -> logits [B, T, vocab] in the parameters' dtype (f32 or
// bf16): the forward pass of every position (tlrun evaluate); any B up to the
// compiled one
constexpr const char *kForwardLogits = "forward_logits";
// Optimizer kernels over a runtime range of the flat buffers (see Lowering).
constexpr const char *kAdamWKernel = "opt_adamw";
constexpr const char *kSumSqPartialKernel = "opt_sumsq_partial";
constexpr const char *kSumSqFinalKernel = "opt_sumsq_final";
constexpr int64_t kSumSqPartials = 128;  // fixed: the reduction order never depends on threads

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
// by index: a parameter (in the flat params buffer), its gradient (in the
// flat f32 grads buffer, accumulated into), an entry point's input or output.
enum class BufferKind { Arena, Param, Input, Output, Grad };

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
  nlohmann::json init;  // parameters: {"kind": "normal", "std": s} | {"kind": "ones"} | {"kind": "zeros"}
  bool decay = false;   // parameters: AdamW's weight decay applies (the model's policy)
  int64_t offset = -1;  // parameters: first element in the flat buffers
  int64_t numel() const;
};

// Matrix products, row-major: C[b] = op(A[b]) @ op(B[b]) with element
// strides between batches (0 for a shared operand).
struct Gemm {
  bool transA = false, transB = false;
  int64_t m = 0, n = 0, k = 0, batch = 1;
  int64_t strideA = 0, strideB = 0, strideC = 0;
  DType dtype = DType::F32;
  bool accumulate = false;  // C += A B (beta = 1): a gradient into the flat buffer, or a sum of GEMMs
  // The extent that scales with the run's micro-batch: the rows, the batch
  // count, or the contraction (a weight gradient over the batch's rows).
  enum class Scale { None, M, Batch, K } scale = Scale::None;
  // bf16 A and B with an f32 C: a bf16 weight gradient added straight into
  // the flat f32 gradient buffer (never rounded to bf16).
  bool f32Result = false;
  // This GEMM for a run of `batch` out of the compiled `compiled` micro-batch.
  Gemm forBatch(int64_t batch, int64_t compiled) const;
};

struct Step {
  enum Kind { Kernel, Gemm, Zero } kind = Kernel;
  std::string kernel;       // Kernel: the kernel's name
  std::vector<int> buffers; // operands, in the kernel's parameter order
  struct Gemm gemm;         // Gemm: A, B, C = buffers[0..2]
  std::string location;     // the source op, for error messages
  // Kernel: its count arguments (tl_n0, ...) and CUDA grid for the compiled
  // shapes, and which follow the run's micro-batch (scaled by it).
  std::vector<int64_t> counts;
  std::vector<bool> countScales;
  int64_t grid = 1;
  bool gridScales = false;
  // The counts and grid for a run of `batch` out of the compiled `compiled`.
  std::vector<int64_t> countsFor(int64_t batch, int64_t compiled) const;
  int64_t gridFor(int64_t batch, int64_t compiled) const;
};

struct Kernel {
  std::string name;
  int64_t grid = 1, block = 1, sharedBytes = 0;  // CUDA launch
  bool checksErrors = false;  // takes a trailing int* error flag
};

// Parameters gathered and released together under fully sharded data
// parallelism (zero=3): a run of consecutive parameters in flat order (a
// transformer layer), so elements [begin, end) of the flat buffers.
struct ParamGroup {
  std::string name;     // "model.layers.3", or the parameter's own name
  int first = 0, last = 0;  // params[first..last]
  int64_t begin = 0, end = 0;
};

// One point of an entry point's communication plan, by step index: once step
// `after` has been issued (-1: before the first step), gather the group's
// parameters from their owners (Gather: they must have arrived before step
// `need`, the first that reads them), release the gathered parameters
// (Release: no step reads them again before its next Gather), or reduce its
// gradients, which no later step writes (GradsFinal). Sorted by `after`;
// at equal `after`: releases, then gathers, then gradients.
struct CommEvent {
  enum Kind { Release, Gather, GradsFinal } kind = Gather;
  int group = 0;
  int64_t after = -1;
  int64_t need = -1;  // Gather only
};
const char *commEventName(CommEvent::Kind k);

// One compiled function: its data inputs and outputs (Input/Output buffers
// index these) and its schedule. Buffers, kernels and the arena are shared
// by every entry point; each plans its own arena use from offset 0.
struct EntryPoint {
  std::string name;
  std::vector<Tensor> inputs, outputs;
  std::vector<Step> steps;
  int64_t arenaBytes = 0;
  int64_t unplannedBytes = 0;  // sum of its arena tensors: what planning saved
  // The compiled micro-batch, when the entry point runs any micro-batch up
  // to it (its inputs' leading axis); 0: only the compiled shapes.
  int64_t batch = 0;
  std::vector<CommEvent> comm;  // the communication plan (empty: reads no parameter)
};

struct Artifact {
  nlohmann::json config;  // the model's tl.model dictionary
  std::vector<Tensor> params;  // in flat order, every one with its offset
  int64_t flatElements = 0;    // size of each full flat buffer, padding included
  std::vector<ParamGroup> groups;  // tile params in flat order (the communication plan's units)
  std::vector<Buffer> buffers;
  int64_t arenaBytes = 0;  // the largest entry point's
  std::vector<Kernel> kernels;
  std::vector<EntryPoint> entries;
  std::string cpuSource, cudaSource;
  // Precompiled CUDA binaries by architecture ("sm_90"); optional.
  std::vector<std::pair<std::string, std::string>> cubins;

  const EntryPoint *entry(const std::string &name) const;  // null when absent
  const Kernel *kernel(const std::string &name) const;     // null when absent
  DType paramDType() const;  // the flat params buffer's (every parameter's) dtype
  // The flat layout's identity: a hash of every parameter's name, shape,
  // dtype and offset. Checkpoints record it; a different one is incompatible.
  std::string layoutHash() const;
};

// Gives every parameter its offset (in order, aligned) and sets flatElements.
void assignFlatLayout(Artifact &a);

void write(const std::string &path, const Artifact &a);  // atomic
Artifact read(const std::string &path);                  // throws Error naming the file

}  // namespace tlc::artifact
