//===- BlockRows.h - CUDA row kernels with a block per row -------*- C++ -*-===//
//
// Shared by the row generators (RmsNorm, CrossEntropy): a CUDA block per
// row, whose threads move the row in 16-byte vectors (8 bf16 or 4 f32 a
// thread) when every row starts 16-byte aligned, else one element at a
// time, and reduce with Library/cuda_prelude.cuh's blockSum/blockMax. Rows
// are the run-time count: a block past it returns at once.
//
//===----------------------------------------------------------------------===//
#ifndef TL_COMPILER_CODEGEN_KERNELS_BLOCKROWS_H
#define TL_COMPILER_CODEGEN_KERNELS_BLOCKROWS_H

#include "compiler/Codegen/GeneratorSupport.h"

#include <fmt/format.h>

#include <algorithm>

namespace mlir::tl::codegen::detail {

struct RowWalk {
  int64_t d = 0;       // elements in a row
  int64_t width = 1;   // elements a thread moves at once (1: scalar)
  int64_t threads = 32;
  int64_t held = 1;    // vectors a thread holds in registers (hold())

  /// A vector of a row is aligned when rows are: `d` a multiple of the width.
  static RowWalk of(int64_t d, ArrayRef<Tensor> rowTensors, int64_t maxThreads = 256) {
    bool allBf16 = std::all_of(rowTensors.begin(), rowTensors.end(), [](const Tensor &t) { return t.bf16; });
    RowWalk r;
    r.d = d;
    r.width = d % (allBf16 ? 8 : 4) == 0 ? (allBf16 ? 8 : 4) : 1;
    const int64_t vectors = d / r.width;
    r.held = std::max<int64_t>(1, (vectors + maxThreads - 1) / maxThreads);
    r.threads = std::clamp<int64_t>(((vectors + r.held - 1) / r.held + 31) / 32 * 32, 32, maxThreads);
    return r;
  }

  /// The kernel's start: shared memory for the reductions, the row, its base.
  std::string prologue(const std::string &rows) const {
    return fmt::format("  extern __shared__ float red[];\n  const int64_t row = blockIdx.x;\n"
                       "  if (row >= {rows}) return;\n  const int64_t base = row * {d};\n",
                       fmt::arg("rows", rows), fmt::arg("d", d));
  }
  static constexpr int64_t kSharedBytes = 32 * 4;

  /// `body` once for each of the thread's `held` vectors, unrolled so that
  /// register arrays declared with decl() stay in registers; `k` indexes
  /// them, `j` is the vector's first column.
  std::string hold(const std::string &body) const {
    return fmt::format(R"(#pragma unroll
  for (int k = 0; k < {held}; ++k) {{
    const int64_t j = ((int64_t)threadIdx.x + k * {threads}) * {w};
    if (j < {d}) {{
{body}    }}
  }}
)", fmt::arg("held", held), fmt::arg("threads", threads), fmt::arg("w", width), fmt::arg("d", d),
                       fmt::arg("body", body));
  }
  /// `body` for every vector of the thread, streaming (rows too long to hold).
  std::string stream(const std::string &body) const {
    return fmt::format("  for (int64_t j = (int64_t)threadIdx.x * {w}; j < {d}; j += {step}) {{\n{body}  }}\n",
                       fmt::arg("w", width), fmt::arg("d", d), fmt::arg("step", threads * width),
                       fmt::arg("body", body));
  }
  /// Per element of a vector: `e` indexes it.
  std::string each(const std::string &body) const {
    return "#pragma unroll\n      for (int e = 0; e < " + S(width) + "; ++e) {\n" + body + "      }\n";
  }
  /// `float name[held][width];`
  std::string decl(const std::string &names) const {
    std::string out = "  float ";
    std::string sep;
    for (size_t at = 0, next; at <= names.size(); at = next + 1) {
      next = std::min(names.find(',', at), names.size());
      out += sep + names.substr(at, next - at) + "[" + S(held) + "][" + S(width) + "]";
      sep = ", ";
    }
    return out + ";\n";
  }
  static std::string load(const std::string &into, const Tensor &t, const std::string &at) {
    return "      tlLoad(" + into + ", " + t.name + " + " + at + ");\n";
  }
  static std::string store(const Tensor &t, const std::string &at, const std::string &from) {
    return "      tlStore(" + t.name + " + " + at + ", " + from + ");\n";
  }
};

} // namespace mlir::tl::codegen::detail

#endif
