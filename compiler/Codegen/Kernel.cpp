//===- Kernel.cpp - target wrappers and preludes -------------------------===//
#include "compiler/Codegen/Kernel.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <cstdio>
#include <sstream>

namespace mlir::tl::codegen {

namespace {

using fmt::arg;

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

std::string kernelKey(const KernelSpec &k) {
  // Bodies may name file-scope tables after their kernel: blank the name out.
  auto nameless = [&](std::string text) {
    for (size_t at = text.find(k.name); !k.name.empty() && at != std::string::npos; at = text.find(k.name, at + 1))
      text.replace(at, k.name.size(), "\x01");
    return text;
  };
  std::ostringstream os;
  for (const KernelParam &p : k.params) os << p.name << ' ' << p.storage << ' ' << p.isConst << ';';
  os << '\n' << k.checksErrors << ' ' << k.workItems << ' ' << k.grid << ' ' << k.block << ' ' << k.sharedBytes;
  for (const std::string *text : {&k.body, &k.cpuBody, &k.cudaBody, &k.fileScope, &k.cpuLoop}) {
    std::string t = nameless(*text);
    os << '\n' << t.size() << '\n' << t;
  }
  return os.str();
}

std::string emitCpu(const std::vector<KernelSpec> &kernels) {
  std::string out = std::string(kCpuPrelude) + cpuLibrary();
  for (const KernelSpec &k : kernels) {
    std::string body = k.cpuBody;
    if (k.isElementwise() && !k.cpuLoop.empty())
      body = k.cpuLoop;
    else if (k.isElementwise())
      body = fmt::format(R"({parallel}  for (int64_t i = 0; i < {n}; ++i) {{
{body}  }}
)", arg("parallel", cpuParallelFor(k.workItems)), arg("n", k.workItems), arg("body", k.body));
    // The runtime calls every kernel as name(args, err): unpack the arguments.
    std::vector<std::string> args;
    for (size_t i = 0; i < k.params.size(); ++i)
      args.push_back(fmt::format("({const}{storage} *)args[{i}]", arg("const", k.params[i].isConst ? "const " : ""),
                                 arg("storage", k.params[i].storage), arg("i", i)));
    if (k.checksErrors) args.push_back("err");
    fmt::format_to(std::back_inserter(out), R"(
// ---- {name}
{fileScope}static void {name}_impl({params}) {{
{body}}}
extern "C" void {name}(void *const *args, int *err) {{
  (void)err;
  {name}_impl({args});
}}
)", arg("name", k.name), arg("fileScope", k.fileScope), arg("params", paramList(k)), arg("body", body),
                   arg("args", fmt::join(args, ", ")));
  }
  return out;
}

std::string emitCuda(const std::vector<KernelSpec> &kernels) {
  std::string out = kCudaPrelude;
  for (const KernelSpec &k : kernels) {
    std::string body = k.isElementwise() ? fmt::format(R"(  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= {n}) return;
{body})", arg("n", k.workItems), arg("body", k.body))
                                         : k.cudaBody;
    fmt::format_to(std::back_inserter(out), R"(
// ---- {name}
{fileScope}extern "C" __global__ void {name}({params}) {{
{body}}}
)", arg("name", k.name), arg("fileScope", k.fileScope), arg("params", paramList(k)), arg("body", body));
  }
  return out;
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
