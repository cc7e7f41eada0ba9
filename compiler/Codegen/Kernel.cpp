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

// The preludes and the CPU template library are real files in Library/,
// embedded by the build as raw string literals.
const char *kCpuPrelude =
#include "compiler/Codegen/Library/cpu_prelude.h.inc"
    ;
const char *kCpuLibrary =
#include "compiler/Codegen/Library/cpu_library.h.inc"
    ;
const char *kCudaPrelude =
#include "compiler/Codegen/Library/cuda_prelude.cuh.inc"
    ;
const char *kCudaMma =
#include "compiler/Codegen/Library/cuda_mma.cuh.inc"
    ;
const char *kCudaAttention =
#include "compiler/Codegen/Library/cuda_attention.cuh.inc"
    ;

std::string countOf(const KernelSpec &k) { return k.count.empty() ? std::to_string(k.workItems) : k.count; }

/// Parameters never alias (the planner keeps a step's buffers apart), so
/// both targets mark them __restrict__.
std::string paramList(const KernelSpec &k) {
  std::ostringstream os;
  for (size_t i = 0; i < k.params.size(); ++i) {
    const KernelParam &p = k.params[i];
    os << (i ? ", " : "") << (p.isConst ? "const " : "") << p.storage << " *__restrict__ " << p.name;
  }
  if (k.checksErrors) os << (k.params.empty() ? "" : ", ") << "int *err";
  for (int i = 0; i < k.numCounts; ++i)
    os << (k.params.empty() && !k.checksErrors && i == 0 ? "" : ", ") << "const int64_t tl_n" << i;
  return os.str();
}

} // namespace

void KernelSpec::finalizeLaunch() {
  if (!isElementwise()) return;
  block = 256;
  int64_t perBlock = block * kElementsPerThread;
  grid = std::max<int64_t>(1, (workItems + perBlock - 1) / perBlock);
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
  // The grid and the counts are the step's: not part of the kernel.
  os << '\n' << k.checksErrors << ' ' << k.block << ' ' << k.sharedBytes << ' ' << k.numCounts << ' '
     << (k.count.empty() ? std::to_string(k.workItems) : k.count);
  for (const std::string *text : {&k.body, &k.cpuBody, &k.cudaBody, &k.fileScope, &k.cpuLoop}) {
    std::string t = nameless(*text);
    os << '\n' << t.size() << '\n' << t;
  }
  return os.str();
}

std::string emitCpu(const std::vector<KernelSpec> &kernels) {
  std::string out = std::string(kCpuPrelude) + kCpuLibrary;
  for (const KernelSpec &k : kernels) {
    std::string body = k.cpuBody;
    if (k.isElementwise() && !k.cpuLoop.empty())
      body = k.cpuLoop;
    else if (k.isElementwise())
      body = fmt::format(R"({parallel}  for (int64_t i = 0; i < {n}; ++i) {{
{body}  }}
)", arg("parallel", cpuParallelFor(k.workItems)), arg("n", countOf(k)), arg("body", k.body));
    // The runtime calls every kernel as name(args, err, counts): unpack them.
    std::vector<std::string> args;
    for (size_t i = 0; i < k.params.size(); ++i)
      args.push_back(fmt::format("({const}{storage} *)args[{i}]", arg("const", k.params[i].isConst ? "const " : ""),
                                 arg("storage", k.params[i].storage), arg("i", i)));
    if (k.checksErrors) args.push_back("err");
    for (int i = 0; i < k.numCounts; ++i) args.push_back(fmt::format("tl_counts[{}]", i));
    fmt::format_to(std::back_inserter(out), R"(
// ---- {name}
{fileScope}static void {name}_impl({params}) {{
{body}}}
extern "C" void {name}(void *const *args, int *err, const int64_t *tl_counts) {{
  (void)err;
  (void)tl_counts;
  {name}_impl({args});
}}
)", arg("name", k.name), arg("fileScope", k.fileScope), arg("params", paramList(k)), arg("body", body),
                   arg("args", fmt::join(args, ", ")));
  }
  return out;
}

std::string emitCuda(const std::vector<KernelSpec> &kernels) {
  std::string out = std::string(kCudaPrelude) + kCudaMma + kCudaAttention;
  for (const KernelSpec &k : kernels) {
    // An elementwise thread takes kElementsPerThread elements a block apart
    // (coalesced), unrolled: that many loads in flight, which a memory-bound
    // kernel needs to approach the bandwidth.
    std::string body = k.isElementwise() ? fmt::format(R"(  const int64_t first = (int64_t)blockIdx.x * blockDim.x * {per} + threadIdx.x;
#pragma unroll {per}
  for (int tl_e = 0; tl_e < {per}; ++tl_e) {{
  const int64_t i = first + (int64_t)tl_e * blockDim.x;
  if (i >= {n}) return;
{body}  }}
)", arg("n", countOf(k)), arg("body", k.body), arg("per", kElementsPerThread))
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
