//===- OptimizerKernels.cpp - AdamW, gradient norm, accumulation ---------===//
#include "compiler/Codegen/OptimizerKernels.h"

#include "runtime/artifact.h"

#include <algorithm>

namespace mlir::tl::codegen {
namespace {

constexpr int64_t kBlock = 256;

std::string S(int64_t v) { return std::to_string(v); }

// One element of AdamW, as torch.optim.AdamW's single-tensor step computes
// it (lerp for the first moment, addcmul for the second, addcdiv), so the
// results match PyTorch's to rounding.
std::string adamwElement(bool bf16) {
  return R"(    const float g = scale * grad[i];
    float p = master[i];
    if (decay[i]) p *= decayFactor;
    const float d = g - m[i];
    const float mi = oneMinusB1 < 0.5f ? m[i] + oneMinusB1 * d : g - d * (1.0f - oneMinusB1);
    float vi = b2 * v[i];
    vi = vi + oneMinusB2 * g * g;
    m[i] = mi;
    v[i] = vi;
    p = p + -stepSize * (mi / (sqrtf(vi) / bc2Sqrt + eps));
    master[i] = p;
)" + std::string(bf16 ? "    params[i] = f2bf(p);\n" : "    params[i] = p;\n");
}

const char *kAdamwScalars = R"(  const int64_t n = *count;
  const float decayFactor = hyper[0], b2 = hyper[2], eps = hyper[3];
  const float oneMinusB1 = hyper[4], oneMinusB2 = hyper[5], stepSize = hyper[6], bc2Sqrt = hyper[7];
  const float scale = hyper[8];
)";

} // namespace

KernelSpec adamwKernel(const std::string &paramStorage, int64_t maxElements) {
  KernelSpec k;
  k.name = ::tlc::artifact::kAdamWKernel;
  k.params = {{"master", "float", false}, {"m", "float", false},    {"v", "float", false},
              {"params", paramStorage, false}, {"grad", "float", true}, {"decay", "uint8_t", true},
              {"hyper", "float", true},        {"count", "int64_t", true}};
  bool bf16 = paramStorage == "uint16_t";
  k.cpuBody = std::string(kAdamwScalars) + "#pragma omp parallel for schedule(static)\n" +
              "  for (int64_t i = 0; i < n; ++i) {\n" + adamwElement(bf16) + "  }\n";
  k.block = kBlock;
  k.grid = std::clamp<int64_t>((maxElements + kBlock - 1) / kBlock, 1, 4096);
  k.cudaBody = std::string(kAdamwScalars) + "  for (int64_t i = (int64_t)blockIdx.x * " + S(kBlock) +
               " + threadIdx.x; i < n; i += " + S(k.grid * kBlock) + ") {\n" + adamwElement(bf16) + "  }\n";
  return k;
}

KernelSpec sumSqPartialKernel() {
  const int64_t parts = ::tlc::artifact::kSumSqPartials;
  KernelSpec k;
  k.name = ::tlc::artifact::kSumSqPartialKernel;
  k.params = {{"grad", "float", true}, {"count", "int64_t", true}, {"partial", "double", false}};
  std::string chunk = "  const int64_t n = *count, chunk = (n + " + S(parts - 1) + ") / " + S(parts) + ";\n";
  k.cpuBody = chunk + "#pragma omp parallel for schedule(static)\n"
                      "  for (int64_t b = 0; b < " + S(parts) + "; ++b) {\n"
                      "    const int64_t lo = b * chunk < n ? b * chunk : n, hi = lo + chunk < n ? lo + chunk : n;\n"
                      "    double s = 0.0;\n"
                      "    for (int64_t i = lo; i < hi; ++i) s += (double)grad[i] * (double)grad[i];\n"
                      "    partial[b] = s;\n"
                      "  }\n";
  // One block a chunk; a fixed tree over the block's threads in shared memory.
  k.grid = parts;
  k.block = kBlock;
  k.sharedBytes = kBlock * 8;
  k.cudaBody = chunk + "  const int64_t b = blockIdx.x, t = threadIdx.x;\n"
                       "  const int64_t lo = b * chunk < n ? b * chunk : n, hi = lo + chunk < n ? lo + chunk : n;\n"
                       "  double s = 0.0;\n"
                       "  for (int64_t i = lo + t; i < hi; i += " + S(kBlock) + ") s += (double)grad[i] * (double)grad[i];\n"
                       "  extern __shared__ float tiles[];\n"
                       "  double *red = (double *)tiles;\n"
                       "  red[t] = s;\n"
                       "  __syncthreads();\n"
                       "  for (int w = " + S(kBlock / 2) + "; w > 0; w >>= 1) {\n"
                       "    if (t < w) red[t] += red[t + w];\n"
                       "    __syncthreads();\n"
                       "  }\n"
                       "  if (t == 0) partial[b] = red[0];\n";
  return k;
}

KernelSpec sumSqFinalKernel() {
  KernelSpec k;
  k.name = ::tlc::artifact::kSumSqFinalKernel;
  k.params = {{"partial", "double", true}, {"total", "double", false}};
  std::string sum = "  double s = 0.0;\n  for (int b = 0; b < " + S(::tlc::artifact::kSumSqPartials) +
                    "; ++b) s += partial[b];\n  total[0] = s;\n";
  k.cpuBody = sum;
  k.cudaBody = "  if (blockIdx.x != 0 || threadIdx.x != 0) return;\n" + sum;
  k.grid = 1;
  k.block = 32;
  return k;
}

KernelSpec accumulateKernel(const std::string &name, int64_t elements, const std::string &sourceStorage) {
  KernelSpec k;
  k.name = name;
  k.params = {{"grad", "float", false}, {"x", sourceStorage, true}};
  k.workItems = elements;
  k.body = sourceStorage == "uint16_t" ? "    grad[i] += bf2f(x[i]);\n" : "    grad[i] += x[i];\n";
  k.finalizeLaunch();
  return k;
}

} // namespace mlir::tl::codegen
