//===- Kernel.cpp - target wrappers and preludes -------------------------===//
#include "compiler/Codegen/Kernel.h"

#include <cmath>
#include <cstdio>
#include <sstream>

namespace mlir::tl::codegen {

namespace {

// Helpers both targets define with the same names, so kernel bodies are
// target-neutral: bf16 <-> float with round-to-nearest-even, TL_FAIL,
// TL_INF, TL_INLINE, TL_CONST.
const char *kCpuPrelude = R"(// tlc generated kernels: CPU C++
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#define TL_INLINE static inline
#define TL_CONST static const
#define TL_INF INFINITY
#define TL_FAIL(code) do { if (!*err) *err = (code); } while (0)
TL_INLINE float bf2f(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
TL_INLINE uint16_t f2bf(float f) {
  uint32_t u; memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
TL_INLINE float bfround(float f) { return bf2f(f2bf(f)); }
)";

const char *kCudaPrelude = R"(// tlc generated kernels: CUDA C++ (NVRTC)
typedef long long int64_t;
typedef int int32_t;
typedef unsigned int uint32_t;
typedef unsigned short uint16_t;
typedef unsigned char uint8_t;
#define TL_INLINE __device__ __forceinline__
#define TL_CONST __device__ const
#define TL_INF __int_as_float(0x7f800000)
#define TL_FAIL(code) atomicCAS(err, 0, (code))
TL_INLINE float bf2f(uint16_t h) { return __uint_as_float(((uint32_t)h) << 16); }
TL_INLINE uint16_t f2bf(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
TL_INLINE float bfround(float f) { return bf2f(f2bf(f)); }
TL_INLINE void atomicAddBf16(uint16_t *addr, float v) {
  // bf16 has no native atomic add before sm_90 here: update the enclosing word.
  uint32_t *word = (uint32_t *)((unsigned long long)addr & ~3ull);
  const bool high = ((unsigned long long)addr & 2ull) != 0;
  uint32_t old = *word, assumed;
  do {
    assumed = old;
    uint16_t cur = high ? (uint16_t)(assumed >> 16) : (uint16_t)(assumed & 0xffffu);
    uint32_t sum = f2bf(bf2f(cur) + v);
    uint32_t next = high ? ((assumed & 0xffffu) | (sum << 16)) : ((assumed & 0xffff0000u) | sum);
    old = atomicCAS(word, assumed, next);
  } while (old != assumed);
}
TL_INLINE float warpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
TL_INLINE float warpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
)";

/// Parameters never alias (the planner keeps a step's buffers apart), so
/// both targets mark them __restrict__.
std::string paramList(const KernelSpec &k) {
  std::ostringstream os;
  for (size_t i = 0; i < k.params.size(); ++i) {
    const KernelParam &p = k.params[i];
    os << (i ? ", " : "") << (p.isConst ? "const " : "") << p.storage << " *__restrict__ " << p.name;
  }
  if (k.checksErrors) os << (k.params.empty() ? "" : ", ") << "int *err";
  return os.str();
}

} // namespace

void KernelSpec::finalizeLaunch() {
  if (!isElementwise()) return;
  block = 256;
  grid = std::max<int64_t>(1, (workItems + block - 1) / block);
}

std::string emitCpu(const std::vector<KernelSpec> &kernels) {
  std::ostringstream os;
  os << kCpuPrelude << cpuLibrary();
  for (const KernelSpec &k : kernels) {
    os << "\n// ---- " << k.name << "\n" << k.fileScope;
    os << "static void " << k.name << "_impl(" << paramList(k) << ") {\n";
    if (k.isElementwise() && !k.cpuLoop.empty()) {
      os << k.cpuLoop;
    } else if (k.isElementwise()) {
      os << cpuParallelFor(k.workItems) << "  for (int64_t i = 0; i < " << k.workItems << "; ++i) {\n"
         << k.body << "  }\n";
    } else {
      os << k.cpuBody;
    }
    os << "}\n";
    os << "extern \"C\" void " << k.name << "(void *const *args, int *err) {\n  (void)err;\n  "
       << k.name << "_impl(";
    for (size_t i = 0; i < k.params.size(); ++i)
      os << (i ? ", " : "") << "(" << (k.params[i].isConst ? "const " : "") << k.params[i].storage
         << " *)args[" << i << "]";
    if (k.checksErrors) os << (k.params.empty() ? "" : ", ") << "err";
    os << ");\n}\n";
  }
  return os.str();
}

std::string emitCuda(const std::vector<KernelSpec> &kernels) {
  std::ostringstream os;
  os << kCudaPrelude;
  for (const KernelSpec &k : kernels) {
    os << "\n// ---- " << k.name << "\n" << k.fileScope;
    os << "extern \"C\" __global__ void " << k.name << "(" << paramList(k) << ") {\n";
    if (k.isElementwise()) {
      os << "  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;\n"
         << "  if (i >= " << k.workItems << ") return;\n" << k.body;
    } else {
      os << k.cudaBody;
    }
    os << "}\n";
  }
  return os.str();
}

std::string cpuParallelFor(int64_t work) {
  // Below this, waking the workers costs more than the loop (tens of µs).
  constexpr int64_t kMinParallelWork = 32768;
  return work < kMinParallelWork ? "" : "#pragma omp parallel for schedule(static)\n";
}

std::string floatLiteral(double v) {
  if (std::isinf(v)) return v > 0 ? "TL_INF" : "(-TL_INF)";
  if (std::isnan(v)) return "(TL_INF - TL_INF)";
  char text[64];
  std::snprintf(text, sizeof text, "%.9g", v);
  std::string s = text;
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return "(" + s + "f)";
}

} // namespace mlir::tl::codegen
