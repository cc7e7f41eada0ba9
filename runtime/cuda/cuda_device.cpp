// The CUDA device: the driver API, NVRTC and cuBLASLt loaded with dlopen.
// Kernels are compiled by NVRTC for the GPU's own architecture and the
// cubin cached on disk; GEMMs are cuBLASLt matmuls on the row-major data
// seen as column-major transposes. Every call is checked.
//
// Work goes to the legacy default stream, as NCCL's communicator expects
// (its blocking stream orders with the legacy stream, not with another
// blocking stream), and synchronous copies order with it too. CUDA graphs
// are captured on a stream of the device's own, which only records (legacy
// work cannot be captured), and launched on the legacy stream: a replay is
// ordered exactly as the launches it replaces.
#include <cublasLt.h>
#include <cuda.h>
#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "runtime/cuda/driver.h"
#include "runtime/cuda/nvrtc.h"
#include "runtime/exec/device.h"
#include "runtime/exec/kernel_cache.h"
#include "runtime/exec/dynlib.h"
#include "formats/hash.h"

namespace tlc {
namespace {

struct Lt {
  decltype(&cublasLtCreate) create;
  decltype(&cublasLtMatmulDescCreate) descCreate;
  decltype(&cublasLtMatmulDescSetAttribute) descSet;
  decltype(&cublasLtMatmulDescDestroy) descDestroy;
  decltype(&cublasLtMatrixLayoutCreate) layoutCreate;
  decltype(&cublasLtMatrixLayoutSetAttribute) layoutSet;
  decltype(&cublasLtMatrixLayoutDestroy) layoutDestroy;
  decltype(&cublasLtMatmulPreferenceCreate) prefCreate;
  decltype(&cublasLtMatmulPreferenceSetAttribute) prefSet;
  decltype(&cublasLtMatmulPreferenceDestroy) prefDestroy;
  decltype(&cublasLtMatmulAlgoGetHeuristic) heuristic;
  decltype(&cublasLtMatmul) matmul;
};

template <typename F> void load(void *lib, F &fn, const char *symbol) {
  std::string missing;
  if (!loadSymbol(lib, fn, symbol, missing)) throw DeviceError("CUDA library " + missing);
}

void *open(std::initializer_list<const char *> names, const char *what) {
  std::string tried;
  if (void *h = openFirstLibrary(names, &tried)) return h;
  throw DeviceError(std::string("cannot load ") + what + ":" + tried);
}

constexpr size_t kWorkspaceBytes = 32u << 20;

class CudaDevice : public Device {
 public:
  explicit CudaDevice(int ordinal) {
    if (!d_.error.empty()) throw DeviceError(d_.error);
    check(d_.init(0), "cuInit");
    int count = 0;
    check(d_.deviceCount(&count), "cuDeviceGetCount");
    if (count == 0) throw DeviceError("no CUDA GPU is visible (CUDA_VISIBLE_DEVICES?)");
    // Node-local rank r takes GPU r; modulo the visible ones, as NCCL's
    // communicator does, so that a launcher giving each rank its own
    // CUDA_VISIBLE_DEVICES (one GPU, ordinal 0) works too.
    ordinal %= count;
    check(d_.deviceGet(&dev_, ordinal), "cuDeviceGet");
    CUcontext ctx;
    check(d_.retain(&ctx, dev_), "cuDevicePrimaryCtxRetain");
    check(d_.setCurrent(ctx), "cuCtxSetCurrent");
    int major = 0, minor = 0;
    check(d_.attribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev_), "cuDeviceGetAttribute");
    check(d_.attribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev_), "cuDeviceGetAttribute");
    arch_ = "sm_" + std::to_string(major * 10 + minor);
    char name[256] = {0};
    d_.name(name, sizeof name, dev_);
    name_ = name;

    void *lt = open({"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so",
                     "/usr/local/cuda/lib64/libcublasLt.so"},
                    "cuBLASLt");
    load(lt, lt_.create, "cublasLtCreate");
    load(lt, lt_.descCreate, "cublasLtMatmulDescCreate");
    load(lt, lt_.descSet, "cublasLtMatmulDescSetAttribute");
    load(lt, lt_.descDestroy, "cublasLtMatmulDescDestroy");
    load(lt, lt_.layoutCreate, "cublasLtMatrixLayoutCreate");
    load(lt, lt_.layoutSet, "cublasLtMatrixLayoutSetAttribute");
    load(lt, lt_.layoutDestroy, "cublasLtMatrixLayoutDestroy");
    load(lt, lt_.prefCreate, "cublasLtMatmulPreferenceCreate");
    load(lt, lt_.prefSet, "cublasLtMatmulPreferenceSetAttribute");
    load(lt, lt_.prefDestroy, "cublasLtMatmulPreferenceDestroy");
    load(lt, lt_.heuristic, "cublasLtMatmulAlgoGetHeuristic");
    load(lt, lt_.matmul, "cublasLtMatmul");
    checkLt(lt_.create(&handle_), "cublasLtCreate");
    workspace_ = alloc(kWorkspaceBytes);
  }

  std::string describe() const override { return "cuda (" + name_ + ", " + arch_ + ")"; }

  void *alloc(size_t bytes) override {
    CUdeviceptr p;
    check(d_.memAlloc(&p, bytes ? bytes : 1), "cuMemAlloc (" + std::to_string(bytes) + " bytes)");
    check(d_.memset8(p, 0, bytes ? bytes : 1), "cuMemsetD8");
    return reinterpret_cast<void *>(p);
  }
  void release(void *p) override { d_.memFree(reinterpret_cast<CUdeviceptr>(p)); }
  void upload(void *dst, const void *src, size_t n) override {
    check(d_.htod(reinterpret_cast<CUdeviceptr>(dst), src, n), "cuMemcpyHtoD");
  }
  void download(void *dst, const void *src, size_t n) override {
    check(d_.dtoh(dst, reinterpret_cast<CUdeviceptr>(src), n), "cuMemcpyDtoH");
  }
  void zero(void *p, size_t n) override {
    if (!n) return;
    if (stream_) check(d_.memset8Async(reinterpret_cast<CUdeviceptr>(p), 0, n, stream_), "cuMemsetD8Async");
    else check(d_.memset8(reinterpret_cast<CUdeviceptr>(p), 0, n), "cuMemsetD8");
  }
  void synchronize() override { check(d_.sync(), "kernel execution (cuCtxSynchronize)"); }

  void loadKernels(const artifact::Artifact &a) override {
    if (a.cudaSource.empty())
      throw DeviceError("the artifact has no CUDA kernels; compile it with --target cuda or all");
    std::string cubin;
    for (const auto &[arch, binary] : a.cubins)
      if (arch == arch_) cubin = binary;  // precompiled by tlc compile --arch
    if (cubin.empty()) cubin = compiledKernels(a.cudaSource);
    check(d_.loadData(&module_, cubin.data()), "cuModuleLoadData");
    for (const auto &k : a.kernels) {
      CUfunction f;
      check(d_.getFunction(&f, module_, k.name.c_str()), "cuModuleGetFunction(" + k.name + ")");
      if (k.sharedBytes > 48 * 1024)
        check(d_.funcSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                  static_cast<int>(k.sharedBytes)),
              "cuFuncSetAttribute");
      functions_[k.name] = f;
    }
  }

  ~CudaDevice() override {
    if (capture_) d_.streamDestroy(capture_);
    for (auto &[key, p] : gemmPlans_) {
      lt_.layoutDestroy(p.la);
      lt_.layoutDestroy(p.lb);
      lt_.layoutDestroy(p.lc);
      lt_.descDestroy(p.desc);
    }
  }

  // The cubin for this GPU from the cache, else compiled by NVRTC and cached
  // (keyed by source, architecture and NVRTC version).
  std::string compiledKernels(const std::string &source) {
    char key[32];
    std::snprintf(key, sizeof key, "%016llx",
                  static_cast<unsigned long long>(fnv1a64(source + arch_ + cuda::nvrtcVersionString())));
    std::string path = kernelCacheDir() + "/cuda-" + arch_ + "-" + key + ".cubin";
    if (std::ifstream cached{path, std::ios::binary}) {
      std::stringstream ss;
      ss << cached.rdbuf();
      return ss.str();
    }
    cuda::Compiled c = cuda::compileWithNvrtc(source, arch_);
    if (!c.ok) throw DeviceError("NVRTC failed to compile the CUDA kernels for " + arch_ + ":\n" + c.log);
    std::string tmp = path + ".tmp." + std::to_string(getpid());
    std::ofstream(tmp, std::ios::binary).write(c.cubin.data(), static_cast<std::streamsize>(c.cubin.size()));
    std::rename(tmp.c_str(), path.c_str());
    return c.cubin;
  }

  void launch(const artifact::Kernel &k, const std::vector<void *> &args, int *error, int64_t grid,
              const std::vector<int64_t> &counts) override {
    std::vector<CUdeviceptr> ptrs;
    for (void *p : args) ptrs.push_back(reinterpret_cast<CUdeviceptr>(p));
    if (k.checksErrors) ptrs.push_back(reinterpret_cast<CUdeviceptr>(error));
    std::vector<void *> params;
    for (CUdeviceptr &p : ptrs) params.push_back(&p);
    std::vector<long long> values(counts.begin(), counts.end());  // const int64_t tl_n0, ...
    for (long long &v : values) params.push_back(&v);
    check(d_.launch(functions_.at(k.name), static_cast<unsigned>(grid < 0 ? k.grid : grid), 1, 1,
                    static_cast<unsigned>(k.block), 1, 1, static_cast<unsigned>(k.sharedBytes), stream_,
                    params.data(), nullptr),
          "cuLaunchKernel(" + k.name + ")");
  }

  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: pass B
  // as cuBLASLt's A and A as its B, with the data as stored.
  void gemm(const artifact::Gemm &shape, const void *a, const void *b, void *c) override {
    artifact::Gemm g = shape;
    if (g.strideB == 0 && !g.transA && g.batch > 1) {  // a shared weight: one taller GEMM
      g.m *= g.batch;
      g.batch = 1;
      g.strideA = g.m * g.k;
      g.strideC = g.m * g.n;
    }
    // The heuristic assumes 256-byte alignment unless told: flat parameters
    // sit at 64-element offsets (128 bytes in bf16), and leading dimensions
    // and batch strides count too.
    uint64_t elementBytes = g.dtype == artifact::DType::BF16 ? 2 : 4, resultBytes = g.f32Result ? 4 : elementBytes;
    auto alignment = [&](const void *p, uint64_t leading, int64_t stride, uint64_t elementBytes) {
      uint64_t bytes[3] = {reinterpret_cast<uintptr_t>(p), leading * elementBytes,
                           g.batch > 1 ? static_cast<uint64_t>(stride) * elementBytes : 0};
      uint32_t align = 256;
      while (align > 1 && ((bytes[0] | bytes[1] | bytes[2]) & (align - 1))) align /= 2;
      return align;
    };
    uint32_t aligns[3] = {alignment(b, g.transB ? g.k : g.n, g.strideB, elementBytes),
                          alignment(a, g.transA ? g.m : g.k, g.strideA, elementBytes),
                          alignment(c, g.n, g.strideC, resultBytes)};
    // A training step repeats the same few shapes: plan each once.
    GemmKey key = {g.m, g.n, g.k, g.batch, g.strideA, g.strideB, g.strideC, g.transA, g.transB,
                   static_cast<int64_t>(elementBytes), aligns[0], aligns[1], aligns[2], g.f32Result};
    auto plan = gemmPlans_.find(key);
    if (plan == gemmPlans_.end()) plan = gemmPlans_.emplace(key, planGemm(g, aligns)).first;
    const GemmPlan &p = plan->second;
    float alpha = 1.0f, beta = g.accumulate ? 1.0f : 0.0f;
    checkLt(lt_.matmul(handle_, p.desc, &alpha, b, p.la, a, p.lb, &beta, c, p.lc, c, p.lc, &p.algo.algo, workspace_,
                       kWorkspaceBytes, stream_),
            "cublasLtMatmul");
  }

  // Thread-local capture: what another thread (data parallelism's) calls
  // meanwhile is not refused. A non-blocking capture stream: a legacy-stream
  // call from elsewhere would otherwise have to join the capture, which
  // breaks it. cuBLASLt can be captured because its workspace is passed in,
  // never allocated; the executor's eager first run has loaded its kernels.
  bool beginCapture() override {
    if (!d_.graphError.empty()) throw DeviceError(d_.graphError);
    if (!capture_) check(d_.streamCreate(&capture_, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
    check(d_.beginCapture(capture_, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture");
    stream_ = capture_;
    return true;
  }
  void *endCapture() override {
    stream_ = nullptr;
    CUgraph graph = nullptr;
    CUresult r = d_.endCapture(capture_, &graph);
    CUgraphExec exec = nullptr;
    if (r == CUDA_SUCCESS) r = d_.graphInstantiate(&exec, graph, 0);
    if (graph) d_.graphDestroy(graph);  // the executable graph keeps what it needs
    check(r, "capturing the steps (cuStreamEndCapture, cuGraphInstantiate)");
    return exec;
  }
  void replay(void *graph) override {
    check(d_.graphLaunch(static_cast<CUgraphExec>(graph), nullptr), "cuGraphLaunch");
  }
  void releaseGraph(void *graph) override { d_.graphExecDestroy(static_cast<CUgraphExec>(graph)); }

 private:
  struct GemmPlan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
    cublasLtMatmulHeuristicResult_t algo = {};
  };

  // Descriptors and the heuristic's algorithm for one GEMM shape;
  // `aligns`: the byte alignment of cuBLASLt's A, B and C/D.
  GemmPlan planGemm(const artifact::Gemm &g, const uint32_t aligns[3]) {
    bool bf16 = g.dtype == artifact::DType::BF16;
    cudaDataType_t type = bf16 ? CUDA_R_16BF : CUDA_R_32F;
    cublasComputeType_t compute = bf16 ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_FAST_TF32;
    GemmPlan p;
    checkLt(lt_.descCreate(&p.desc, compute, CUDA_R_32F), "cublasLtMatmulDescCreate");
    cublasOperation_t opA = g.transB ? CUBLAS_OP_T : CUBLAS_OP_N, opB = g.transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    checkLt(lt_.descSet(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof opA), "set TRANSA");
    checkLt(lt_.descSet(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof opB), "set TRANSB");
    auto layout = [&](uint64_t rows, uint64_t cols, int64_t stride, cudaDataType_t type) {
      cublasLtMatrixLayout_t l;
      checkLt(lt_.layoutCreate(&l, type, rows, cols, static_cast<int64_t>(rows)), "cublasLtMatrixLayoutCreate");
      int32_t batch = static_cast<int32_t>(g.batch);
      checkLt(lt_.layoutSet(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof batch), "set BATCH_COUNT");
      checkLt(lt_.layoutSet(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride),
              "set STRIDED_BATCH_OFFSET");
      return l;
    };
    p.la = layout(g.transB ? g.k : g.n, g.transB ? g.n : g.k, g.strideB, type);
    p.lb = layout(g.transA ? g.m : g.k, g.transA ? g.k : g.m, g.strideA, type);
    p.lc = layout(g.n, g.m, g.strideC, g.f32Result ? CUDA_R_32F : type);  // bf16 x bf16 -> f32: a documented combination
    cublasLtMatmulPreference_t pref;
    checkLt(lt_.prefCreate(&pref), "cublasLtMatmulPreferenceCreate");
    size_t ws = kWorkspaceBytes;
    checkLt(lt_.prefSet(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws), "set workspace");
    const cublasLtMatmulPreferenceAttributes_t alignAttributes[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4; ++i)
      checkLt(lt_.prefSet(pref, alignAttributes[i], &aligns[i < 3 ? i : 2], sizeof aligns[0]), "set alignment");
    int found = 0;
    cublasStatus_t status = lt_.heuristic(handle_, p.desc, p.la, p.lb, p.lc, p.lc, pref, 1, &p.algo, &found);
    lt_.prefDestroy(pref);
    if (status != CUBLAS_STATUS_SUCCESS && status != CUBLAS_STATUS_NOT_SUPPORTED)
      checkLt(status, "cublasLtMatmulAlgoGetHeuristic");
    if (found == 0)
      throw DeviceError("cuBLASLt found no algorithm for a " + std::to_string(g.m) + "x" + std::to_string(g.n) + "x" +
                        std::to_string(g.k) + (bf16 ? (g.f32Result ? " bf16 (f32 result)" : " bf16") : " f32") + " GEMM (batch " + std::to_string(g.batch) +
                        ", alignments " + std::to_string(aligns[0]) + "/" + std::to_string(aligns[1]) + "/" +
                        std::to_string(aligns[2]) + " bytes)");
    return p;
  }

  void check(CUresult r, const std::string &what) {
    if (r == CUDA_SUCCESS) return;
    const char *msg = nullptr;
    if (d_.errorString) d_.errorString(r, &msg);
    throw DeviceError(what + " failed: " + (msg ? msg : "error " + std::to_string(r)));
  }
  void checkLt(cublasStatus_t s, const std::string &what) {
    if (s != CUBLAS_STATUS_SUCCESS) throw DeviceError(what + " failed: cuBLAS status " + std::to_string(s));
  }

  const cuda::Driver &d_ = cuda::driver();
  Lt lt_{};
  CUdevice dev_ = 0;
  CUmodule module_ = nullptr;
  cublasLtHandle_t handle_ = nullptr;
  void *workspace_ = nullptr;
  // Where launches, GEMMs and zeroing go: null (the legacy stream), or the
  // capture stream while a graph is being captured.
  CUstream stream_ = nullptr, capture_ = nullptr;
  std::string arch_, name_;
  std::map<std::string, CUfunction> functions_;
  // Shape, strides, transposes, element bytes and the three alignments.
  using GemmKey = std::array<int64_t, 14>;
  std::map<GemmKey, GemmPlan> gemmPlans_;
};

}  // namespace

std::unique_ptr<Device> makeCudaDevice(int ordinal) { return std::make_unique<CudaDevice>(ordinal); }

}  // namespace tlc
