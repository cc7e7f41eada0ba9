//===- OptimizerKernels.cpp - AdamW, gradient norm, accumulation ---------===//
#include "compiler/Codegen/OptimizerKernels.h"

#include "formats/artifact.h"

#include <fmt/format.h>

#include <algorithm>

namespace mlir::tl::codegen {
namespace {

using fmt::arg;

constexpr int64_t kBlock = 256;

// One element of AdamW, as torch.optim.AdamW's single-tensor step computes
// it (lerp for the first moment, addcmul for the second, addcdiv), so the
// results match PyTorch's to rounding.
std::string adamwElement(bool bf16) {
  return fmt::format(R"(    const float g = scale * grad[i];
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
    params[i] = {store};
)", arg("store", bf16 ? "f2bf(p)" : "p"));
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
  std::string element = adamwElement(paramStorage == "uint16_t");
  k.cpuBody = fmt::format(R"({scalars}#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {{
{element}  }}
)", arg("scalars", kAdamwScalars), arg("element", element));
  k.block = kBlock;
  k.grid = std::clamp<int64_t>((maxElements + kBlock - 1) / kBlock, 1, 4096);
  // A grid-stride loop: the grid is capped, the count is the call's.
  k.cudaBody = fmt::format(R"({scalars}  for (int64_t i = (int64_t)blockIdx.x * {block} + threadIdx.x; i < n; i += {stride}) {{
{element}  }}
)", arg("scalars", kAdamwScalars), arg("block", kBlock), arg("stride", k.grid * kBlock),
                           arg("element", element));
  return k;
}

KernelSpec sumSqPartialKernel() {
  const int64_t parts = ::tlc::artifact::kSumSqPartials;
  KernelSpec k;
  k.name = ::tlc::artifact::kSumSqPartialKernel;
  k.params = {{"grad", "float", true}, {"count", "int64_t", true}, {"partial", "double", false}};
  std::string chunk = fmt::format("  const int64_t n = *count, chunk = (n + {partsMinus1}) / {parts};\n",
                                  arg("partsMinus1", parts - 1), arg("parts", parts));
  k.cpuBody = chunk + fmt::format(R"(#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < {parts}; ++b) {{
    const int64_t lo = b * chunk < n ? b * chunk : n, hi = lo + chunk < n ? lo + chunk : n;
    double s = 0.0;
    for (int64_t i = lo; i < hi; ++i) s += (double)grad[i] * (double)grad[i];
    partial[b] = s;
  }}
)", arg("parts", parts));
  // One block a chunk; a fixed tree over the block's threads in shared memory.
  k.grid = parts;
  k.block = kBlock;
  k.sharedBytes = kBlock * 8;
  k.cudaBody = chunk + fmt::format(R"(  const int64_t b = blockIdx.x, t = threadIdx.x;
  const int64_t lo = b * chunk < n ? b * chunk : n, hi = lo + chunk < n ? lo + chunk : n;
  double s = 0.0;
  for (int64_t i = lo + t; i < hi; i += {block}) s += (double)grad[i] * (double)grad[i];
  extern __shared__ float tiles[];
  double *red = (double *)tiles;
  red[t] = s;
  __syncthreads();
  for (int w = {halfBlock}; w > 0; w >>= 1) {{
    if (t < w) red[t] += red[t + w];
    __syncthreads();
  }}
  if (t == 0) partial[b] = red[0];
)", arg("block", kBlock), arg("halfBlock", kBlock / 2));
  return k;
}

KernelSpec sumSqFinalKernel() {
  KernelSpec k;
  k.name = ::tlc::artifact::kSumSqFinalKernel;
  k.params = {{"partial", "double", true}, {"total", "double", false}};
  std::string sum = fmt::format(R"(  double s = 0.0;
  for (int b = 0; b < {parts}; ++b) s += partial[b];
  total[0] = s;
)", arg("parts", ::tlc::artifact::kSumSqPartials));
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
  k.body = fmt::format("    grad[i] += {x};\n", arg("x", sourceStorage == "uint16_t" ? "bf2f(x[i])" : "x[i]"));
  k.finalizeLaunch();
  return k;
}

} // namespace mlir::tl::codegen
