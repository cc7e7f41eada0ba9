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
