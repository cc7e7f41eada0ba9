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
// results match PyTorch's to rounding: from the element's gradient, master
// weight, decay flag and moments (C expressions) to p, mi and vi.
std::string adamwMath(const std::string &grad, const std::string &master, const std::string &decay,
                      const std::string &m, const std::string &v, const std::string &indent) {
  std::string out = fmt::format(R"(const float g = scale * {grad};
float p = {master};
if ({decay}) p *= decayFactor;
const float mOld = {m};
const float d = g - mOld;
const float mi = oneMinusB1 < 0.5f ? mOld + oneMinusB1 * d : g - d * (1.0f - oneMinusB1);
float vi = b2 * {v};
vi = vi + oneMinusB2 * g * g;
p = p + -stepSize * (mi / (sqrtf(vi) / bc2Sqrt + eps));
)", arg("grad", grad), arg("master", master), arg("decay", decay), arg("m", m), arg("v", v));
  std::string indented;
  for (size_t at = 0, next; at < out.size(); at = next + 1) {
    next = out.find('\n', at);
    indented += indent + out.substr(at, next - at + 1);
  }
  return indented;
}

std::string adamwElement(bool bf16) {
  return "    {\n" + adamwMath("grad[i]", "master[i]", "decay[i]", "m[i]", "v[i]", "    ") +
         fmt::format("    m[i] = mi;\n    v[i] = vi;\n    master[i] = p;\n    params[i] = {};\n    }}\n",
                     bf16 ? "f2bf(p)" : "p");
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
  // A grid-stride loop: the grid is capped, the count is the call's. Four
  // elements a thread in 16-byte accesses (8 for bf16 params, 4 for the
  // decay flags) when every pointer of the range is so aligned (a range may
  // start anywhere: ZeRO shards), the last n % 4 one at a time; else all
  // one at a time.
  k.cudaBody = fmt::format(R"({scalars}  const int64_t first = (int64_t)blockIdx.x * {block} + threadIdx.x;
  const unsigned long long at = (unsigned long long)master | (unsigned long long)m | (unsigned long long)v |
                                (unsigned long long)grad;
  const bool aligned = at % 16 == 0 && (unsigned long long)params % (4 * sizeof(*params)) == 0 &&
                       (unsigned long long)decay % 4 == 0;
  const int64_t groups = aligned ? n / 4 : 0;
  for (int64_t q = first; q < groups; q += {stride}) {{
    float gv[4], pv[4], mv[4], vv[4];
    tlLoad(gv, grad + 4 * q);
    tlLoad(pv, master + 4 * q);
    tlLoad(mv, m + 4 * q);
    tlLoad(vv, v + 4 * q);
    const uint32_t flags = *(const uint32_t *)(decay + 4 * q);
#pragma unroll
    for (int e = 0; e < 4; ++e) {{
{vectorMath}      pv[e] = p;
      mv[e] = mi;
      vv[e] = vi;
    }}
    tlStore(m + 4 * q, mv);
    tlStore(v + 4 * q, vv);
    tlStore(master + 4 * q, pv);
    tlStore(params + 4 * q, pv);
  }}
  for (int64_t i = 4 * groups + first; i < n; i += {stride}) {{
{element}  }}
)", arg("scalars", kAdamwScalars), arg("block", kBlock), arg("stride", k.grid * kBlock),
                           arg("vectorMath", adamwMath("gv[e]", "pv[e]", "(flags >> (8 * e)) & 0xffu", "mv[e]", "vv[e]", "      ")),
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
  // One block a chunk, in 16-byte loads from the chunk's first aligned
  // element (eight in flight a thread), the few before and after it one at
  // a time; then a fixed tree over the block's threads in shared memory.
  k.grid = parts;
  k.block = kBlock;
  k.sharedBytes = kBlock * 8;
  k.cudaBody = chunk + fmt::format(R"(  const int64_t b = blockIdx.x, t = threadIdx.x;
  const int64_t lo = b * chunk < n ? b * chunk : n, hi = lo + chunk < n ? lo + chunk : n;
  const int64_t skew = (int64_t)(((unsigned long long)(grad + lo) / 4) % 4);
  const int64_t a0 = lo + (4 - skew) % 4 < hi ? lo + (4 - skew) % 4 : hi;
  const int64_t groups = (hi - a0) / 4;
  double s = 0.0;
#pragma unroll 8
  for (int64_t q = t; q < groups; q += {block}) {{
    float x[4];
    tlLoad(x, grad + a0 + 4 * q);
#pragma unroll
    for (int e = 0; e < 4; ++e) s += (double)x[e] * (double)x[e];
  }}
  for (int64_t i = lo + t; i < a0; i += {block}) s += (double)grad[i] * (double)grad[i];
  for (int64_t i = a0 + 4 * groups + t; i < hi; i += {block}) s += (double)grad[i] * (double)grad[i];
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
