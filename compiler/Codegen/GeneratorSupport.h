//===- GeneratorSupport.h - shared helpers of the kernel generators -*- C++ -*-===//
//
// Used by the generator files only: strings for shapes and literals, loads
// and stores that convert bf16, and a Builder that binds kernel parameters
// to operands.
//
//===----------------------------------------------------------------------===//
#ifndef TL_COMPILER_CODEGEN_GENERATORSUPPORT_H
#define TL_COMPILER_CODEGEN_GENERATORSUPPORT_H

#include "compiler/Codegen/ExprGen.h"
#include "compiler/Codegen/KernelInterfaces.h"
#include "dialects/tl/IR/TlOps.h"

namespace mlir::tl::codegen::detail {

inline std::string S(int64_t v) { return std::to_string(v); }
inline std::string F(double v) { return floatLiteral(v); }

inline ArrayRef<int64_t> shapeOf(Value v) { return cast<RankedTensorType>(v.getType()).getShape(); }
inline int64_t numel(Value v) { return cast<RankedTensorType>(v.getType()).getNumElements(); }
inline bool isBf16(Value v) { return cast<RankedTensorType>(v.getType()).getElementType().isBF16(); }

/// Loads and stores of one tensor: bf16 converts, f32 reads directly.
struct Tensor {
  std::string name;
  bool bf16;
  std::string ld(const std::string &k) const {
    return bf16 ? "bf2f(" + name + "[" + k + "])" : name + "[" + k + "]";
  }
  std::string st(const std::string &k, const std::string &v) const {
    return name + "[" + k + "] = " + (bf16 ? "f2bf(" + v + ")" : v) + ";";
  }
};

struct Builder {
  KernelSpec k;
  std::vector<Operand> operands;

  explicit Builder(const std::string &name) { k.name = name; }
  Tensor param(const std::string &name, Value v, bool out) {
    k.params.push_back({name, *storageType(cast<RankedTensorType>(v.getType()).getElementType()),
                        !out});
    operands.push_back({v});
    return {name, isBf16(v)};
  }
  Tensor scratch(const std::string &name, int index, bool out) {
    k.params.push_back({name, "float", !out});
    operands.push_back({Value(), index});
    return {name, false};
  }
  void ids(const std::string &name, Value v) {
    k.params.push_back({name, "int32_t", true});
    operands.push_back({v});
  }
  /// One work item per `n`, the same body on both targets.
  LoweredStep elementwise(const Count &n, const std::string &body) {
    k.workItems = n.compiled;
    k.count = n.expr;
    k.batchedGrid = n.batched;
    k.body = body;
    k.finalizeLaunch();
    return {false, k, operands};
  }
  /// A row kernel: CPU loops rows; CUDA runs a warp per row, eight a block.
  /// `rowBody(cuda)` sees `row`, and on CUDA `lane`.
  template <typename F> LoweredStep rows(const Count &count, F rowBody) {
    k.cpuBody = "#pragma omp parallel for schedule(static)\n  for (int64_t row = 0; row < " +
                count.expr + "; ++row) {\n" + rowBody(false) + "  }\n";
    k.cudaBody = "  const int64_t row = (int64_t)blockIdx.x * 8 + threadIdx.x / 32;\n"
                 "  const int lane = threadIdx.x % 32;\n  if (row >= " + count.expr +
                 ") return;\n" + rowBody(true);
    k.block = 256;
    k.grid = (count.compiled + 7) / 8;
    k.batchedGrid = count.batched;
    return {false, k, operands};
  }
  /// Target-specific bodies; `batchedGrid` when the grid covers rows of
  /// the micro-batch (the body bounds them by run-time counts).
  LoweredStep custom(const std::string &cpu, const std::string &cuda, int64_t grid, int64_t block,
                     int64_t shared = 0, bool batchedGrid = false) {
    k.batchedGrid = batchedGrid;
    k.cpuBody = cpu;
    k.cudaBody = cuda;
    k.grid = grid;
    k.block = block;
    k.sharedBytes = shared;
    return {false, k, operands};
  }
};

/// `for (j over the row)`: the lane-strided loop on CUDA, a plain loop on CPU,
/// vectorised there as a reduction into `reduction` ("+ : v", "max : m").
inline std::string rowLoop(bool cuda, int64_t d, const std::string &body, const std::string &reduction = "") {
  std::string simd = cuda || reduction.empty() ? "" : "#pragma omp simd reduction(" + reduction + ")\n";
  return simd + std::string(cuda ? "    for (int64_t j = lane; j < " : "    for (int64_t j = 0; j < ") + S(d) +
         (cuda ? "; j += 32) {\n" : "; ++j) {\n") + body + "    }\n";
}
inline std::string sum(bool cuda, const std::string &var) {
  return cuda ? "    " + var + " = warpSum(" + var + ");\n" : "";
}
inline std::string once(bool cuda, const std::string &stmt) {
  return cuda ? "    if (lane == 0) " + stmt + "\n" : "    " + stmt + "\n";
}

} // namespace mlir::tl::codegen::detail

#endif
