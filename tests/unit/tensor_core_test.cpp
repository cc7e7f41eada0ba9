// The tensor-core primitives of compiler/Codegen/Library/cuda_mma.cuh
// (mmaBf16, ldmatrix, cp.async), run under the CPU emulation of CUDA against
// plain matmuls and copies of fresh random bf16 inputs, and compiled by NVRTC
// for sm_80 and sm_90 (no spills; HMMA and LDSM in the SASS where a
// disassembler is installed).
#include "formats/artifact.h"
#include "formats/half.h"
#include "runtime/cuda/nvrtc.h"
#include "runtime/exec/device.h"

#include "CudaEmulator.h"
#include "PtxasUsage.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <sstream>

#include <unistd.h>

namespace {

namespace art = tlc::artifact;

std::string readLibrary(const char *name) {
  std::ifstream file(std::string(TL_KERNEL_LIBRARY_DIR) + "/" + name);
  std::stringstream ss;
  ss << file.rdbuf();
  return ss.str();
}

/// What every generated CUDA source starts with (compiler/Codegen/Kernel.cpp).
std::string library() {
  return readLibrary("cuda_prelude.cuh") + readLibrary("cuda_mma.cuh") + readLibrary("cuda_attention.cuh");
}

// C = A B for A [M, K] and B [K, N] (B fragments by ldmatrix.trans), and for
// B given transposed [N, K] (plain ldmatrix): every warp takes 16 x 8 tiles
// over a loop of k-steps of 16, the inputs staged by cp.async.
const char *kMatmulKernel = R"(
extern "C" __global__ void tc_matmul(const uint16_t *__restrict__ a, const uint16_t *__restrict__ b,
                                     const uint16_t *__restrict__ bt, float *__restrict__ c,
                                     float *__restrict__ ct) {
  extern __shared__ __align__(16) uint16_t tcTiles[];
  uint16_t *as = tcTiles, *bs = as + TM * TK, *bts = bs + TK * TN;
  for (int e = threadIdx.x; e < TM * TK / 8; e += blockDim.x) cpAsync16(as + 8 * e, a + 8 * e);
  for (int e = threadIdx.x; e < TK * TN / 8; e += blockDim.x) cpAsync16(bs + 8 * e, b + 8 * e);
  cpAsyncCommit();
  for (int e = threadIdx.x; e < TK * TN / 8; e += blockDim.x) cpAsync16(bts + 8 * e, bt + 8 * e);
  cpAsyncCommit();
  cpAsyncWait<0>();
  __syncthreads();
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  for (int tile = threadIdx.x / 32; tile < (TM / 16) * (TN / 8); tile += blockDim.x / 32) {
    const int m0 = tile / (TN / 8) * 16, n0 = tile % (TN / 8) * 8;
    float d[4] = {0.0f, 0.0f, 0.0f, 0.0f}, dt[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int k0 = 0; k0 < TK; k0 += 16) {
      uint32_t af[4], bf[2], btf[2];
      ldmatrix<4>(af, as + (m0 + lane % 16) * TK + k0 + lane / 16 * 8);
      ldmatrixTrans<2>(bf, bs + (k0 + lane % 16) * TN + n0);
      ldmatrix<2>(btf, bts + (n0 + lane % 8) * TK + k0 + lane / 8 % 2 * 8);
      mmaBf16(d, af, bf);
      mmaBf16(dt, af, btf);
    }
    for (int i = 0; i < 4; ++i) {
      const int at = (m0 + g + 8 * (i / 2)) * TN + n0 + 2 * t + (i & 1);
      c[at] = d[i];
      ct[at] = dt[i];
    }
  }
}

// FlashAttention's register reuse: S = A Bt^T (16 x 16, two accumulator
// tcTiles) becomes, rounded to bf16, the A fragment of O = S V (16 x TV).
extern "C" __global__ void tc_chain(const uint16_t *__restrict__ a, const uint16_t *__restrict__ bt,
                                    const uint16_t *__restrict__ v, float *__restrict__ o) {
  extern __shared__ __align__(16) uint16_t tcTiles[];
  uint16_t *as = tcTiles, *bts = as + 16 * TK, *vs = bts + 16 * TK;
  for (int e = threadIdx.x; e < 16 * TK / 8; e += blockDim.x) {
    cpAsync16(as + 8 * e, a + 8 * e);
    cpAsync16(bts + 8 * e, bt + 8 * e);
  }
  for (int e = threadIdx.x; e < 16 * TV / 8; e += blockDim.x) cpAsync16(vs + 8 * e, v + 8 * e);
  cpAsyncCommit();
  cpAsyncWait<0>();
  __syncthreads();
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  float s[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
  for (int k0 = 0; k0 < TK; k0 += 16) {
    uint32_t af[4], bf[4];
    ldmatrix<4>(af, as + (lane % 16) * TK + k0 + lane / 16 * 8);
    // x4 over Bt: matrices (n 0-7, k lo), (n 0-7, k hi), (n 8-15, k lo), (n 8-15, k hi).
    ldmatrix<4>(bf, bts + (lane % 8 + lane / 16 * 8) * TK + k0 + lane / 8 % 2 * 8);
    const uint32_t b0[2] = {bf[0], bf[1]}, b1[2] = {bf[2], bf[3]};
    mmaBf16(s[0], af, b0);
    mmaBf16(s[1], af, b1);
  }
  const uint32_t p[4] = {packBf16x2(s[0][0], s[0][1]), packBf16x2(s[0][2], s[0][3]),
                         packBf16x2(s[1][0], s[1][1]), packBf16x2(s[1][2], s[1][3])};
  for (int n0 = 0; n0 < TV; n0 += 8) {
    uint32_t vf[2];
    ldmatrixTrans<2>(vf, vs + (lane % 16) * TV + n0);
    float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    mmaBf16(d, p, vf);
    for (int i = 0; i < 4; ++i) o[(g + 8 * (i / 2)) * TV + n0 + 2 * t + (i & 1)] = d[i];
  }
}

// Every lane's registers from ldmatrix x1, x2, x4, plain and .trans, with the
// lanes' row addresses permuted (lane l gives row rows[l] of a 32 x 8 matrix).
extern "C" __global__ void tc_ldmatrix(const uint16_t *__restrict__ m, const int *__restrict__ rows,
                                       uint32_t *__restrict__ out) {
  extern __shared__ __align__(16) uint16_t tcTiles[];
  for (int e = threadIdx.x; e < 32; e += blockDim.x) cpAsync16(tcTiles + 8 * e, m + 8 * e);
  cpAsyncCommit();
  cpAsyncWait<0>();
  __syncthreads();
  const int lane = threadIdx.x;
  const uint16_t *row = tcTiles + 8 * rows[lane];
  uint32_t r1[1], r2[2], r4[4], t1[1], t2[2], t4[4];
  ldmatrix<1>(r1, row);
  ldmatrix<2>(r2, row);
  ldmatrix<4>(r4, row);
  ldmatrixTrans<1>(t1, row);
  ldmatrixTrans<2>(t2, row);
  ldmatrixTrans<4>(t4, row);
  uint32_t *at = out + lane * 14;
  at[0] = r1[0];
  for (int i = 0; i < 2; ++i) at[1 + i] = r2[i];
  for (int i = 0; i < 4; ++i) at[3 + i] = r4[i];
  at[7] = t1[0];
  for (int i = 0; i < 2; ++i) at[8 + i] = t2[i];
  for (int i = 0; i < 4; ++i) at[10 + i] = t4[i];
}

// cp.async in two groups: after wait<1> the first is there, after wait<0>
// the second; `valid` false fills zeros.
extern "C" __global__ void tc_copy(const uint16_t *__restrict__ x, uint16_t *__restrict__ first,
                                   uint16_t *__restrict__ second) {
  extern __shared__ __align__(16) uint16_t tcTiles[];
  const int chunks = TC / 8;
  for (int e = threadIdx.x; e < chunks; e += blockDim.x) cpAsync16(tcTiles + 8 * e, x + 8 * e, e % 3 != 2);
  cpAsyncCommit();
  for (int e = threadIdx.x; e < chunks; e += blockDim.x) cpAsync16(tcTiles + TC + 8 * e, x + TC + 8 * e);
  cpAsyncCommit();
  cpAsyncWait<1>();
  __syncthreads();
  for (int e = threadIdx.x; e < TC; e += blockDim.x) first[e] = tcTiles[e];
  cpAsyncWait<0>();
  __syncthreads();
  for (int e = threadIdx.x; e < TC; e += blockDim.x) second[e] = tcTiles[TC + e];
}
)";

// The attention kernels of Library/cuda_attention.cuh at TinyLlama 1.1B's
// shapes (32 heads over 4 KV heads, T = 2048, head dimension 64) and at
// head dimension 128, as Attention.cpp instantiates them.
const char *kAttentionKernels = R"(
#define TL_ATTENTION(D, H, KV)                                                                              \
  extern "C" __global__ void fa_forward_##D(uint16_t *__restrict__ o, float *__restrict__ lse,            \
                                            const uint16_t *__restrict__ q, const uint16_t *__restrict__ k, \
                                            const uint16_t *__restrict__ v) {                              \
    TlFlashAttention<H, KV, 2048, 2048, D, true>::forward(o, lse, q, k, v, 0.125f);                        \
  }                                                                                                         \
  extern "C" __global__ void fa_grad_##D(uint16_t *__restrict__ dk, uint16_t *__restrict__ dv,             \
                                         uint16_t *__restrict__ dq, const uint16_t *__restrict__ dout,     \
                                         const uint16_t *__restrict__ q, const uint16_t *__restrict__ k,   \
                                         const uint16_t *__restrict__ v, const float *__restrict__ lse,    \
                                         const float *__restrict__ delta, float *__restrict__ dqsum,       \
                                         int *__restrict__ turns) {                                        \
    TlFlashAttention<H, KV, 2048, 2048, D, true>::gradKeyValueQuery(dk, dv, dq, dout, q, k, v, lse, delta,  \
                                                                     dqsum, turns, 0.125f);                 \
  }
TL_ATTENTION(64, 32, 4)
TL_ATTENTION(128, 16, 2)
)";

constexpr int kM = 32, kN = 16, kK = 48, kV = 24, kCopy = 96 * 8;

std::string testSource() {
  return library() + "#define TM " + std::to_string(kM) + "\n#define TN " + std::to_string(kN) +
         "\n#define TK " + std::to_string(kK) + "\n#define TV " + std::to_string(kV) + "\n#define TC " +
         std::to_string(kCopy) + "\n" + kMatmulKernel + kAttentionKernels;
}

class TensorCoreTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    std::string dir = ::testing::TempDir() + "tlc-kernel-cache";
    setenv("TLC_CACHE_DIR", dir.c_str(), 1);
  }

  void SetUp() override {
    artifact_.cudaSource = testSource();
    const int64_t matmulShared = 2 * (kM * kK + 2 * kK * kN);
    artifact_.kernels = {{"tc_matmul", 1, 64, matmulShared, false},
                         {"tc_chain", 1, 32, 2 * (32 * kK + 16 * kV), false},
                         {"tc_ldmatrix", 1, 32, 2 * 32 * 8, false},
                         {"tc_copy", 1, 64, 2 * 2 * kCopy, false}};
    device_ = tlc::testing::makeEmulatedCudaDevice();
    device_->loadKernels(artifact_);
    rng_.seed(seed_);
    std::printf("inputs from seed %u\n", seed_);  // fresh inputs each run: the seed reproduces a failure
  }
  void TearDown() override {
    for (void *p : buffers_) device_->release(p);
  }

  std::vector<uint16_t> randomBf16(size_t n) {
    std::vector<uint16_t> v(n);
    for (uint16_t &x : v) x = tlc::floatToBf16(static_cast<float>(uniform_(rng_)));
    return v;
  }
  template <typename T> void *upload(const std::vector<T> &v) {
    void *p = device_->alloc(v.size() * sizeof(T));
    device_->upload(p, v.data(), v.size() * sizeof(T));
    buffers_.push_back(p);
    return p;
  }
  void *output(size_t bytes) {
    void *p = device_->alloc(bytes);
    buffers_.push_back(p);
    return p;
  }
  template <typename T> std::vector<T> download(const void *p, size_t n) {
    std::vector<T> v(n);
    device_->download(v.data(), p, n * sizeof(T));
    return v;
  }
  void launch(const std::string &name, const std::vector<void *> &args) {
    for (const art::Kernel &k : artifact_.kernels)
      if (k.name == name) device_->launch(k, args, nullptr, -1, {});
  }

  art::Artifact artifact_;
  std::unique_ptr<tlc::Device> device_;
  std::vector<void *> buffers_;
  const unsigned seed_ = std::random_device{}();
  std::mt19937 rng_;
  std::uniform_real_distribution<double> uniform_{-2.0, 2.0};
};

double bf(uint16_t h) { return tlc::bf16ToFloat(h); }

/// Relative L2 distance of `got` from `want`.
double relativeError(const std::vector<float> &got, const std::vector<double> &want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  return std::sqrt(diff / norm);
}

TEST_F(TensorCoreTest, MmaTilesOverKLoopsMatchAPlainMatmul) {
  // 2 x 2 tcTiles of 16 x 8 on two warps, three k-steps; B both ways round.
  std::vector<uint16_t> a = randomBf16(kM * kK), b = randomBf16(kK * kN), bt(kN * kK);
  for (int k = 0; k < kK; ++k)
    for (int n = 0; n < kN; ++n) bt[n * kK + k] = b[k * kN + n];
  void *c = output(kM * kN * 4), *ct = output(kM * kN * 4);
  launch("tc_matmul", {upload(a), upload(b), upload(bt), c, ct});
  std::vector<double> want(kM * kN, 0.0);
  for (int m = 0; m < kM; ++m)
    for (int n = 0; n < kN; ++n)
      for (int k = 0; k < kK; ++k) want[m * kN + n] += bf(a[m * kK + k]) * bf(b[k * kN + n]);
  // Products of bf16 are exact in f32; the f32 sums of 48 terms round.
  EXPECT_LT(relativeError(download<float>(c, kM * kN), want), 2e-6);
  EXPECT_LT(relativeError(download<float>(ct, kM * kN), want), 2e-6);
}

TEST_F(TensorCoreTest, AccumulatorsFeedTheNextMmaAsBf16) {
  std::vector<uint16_t> a = randomBf16(16 * kK), bt = randomBf16(16 * kK), v = randomBf16(16 * kV);
  void *o = output(16 * kV * 4);
  launch("tc_chain", {upload(a), upload(bt), upload(v), o});
  std::vector<double> want(16 * kV, 0.0);
  for (int m = 0; m < 16; ++m)
    for (int j = 0; j < 16; ++j) {
      double s = 0;
      for (int k = 0; k < kK; ++k) s += bf(a[m * kK + k]) * bf(bt[j * kK + k]);
      const double p = tlc::roundToBf16(static_cast<float>(s));
      for (int n = 0; n < kV; ++n) want[m * kV + n] += p * bf(v[j * kV + n]);
    }
  // A sum rounded to bf16 may land one ulp (2^-8) away from the f64 one's.
  EXPECT_LT(relativeError(download<float>(o, 16 * kV), want), 2e-3);
}

TEST_F(TensorCoreTest, LdmatrixGivesEveryLaneItsDocumentedElements) {
  std::vector<uint16_t> m = randomBf16(32 * 8);
  std::vector<int> rows(32);
  for (int l = 0; l < 32; ++l) rows[l] = (l * 13 + 5) % 32;  // a permutation
  void *out = output(32 * 14 * 4);
  launch("tc_ldmatrix", {upload(m), upload(rows), out});
  std::vector<uint32_t> got = download<uint32_t>(out, 32 * 14);
  // PTX ISA, ldmatrix: lanes 8i..8i+7 address the rows of matrix i; lane l
  // receives row l / 4, columns 2 (l % 4) and 2 (l % 4) + 1 of each matrix
  // (of its transpose with .trans).
  auto element = [&](int matrix, int r, int c) { return m[rows[8 * matrix + r] * 8 + c]; };
  for (int l = 0; l < 32; ++l) {
    const int r = l / 4, c = 2 * (l % 4);
    for (int trans = 0; trans < 2; ++trans) {
      int at = trans ? 7 : 0;
      for (int n : {1, 2, 4})
        for (int i = 0; i < n; ++i, ++at) {
          uint16_t lo = trans ? element(i, c, r) : element(i, r, c);
          uint16_t hi = trans ? element(i, c + 1, r) : element(i, r, c + 1);
          EXPECT_EQ(got[l * 14 + at], lo | static_cast<uint32_t>(hi) << 16)
              << "lane " << l << " x" << n << (trans ? ".trans" : "") << " register " << i;
        }
    }
  }
}

TEST_F(TensorCoreTest, AsyncCopiesLandByTheirGroupsWait) {
  std::vector<uint16_t> x = randomBf16(2 * kCopy);
  void *first = output(kCopy * 2), *second = output(kCopy * 2);
  launch("tc_copy", {upload(x), first, second});
  std::vector<uint16_t> f = download<uint16_t>(first, kCopy), s = download<uint16_t>(second, kCopy);
  for (int e = 0; e < kCopy; ++e) {
    EXPECT_EQ(f[e], e / 8 % 3 == 2 ? 0 : x[e]) << e;  // every third chunk zero-filled
    EXPECT_EQ(s[e], x[kCopy + e]) << e;
  }
}

using tlc::testing::ptxasUsage;

TEST_F(TensorCoreTest, CompilesWithNvrtcForAmpereAndHopperWithoutSpills) {
  std::string why;
  if (!tlc::cuda::nvrtcAvailable(&why)) GTEST_SKIP() << why;
  for (const char *arch : {"sm_80", "sm_90"}) {
    tlc::cuda::Compiled c = tlc::cuda::compileWithNvrtc(testSource(), arch, {"--ptxas-options=-v"});
    ASSERT_TRUE(c.ok) << arch << ":\n" << c.log;
    EXPECT_EQ(c.log.find("warning"), std::string::npos) << arch << ":\n" << c.log;
    auto usage = ptxasUsage(c.log);
    for (const char *kernel : {"tc_matmul", "tc_chain", "tc_ldmatrix", "tc_copy", "fa_forward_64", "fa_grad_64",
                               "fa_forward_128", "fa_grad_128"}) {
      ASSERT_TRUE(usage.count(kernel)) << arch << " " << kernel << ":\n" << c.log;
      EXPECT_EQ(usage[kernel].spillStores + usage[kernel].spillLoads + usage[kernel].stack, 0)
          << arch << " " << kernel << ":\n" << c.log;
      std::printf("%s %s: %d registers, no spills\n", arch, kernel, usage[kernel].registers);
    }
  }
  // f32 artifacts carry the library without using it: no warning either.
  tlc::cuda::Compiled unused = tlc::cuda::compileWithNvrtc(
      library() + "extern \"C\" __global__ void k(float *x) { x[0] = warpSum(x[0]); }\n", "sm_90");
  EXPECT_TRUE(unused.ok && unused.log.find("warning") == std::string::npos) << unused.log;
  // Before sm_80 the primitives trap: the kernels still compile.
  tlc::cuda::Compiled old = tlc::cuda::compileWithNvrtc(testSource(), "sm_75");
  EXPECT_TRUE(old.ok) << old.log;
}

/// A disassembler for cubins (CUDA's cuobjdump or nvdisasm), or "".
std::string findDisassembler() {
  for (const char *dir : {"/usr/local/cuda/bin/", "/usr/bin/"})
    for (const char *tool : {"cuobjdump -sass", "nvdisasm"}) {
      std::string name = std::string(tool).substr(0, std::string(tool).find(' '));
      if (access((dir + name).c_str(), X_OK) == 0) return dir + std::string(tool);
    }
  return "";
}

TEST_F(TensorCoreTest, SassUsesTensorCoresAndLdmatrix) {
  std::string why;
  if (!tlc::cuda::nvrtcAvailable(&why)) GTEST_SKIP() << why;
  const std::string disassembler = findDisassembler();
  if (disassembler.empty()) GTEST_SKIP() << "no cuobjdump or nvdisasm here";
  for (const char *arch : {"sm_80", "sm_90"}) {
    tlc::cuda::Compiled c = tlc::cuda::compileWithNvrtc(testSource(), arch);
    ASSERT_TRUE(c.ok) << c.log;
    const std::string path = ::testing::TempDir() + "tensor-core-" + arch + ".cubin";
    std::ofstream(path, std::ios::binary) << c.cubin;
    FILE *p = popen((disassembler + " " + path + " 2>&1").c_str(), "r");
    std::string sass;
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, p)) sass.append(buf, n);
    pclose(p);
    EXPECT_NE(sass.find("HMMA.16816.F32.BF16"), std::string::npos) << arch;
    EXPECT_NE(sass.find("LDSM"), std::string::npos) << arch;
    EXPECT_NE(sass.find("LDGSTS"), std::string::npos) << arch;  // cp.async
  }
}

}  // namespace
