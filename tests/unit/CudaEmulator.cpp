#include "CudaEmulator.h"

#include <dlfcn.h>
#include <unistd.h>

#include <barrier>
#include <cstdio>
#include <fstream>
#include <map>
#include <thread>
#include <vector>

#include "runtime/exec/kernel_cache.h"

namespace tlc::testing {
namespace {

// Prepended to the CUDA source (whose own integer typedefs are removed).
const char *kEmulation = R"(
#include <barrier>
#include <cstdint>
#include <cstring>
#include <math.h>
#include <mutex>
namespace tlemu {
struct Ctx {
  long long bx = 0, tx = 0, bdim = 1;
  std::barrier<> *block = nullptr, *warp = nullptr;
  float *slots = nullptr;
  float *shared = nullptr;
};
inline thread_local Ctx ctx;
inline std::mutex atomics;
}  // namespace tlemu
struct tl_dim3 { long long x; };
#define blockIdx (tl_dim3{tlemu::ctx.bx})
#define threadIdx (tl_dim3{tlemu::ctx.tx})
#define blockDim (tl_dim3{tlemu::ctx.bdim})
#define __global__
#define __device__
#define __forceinline__ inline
inline void __syncthreads() { tlemu::ctx.block->arrive_and_wait(); }
inline float __shfl_xor_sync(unsigned, float v, int o) {
  int lane = static_cast<int>(tlemu::ctx.tx % 32);
  tlemu::ctx.slots[lane] = v;
  tlemu::ctx.warp->arrive_and_wait();
  float r = tlemu::ctx.slots[lane ^ o];
  tlemu::ctx.warp->arrive_and_wait();
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
                          float *slots, float *shared) {
  tlemu::ctx = {bx, tx, bdim, static_cast<std::barrier<> *>(block), static_cast<std::barrier<> *>(warp),
                slots, shared};
}
)";

std::string replaceAll(std::string s, const std::string &from, const std::string &to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
    s.replace(p, from.size(), to);
  return s;
}

using SetCtx = void (*)(long long, long long, long long, void *, void *, float *, float *);
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
    src = replaceAll(src, "extern __shared__ float tiles[];", "float *tiles = tlemu::ctx.shared;");
    std::string base = kernelCacheDir() + "/emu-" + std::to_string(getpid()) + "-" + std::to_string(counter_++);
    std::ofstream(base + ".cpp") << kEmulation << src;
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
      cooperative_[k.name] = body.find("__syncthreads") != std::string::npos ||
                             body.find("warpSum") != std::string::npos ||
                             body.find("warpMax") != std::string::npos;
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
    std::vector<float> shared(k.sharedBytes / 4 + 1);
    for (int64_t b = 0; b < (grid < 0 ? k.grid : grid); ++b) {
      if (!cooperative_.at(k.name)) {
        for (int64_t t = 0; t < k.block; ++t) {
          set_(b, t, k.block, nullptr, nullptr, nullptr, shared.data());
          call(fn, a);
        }
        continue;
      }
      std::barrier<> block(k.block);
      int64_t warps = (k.block + 31) / 32;
      std::vector<std::unique_ptr<std::barrier<>>> warpBarriers;
      std::vector<std::vector<float>> slots(warps, std::vector<float>(32));
      for (int64_t w = 0; w < warps; ++w)
        warpBarriers.push_back(std::make_unique<std::barrier<>>(std::min<int64_t>(32, k.block - 32 * w)));
      std::vector<std::thread> threads;
      for (int64_t t = 0; t < k.block; ++t)
        threads.emplace_back([&, t] {
          std::barrier<> *warp = warpBarriers[t / 32].get();
          set_(b, t, k.block, &block, warp, slots[t / 32].data(), shared.data());
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
