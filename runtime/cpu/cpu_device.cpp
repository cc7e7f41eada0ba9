// The CPU device: kernels compiled by the system C++ compiler into a shared
// object (cached by a hash of source, flags, compiler version and the CPU
// target -march=native resolves to), GEMMs by
// OpenBLAS's cblas_sgemm when present (loaded with dlopen), else a plain loop.
#include <dlfcn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "runtime/exec/device.h"
#include "runtime/exec/kernel_cache.h"
#include "formats/hash.h"
#include "formats/half.h"

namespace tlc {
namespace {

using CblasSgemm = void (*)(int, int, int, int, int, int, float, const float *, int, const float *,
                            int, float, float *, int);
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;
constexpr const char *kOpenmpOpenblas = "/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0";

class CpuDevice : public Device {
 public:
  CpuDevice() {
    // One thread pool: OpenBLAS built on OpenMP (Debian's openblas-openmp
    // variant) runs its GEMMs on the same libgomp workers as the kernels, so
    // kernels and GEMMs never compete for cores. With another BLAS (its own
    // pthreads, which spin after each GEMM) OpenMP workers that spin between
    // kernels starve it (measured: GEMMs 5x slower), so they sleep instead.
    const char *blas = std::getenv("TLC_BLAS");
    std::vector<const char *> candidates = {kOpenmpOpenblas, "libopenblas.so.0", "libopenblas.so",
                                            "libcblas.so.3", "libblas.so.3"};
    if (blas) candidates = {blas};
    for (const char *lib : candidates) {
      if (void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL)) {
        if (auto f = reinterpret_cast<CblasSgemm>(dlsym(h, "cblas_sgemm"))) {
          sgemm_ = f;
          blas_ = lib;
          break;
        }
      }
    }
    if (blas && !sgemm_) throw DeviceError(std::string("TLC_BLAS: cannot load cblas_sgemm from ") + blas);
    if (!sgemm_ || std::strcmp(blas_, kOpenmpOpenblas) != 0)
      setenv("OMP_WAIT_POLICY", "passive", /*overwrite=*/0);
  }
  ~CpuDevice() override {
    if (module_) dlclose(module_);
  }

  std::string describe() const override {
    return std::string("cpu (") + (sgemm_ ? blas_ : "built-in GEMM") + ")";
  }
  void *alloc(size_t bytes) override {
    void *p = std::calloc(1, bytes ? bytes : 1);
    if (!p) throw DeviceError("out of host memory allocating " + std::to_string(bytes) + " bytes");
    return p;
  }
  void release(void *p) override { std::free(p); }
  void upload(void *dst, const void *src, size_t n) override { std::memcpy(dst, src, n); }
  void download(void *dst, const void *src, size_t n) override { std::memcpy(dst, src, n); }
  void zero(void *p, size_t n) override { std::memset(p, 0, n); }
  void decommit(void *p, size_t n) override {
    char *begin = static_cast<char *>(p), *end = begin + n;
    uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    char *b = reinterpret_cast<char *>((reinterpret_cast<uintptr_t>(begin) + page - 1) / page * page);
    char *e = reinterpret_cast<char *>(reinterpret_cast<uintptr_t>(end) / page * page);
    // Anonymous private memory (calloc's) reads back as zeros after MADV_DONTNEED.
    if (b < e && madvise(b, static_cast<size_t>(e - b), MADV_DONTNEED) == 0) {
      std::memset(begin, 0, static_cast<size_t>(b - begin));
      std::memset(e, 0, static_cast<size_t>(end - e));
      return;
    }
    std::memset(p, 0, n);
  }
  void synchronize() override {}

  void loadKernels(const artifact::Artifact &a) override {
    if (a.cpuSource.empty())
      throw DeviceError("the artifact has no CPU kernels; compile it with --target cpu or all");
    const char *cxx = std::getenv("CXX") ? std::getenv("CXX") : "c++";
    const std::string flags = "-O3 -fopenmp -shared -fPIC -march=native";
    int status = 0;
    std::string version = runCommand(std::string(cxx) + " --version", &status);
    if (status != 0) throw DeviceError(std::string("no C++ compiler to JIT CPU kernels: ") + cxx);
    // The resolved target, not just "-march=native": nodes with different
    // CPUs sharing one cache (a home directory on a cluster) must not load
    // each other's libraries (SIGILL).
    const std::string target = resolvedCpuTarget(cxx);
    char key[32];
    std::snprintf(key, sizeof key, "%016llx",
                  static_cast<unsigned long long>(fnv1a64(a.cpuSource + flags + version + target)));
    std::string dir = kernelCacheDir();
    std::string base = dir + "/cpu-" + key, so = base + ".so";
    struct stat st;
    if (stat(so.c_str(), &st) != 0) {
      // Per-process names, renamed into place: concurrent runs never see a
      // half-written source or library.
      std::string pid = std::to_string(getpid());
      std::string src = base + "." + pid + ".cpp", tmp = so + ".tmp." + pid;
      FILE *f = std::fopen(src.c_str(), "w");
      if (!f) throw DeviceError("cannot write the kernel cache in " + dir);
      std::fwrite(a.cpuSource.data(), 1, a.cpuSource.size(), f);
      std::fclose(f);
      std::string log = runCommand(std::string(cxx) + " " + flags + " -o " + tmp + " " + src, &status);
      if (status != 0) {
        std::remove(tmp.c_str());
        throw DeviceError("compiling CPU kernels failed (" + src + "):\n" + log);
      }
      std::rename(tmp.c_str(), so.c_str());
      std::rename(src.c_str(), (base + ".cpp").c_str());  // kept for reading
    }
    // NODELETE: OpenMP worker threads of the kernels outlive any dlclose.
    module_ = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!module_) throw DeviceError(std::string("cannot load ") + so + ": " + dlerror());
    for (const auto &k : a.kernels) {
      void *fn = dlsym(module_, k.name.c_str());
      if (!fn) throw DeviceError("kernel '" + k.name + "' is missing from " + so);
      kernels_[k.name] = reinterpret_cast<Entry>(fn);
    }
  }

  void launch(const artifact::Kernel &k, const std::vector<void *> &args, int *error, int64_t,
              const std::vector<int64_t> &counts) override {
    kernels_.at(k.name)(args.data(), error, counts.data());
  }

  void gemm(const artifact::Gemm &g, const void *a, const void *b, void *c) override {
    if (g.dtype == artifact::DType::BF16) return gemmBf16(g, a, b, c);
    if (g.strideB == 0 && !g.transA && g.batch > 1) {
      // A weight shared by the batch: one GEMM over all rows of A and C.
      artifact::Gemm folded = g;
      folded.m = g.m * g.batch;
      folded.batch = 1;
      return sgemm(folded, static_cast<const float *>(a), static_cast<const float *>(b),
                   static_cast<float *>(c));
    }
    for (int64_t i = 0; i < g.batch; ++i)
      sgemm(g, static_cast<const float *>(a) + i * g.strideA,
            static_cast<const float *>(b) + i * g.strideB, static_cast<float *>(c) + i * g.strideC);
  }

 private:
  using Entry = void (*)(void *const *, int *, const int64_t *);

  void sgemm(const artifact::Gemm &g, const float *a, const float *b, float *c) {
    int lda = g.transA ? g.m : g.k, ldb = g.transB ? g.k : g.n;
    if (sgemm_) {
      sgemm_(kRowMajor, g.transA ? kTrans : kNoTrans, g.transB ? kTrans : kNoTrans, g.m, g.n, g.k,
             1.0f, a, lda, b, ldb, g.accumulate ? 1.0f : 0.0f, c, g.n);
      return;
    }
    for (int64_t i = 0; i < g.m; ++i)
      for (int64_t j = 0; j < g.n; ++j) {
        float acc = g.accumulate ? c[i * g.n + j] : 0.0f;
        for (int64_t p = 0; p < g.k; ++p)
          acc += a[g.transA ? p * lda + i : i * lda + p] * b[g.transB ? j * ldb + p : p * ldb + j];
        c[i * g.n + j] = acc;
      }
  }

  // bf16 storage: widen to f32, multiply (adding to C widened, when
  // accumulating), round the result back; an f32 result is C itself.
  void gemmBf16(const artifact::Gemm &g, const void *a, const void *b, void *c) {
    auto widen = [](const void *p, int64_t n) {
      std::vector<float> out(n);
      for (int64_t i = 0; i < n; ++i) out[i] = bf16ToFloat(static_cast<const uint16_t *>(p)[i]);
      return out;
    };
    int64_t na = g.m * g.k, nb = g.k * g.n;
    std::vector<float> fc(g.m * g.n);
    for (int64_t i = 0; i < g.batch; ++i) {
      std::vector<float> fa = widen(static_cast<const uint16_t *>(a) + i * g.strideA, na);
      std::vector<float> fb = widen(static_cast<const uint16_t *>(b) + i * g.strideB, nb);
      if (g.f32Result) {
        sgemm(g, fa.data(), fb.data(), static_cast<float *>(c) + i * g.strideC);
        continue;
      }
      if (g.accumulate) fc = widen(static_cast<const uint16_t *>(c) + i * g.strideC, g.m * g.n);
      sgemm(g, fa.data(), fb.data(), fc.data());
      for (int64_t j = 0; j < g.m * g.n; ++j)
        static_cast<uint16_t *>(c)[i * g.strideC + j] = floatToBf16(fc[j]);
    }
  }

  CblasSgemm sgemm_ = nullptr;
  const char *blas_ = "";
  void *module_ = nullptr;
  std::map<std::string, Entry> kernels_;
};

}  // namespace

std::unique_ptr<Device> makeCpuDevice() { return std::make_unique<CpuDevice>(); }

}  // namespace tlc
