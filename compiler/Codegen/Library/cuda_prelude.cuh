// tlc generated kernels: CUDA C++ (NVRTC)
//
// compiler/Codegen/Library/cuda_prelude.cuh: emitted first in every CUDA
// kernel source (embedded into tlc at build time) and compiled by NVRTC at
// load time, so it includes no header. The same helper names as
// cpu_prelude.h, plus the warp reductions and a bf16 atomic add. CI compiles
// it on its own with NVRTC (CodegenTest.CudaPreludeCompilesOnItsOwn).
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
// Row kernels (one block per row): 16-byte global accesses and block
// reductions. A thread holds N consecutive elements of a row in floats;
// tlLoad/tlStore move them in words of up to 16 bytes, so `p` must be
// aligned to that width: the generators use N > 1 only where every row of
// every tensor they touch starts so aligned (the arena and the flat buffers
// align tensors to 256 bytes). The emulator checks the alignment.
#ifndef TL_CHECK_ALIGNED
#define TL_CHECK_ALIGNED(p, bytes)
#endif
template <int W> struct alignas(4 * W) TlWords { uint32_t w[W]; };
template <int N> TL_INLINE void tlLoad(float (&f)[N], const float *p) {
  constexpr int W = N < 4 ? N : 4;
  TL_CHECK_ALIGNED(p, 4 * W);
#pragma unroll
  for (int c = 0; c < N / W; ++c) {
    const TlWords<W> v = reinterpret_cast<const TlWords<W> *>(p)[c];
#pragma unroll
    for (int i = 0; i < W; ++i) f[c * W + i] = __uint_as_float(v.w[i]);
  }
}
template <int N> TL_INLINE void tlStore(float *p, const float (&f)[N]) {
  constexpr int W = N < 4 ? N : 4;
  TL_CHECK_ALIGNED(p, 4 * W);
#pragma unroll
  for (int c = 0; c < N / W; ++c) {
    TlWords<W> v;
#pragma unroll
    for (int i = 0; i < W; ++i) v.w[i] = __float_as_uint(f[c * W + i]);
    reinterpret_cast<TlWords<W> *>(p)[c] = v;
  }
}
template <int N> TL_INLINE void tlLoad(float (&f)[N], const uint16_t *p) {
  if constexpr (N == 1) {
    f[0] = bf2f(p[0]);
  } else {
    constexpr int W = N / 2 < 4 ? N / 2 : 4;  // words of two bf16
    TL_CHECK_ALIGNED(p, 4 * W);
#pragma unroll
    for (int c = 0; c < N / (2 * W); ++c) {
      const TlWords<W> v = reinterpret_cast<const TlWords<W> *>(p)[c];
#pragma unroll
      for (int i = 0; i < W; ++i) {
        f[2 * (c * W + i)] = bf2f((uint16_t)(v.w[i] & 0xffffu));
        f[2 * (c * W + i) + 1] = bf2f((uint16_t)(v.w[i] >> 16));
      }
    }
  }
}
template <int N> TL_INLINE void tlStore(uint16_t *p, const float (&f)[N]) {
  if constexpr (N == 1) {
    p[0] = f2bf(f[0]);
  } else {
    constexpr int W = N / 2 < 4 ? N / 2 : 4;
    TL_CHECK_ALIGNED(p, 4 * W);
#pragma unroll
    for (int c = 0; c < N / (2 * W); ++c) {
      TlWords<W> v;
#pragma unroll
      for (int i = 0; i < W; ++i)
        v.w[i] = (uint32_t)f2bf(f[2 * (c * W + i)]) | ((uint32_t)f2bf(f[2 * (c * W + i) + 1]) << 16);
      reinterpret_cast<TlWords<W> *>(p)[c] = v;
    }
  }
}
// The sum (max) of v over the block, the same value in every thread: a
// fixed order (warps, then the warp sums), so it is deterministic. `red`
// holds 32 floats of shared memory; blockDim.x is a multiple of 32 and every
// thread of the block calls it.
TL_INLINE float blockSum(float v, float *red) {
  v = warpSum(v);
  __syncthreads();  // an earlier call's readers are done with red
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
  __syncthreads();
  return warpSum(threadIdx.x % 32 < blockDim.x / 32 ? red[threadIdx.x % 32] : 0.0f);
}
TL_INLINE float blockMax(float v, float *red) {
  v = warpMax(v);
  __syncthreads();
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
  __syncthreads();
  return warpMax(threadIdx.x % 32 < blockDim.x / 32 ? red[threadIdx.x % 32] : -TL_INF);
}
