#include "CudaEmulator.h"

#include <dlfcn.h>
#include <unistd.h>

#include <barrier>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <thread>
#include <vector>

#include "runtime/exec/kernel_cache.h"

namespace tlc::testing {
namespace {

// Prepended to the CUDA source (whose own integer typedefs are removed).
const char *kEmulation = R"(
#include <barrier>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <math.h>
#include <mutex>
#include <vector>
namespace tlemu {
struct Ctx {
  long long bx = 0, tx = 0, bdim = 1;
  std::barrier<> *block = nullptr, *warp = nullptr;
  uint32_t *slots = nullptr;  // the warp's exchange area: kSlotWords per lane
  float *shared = nullptr;
  long long sharedBytes = 0;
};
constexpr int kSlotWords = 16;
inline thread_local Ctx ctx;
inline std::mutex atomics;
[[noreturn]] inline void fail(const char *what) {
  std::fprintf(stderr, "emulated cuda: %s (block %lld, thread %lld)\n", what, ctx.bx, ctx.tx);
  std::abort();
}
inline int lane() { return static_cast<int>(ctx.tx % 32); }
inline uint32_t *slot(int l) { return ctx.slots + kSlotWords * l; }
inline void warpSync() { ctx.warp->arrive_and_wait(); }
inline bool inShared(const void *p, long long bytes) {
  auto *c = static_cast<const char *>(p), *s = reinterpret_cast<const char *>(ctx.shared);
  return c >= s && c + bytes <= s + ctx.sharedBytes;
}
inline void checkAligned(const void *p, const char *what) {
  if (reinterpret_cast<uintptr_t>(p) % 16) fail(what);
}
}  // namespace tlemu
// Library/cuda_prelude.cuh's 16-byte accesses must be aligned as on a GPU.
#define TL_CHECK_ALIGNED(p, bytes) \
  if (reinterpret_cast<uintptr_t>(p) % (bytes)) tlemu::fail("a vector access not aligned to its width")
struct tl_dim3 { long long x; };
#define blockIdx (tl_dim3{tlemu::ctx.bx})
#define threadIdx (tl_dim3{tlemu::ctx.tx})
#define blockDim (tl_dim3{tlemu::ctx.bdim})
#define __global__
#define __device__
#define __forceinline__ inline
inline void __syncthreads() { tlemu::ctx.block->arrive_and_wait(); }
inline float __shfl_xor_sync(unsigned, float v, int o) {
  const int lane = tlemu::lane();
  std::memcpy(tlemu::slot(lane), &v, 4);
  tlemu::warpSync();
  float r;
  std::memcpy(&r, tlemu::slot(lane ^ o), 4);
  tlemu::warpSync();
  return r;
}
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float __uint_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned i; std::memcpy(&i, &f, 4); return i; }
template <typename T> T atomicCAS(T *p, T expect, T value) {
  std::lock_guard<std::mutex> lock(tlemu::atomics);
  T old = *p;
  if (old == expect) *p = value;
  return old;
}
inline float atomicAdd(float *p, float v) {
  std::lock_guard<std::mutex> lock(tlemu::atomics);
  float old = *p;
  *p = old + v;
  return old;
}
extern "C" void tlemu_set(long long bx, long long tx, long long bdim, void *block, void *warp,
                          uint32_t *slots, float *shared, long long sharedBytes) {
  tlemu::ctx = {bx, tx, bdim, static_cast<std::barrier<> *>(block), static_cast<std::barrier<> *>(warp),
                slots, shared, sharedBytes};
}
)";

// The tensor-core primitives of compiler/Codegen/Library/cuda_mma.cuh, from
// the PTX ISA's fragment layouts (g = lane / 4, t = lane % 4; a register
// holds two b16, the lower column in its low half): each lane publishes its
// operands in the warp's exchange slots, and computes its own results from
// everyone's. cp.async copies are deferred to the wait that covers their
// group, so a kernel that reads a tile before waiting reads stale data, as it
// may on a GPU.
const char *kTensorCores = R"emu(
namespace tlemu {
inline float bf16At(uint32_t reg, int high) { return __uint_as_float(high ? reg & 0xffff0000u : reg << 16); }
struct AsyncCopy { void *dst; const void *src; bool valid; };
inline thread_local std::vector<AsyncCopy> uncommitted;
inline thread_local std::vector<std::vector<AsyncCopy>> groups;
template <int N> void loadMatrices(uint32_t (&r)[N], const void *row, bool trans) {
  const int l = lane(), g = l / 4, t = l % 4;
  std::memcpy(slot(l), &row, sizeof row);
  warpSync();
  auto rowOf = [](int from) {
    const uint16_t *p;
    std::memcpy(&p, slot(from), sizeof p);
    if (!inShared(p, 16)) fail("ldmatrix: a row outside shared memory");
    checkAligned(p, "ldmatrix: a row not 16-byte aligned");
    return p;
  };
  for (int i = 0; i < N; ++i) {
    // Lanes 8i..8i+7 give matrix i's rows; lane l gets (g, 2t) and (g, 2t + 1),
    // or with .trans (2t, g) and (2t + 1, g).
    const uint16_t lo = trans ? rowOf(8 * i + 2 * t)[g] : rowOf(8 * i + g)[2 * t];
    const uint16_t hi = trans ? rowOf(8 * i + 2 * t + 1)[g] : rowOf(8 * i + g)[2 * t + 1];
    r[i] = lo | (uint32_t)hi << 16;
  }
  warpSync();
}
}  // namespace tlemu
inline void mmaBf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  using namespace tlemu;
  const int l = lane(), g = l / 4, t = l % 4;
  std::memcpy(slot(l), a, 16);
  std::memcpy(slot(l) + 4, b, 8);
  warpSync();
  // A (16 x 16): row r, column k sits in lane (r % 8) * 4 + (k % 8) / 2,
  // register r / 8 + 2 * (k / 8). B (16 x 8): row k, column n in lane
  // n * 4 + (k % 8) / 2, register k / 8.
  auto A = [](int r, int k) { return bf16At(slot((r % 8) * 4 + (k % 8) / 2)[r / 8 + 2 * (k / 8)], k & 1); };
  auto B = [](int k, int n) { return bf16At(slot(n * 4 + (k % 8) / 2)[4 + k / 8], k & 1); };
  float out[4];
  for (int i = 0; i < 4; ++i) {  // D: c_i at row g (+ 8 for i >= 2), column 2t + (i & 1)
    const int row = g + 8 * (i / 2), col = 2 * t + (i & 1);
    float acc = d[i];
    for (int k = 0; k < 16; ++k) acc += A(row, k) * B(k, col);
    out[i] = acc;
  }
  warpSync();
  std::memcpy(d, out, sizeof out);
}
template <int N> void ldmatrix(uint32_t (&r)[N], const void *row) { tlemu::loadMatrices(r, row, false); }
template <int N> void ldmatrixTrans(uint32_t (&r)[N], const void *row) { tlemu::loadMatrices(r, row, true); }
inline void cpAsync16(void *shared, const void *global, bool valid = true) {
  if (!tlemu::inShared(shared, 16)) tlemu::fail("cp.async: the destination is not in shared memory");
  tlemu::checkAligned(shared, "cp.async: the destination is not 16-byte aligned");
  if (valid) tlemu::checkAligned(global, "cp.async: the source is not 16-byte aligned");
  tlemu::uncommitted.push_back({shared, global, valid});
}
inline void cpAsyncCommit() {
  tlemu::groups.push_back(std::move(tlemu::uncommitted));
  tlemu::uncommitted.clear();
}
template <int N> void cpAsyncWait() {
  while (tlemu::groups.size() > N) {
    for (const tlemu::AsyncCopy &c : tlemu::groups.front())
      if (c.valid) std::memcpy(c.dst, c.src, 16);
      else std::memset(c.dst, 0, 16);
    tlemu::groups.erase(tlemu::groups.begin());
  }
}
// Blocks run one after another in the order of their index, the order a GPU
// dispatches them in: a block that waits on a flag no earlier block has set
// would wait forever on a GPU too, unless a later block happens to run
// beside it. The emulator fails there instead of hanging.
inline int loadAcquire(const int *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
inline void storeRelease(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
inline void spinPause() { tlemu::fail("a block waits on a flag that only a block after it in the grid sets"); }
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline float __ldcg(const float *p) { return *p; }
inline void __stcg(float *p, float v) { *p = v; }
)emu";

std::string replaceAll(std::string s, const std::string &from, const std::string &to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
    s.replace(p, from.size(), to);
  return s;
}

using SetCtx = void (*)(long long, long long, long long, void *, void *, uint32_t *, float *, long long);
using P = void *;

void call(void *fn, const std::vector<void *> &a) {
  switch (a.size()) {
    case 1: reinterpret_cast<void (*)(P)>(fn)(a[0]); return;
    case 2: reinterpret_cast<void (*)(P, P)>(fn)(a[0], a[1]); return;
    case 3: reinterpret_cast<void (*)(P, P, P)>(fn)(a[0], a[1], a[2]); return;
    case 4: reinterpret_cast<void (*)(P, P, P, P)>(fn)(a[0], a[1], a[2], a[3]); return;
    case 5: reinterpret_cast<void (*)(P, P, P, P, P)>(fn)(a[0], a[1], a[2], a[3], a[4]); return;
    case 6: reinterpret_cast<void (*)(P, P, P, P, P, P)>(fn)(a[0], a[1], a[2], a[3], a[4], a[5]); return;
    case 7:
      reinterpret_cast<void (*)(P, P, P, P, P, P, P)>(fn)(a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
      return;
    case 8:
      reinterpret_cast<void (*)(P, P, P, P, P, P, P, P)>(fn)(a[0], a[1], a[2], a[3], a[4], a[5], a[6],
                                                            a[7]);
      return;
    case 9:
      reinterpret_cast<void (*)(P, P, P, P, P, P, P, P, P)>(fn)(a[0], a[1], a[2], a[3], a[4], a[5],
                                                               a[6], a[7], a[8]);
      return;
    case 10:
      reinterpret_cast<void (*)(P, P, P, P, P, P, P, P, P, P)>(fn)(a[0], a[1], a[2], a[3], a[4], a[5],
                                                                  a[6], a[7], a[8], a[9]);
      return;
    case 11:
      reinterpret_cast<void (*)(P, P, P, P, P, P, P, P, P, P, P)>(fn)(a[0], a[1], a[2], a[3], a[4], a[5],
                                                                     a[6], a[7], a[8], a[9], a[10]);
      return;
    case 12:
      reinterpret_cast<void (*)(P, P, P, P, P, P, P, P, P, P, P, P)>(fn)(
          a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11]);
      return;
    case 13:
      reinterpret_cast<void (*)(P, P, P, P, P, P, P, P, P, P, P, P, P)>(fn)(
          a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12]);
      return;
    case 14:
      reinterpret_cast<void (*)(P, P, P, P, P, P, P, P, P, P, P, P, P, P)>(fn)(
          a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13]);
      return;
  }
  throw DeviceError("emulator: too many kernel arguments");
}

class EmulatedCuda : public Device {
 public:
  std::string describe() const override { return "emulated cuda"; }
  void *alloc(size_t b) override { return cpu_->alloc(b); }
  void release(void *p) override { cpu_->release(p); }
  void upload(void *d, const void *s, size_t n) override { cpu_->upload(d, s, n); }
  void download(void *d, const void *s, size_t n) override { cpu_->download(d, s, n); }
  void zero(void *p, size_t n) override { cpu_->zero(p, n); }
  void synchronize() override {}
  void gemm(const artifact::Gemm &g, const void *a, const void *b, void *c) override { cpu_->gemm(g, a, b, c); }

  void loadKernels(const artifact::Artifact &a) override {
    std::string src = a.cudaSource;
    for (const char *t : {"typedef long long int64_t;\n", "typedef int int32_t;\n",
                          "typedef unsigned int uint32_t;\n", "typedef unsigned short uint16_t;\n",
                          "typedef unsigned char uint8_t;\n"})
      src = replaceAll(src, t, "");
    // Dynamic shared memory: the block's buffer.
    src = std::regex_replace(src, std::regex(R"(extern __shared__ (?:__align__\(\d+\) )?(\w+) (\w+)\[\];)"),
                             "$1 *$2 = reinterpret_cast<$1 *>(tlemu::ctx.shared);");
    std::string base = kernelCacheDir() + "/emu-" + std::to_string(getpid()) + "-" + std::to_string(counter_++);
    std::ofstream(base + ".cpp") << kEmulation << kTensorCores << src;
    std::string cmd = "c++ -std=c++20 -O1 -shared -fPIC -w -o " + base + ".so " + base + ".cpp 2>&1";
    FILE *p = popen(cmd.c_str(), "r");
    std::string log;
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, p)) log.append(buf, n);
    if (pclose(p) != 0) throw DeviceError("emulator: compiling the CUDA source failed:\n" + log);
    module_ = dlopen((base + ".so").c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!module_) throw DeviceError(dlerror());
    set_ = reinterpret_cast<SetCtx>(dlsym(module_, "tlemu_set"));
    for (const auto &k : a.kernels) {
      fns_[k.name] = dlsym(module_, k.name.c_str());
      if (!fns_[k.name]) throw DeviceError("emulator: missing kernel " + k.name);
      // Kernels that synchronise or shuffle need their threads to run together.
      size_t at = src.find("void " + k.name + "(");
      size_t end = src.find("\n}\n", at);
      std::string body = src.substr(at, end - at);
      cooperative_[k.name] = false;
      for (const char *warpWide : {"__syncthreads", "warpSum", "warpMax", "blockSum", "blockMax", "mmaBf16", "ldmatrix", "TlFlashAttention"})
        cooperative_[k.name] = cooperative_[k.name] || body.find(warpWide) != std::string::npos;
    }
  }

  void launch(const artifact::Kernel &k, const std::vector<void *> &args, int *error, int64_t grid,
              const std::vector<int64_t> &counts) override {
    std::vector<void *> a = args;
    if (k.checksErrors) a.push_back(error);
    // The counts, int64_t each: passed in the registers (or stack slots) a
    // pointer would use.
    for (int64_t c : counts) a.push_back(reinterpret_cast<void *>(static_cast<intptr_t>(c)));
    void *fn = fns_.at(k.name);
    struct alignas(16) Chunk { float f[4]; };  // cp.async and ldmatrix need 16-byte rows
    std::vector<Chunk> chunks(k.sharedBytes / 16 + 1);
    float *shared = chunks[0].f;
    for (int64_t b = 0; b < (grid < 0 ? k.grid : grid); ++b) {
      if (!cooperative_.at(k.name)) {
        for (int64_t t = 0; t < k.block; ++t) {
          set_(b, t, k.block, nullptr, nullptr, nullptr, shared, k.sharedBytes);
          call(fn, a);
        }
        continue;
      }
      std::barrier<> block(k.block);
      int64_t warps = (k.block + 31) / 32;
      std::vector<std::unique_ptr<std::barrier<>>> warpBarriers;
      std::vector<std::vector<uint32_t>> slots(warps, std::vector<uint32_t>(32 * 16));
      for (int64_t w = 0; w < warps; ++w)
        warpBarriers.push_back(std::make_unique<std::barrier<>>(std::min<int64_t>(32, k.block - 32 * w)));
      std::vector<std::thread> threads;
      for (int64_t t = 0; t < k.block; ++t)
        threads.emplace_back([&, t] {
          std::barrier<> *warp = warpBarriers[t / 32].get();
          set_(b, t, k.block, &block, warp, slots[t / 32].data(), shared, k.sharedBytes);
          call(fn, a);
          block.arrive_and_drop();  // a thread that returned no longer takes part
          warp->arrive_and_drop();
        });
      for (auto &th : threads) th.join();
    }
  }

 private:
  std::unique_ptr<Device> cpu_ = makeCpuDevice();
  void *module_ = nullptr;
  SetCtx set_ = nullptr;
  std::map<std::string, void *> fns_;
  std::map<std::string, bool> cooperative_;
  static inline int counter_ = 0;
};

}  // namespace

std::unique_ptr<Device> makeEmulatedCudaDevice() { return std::make_unique<EmulatedCuda>(); }

}  // namespace tlc::testing
