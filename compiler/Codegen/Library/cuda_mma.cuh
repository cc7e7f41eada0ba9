// tlc generated kernels: tensor-core primitives (CUDA C++, NVRTC)
//
// compiler/Codegen/Library/cuda_mma.cuh: emitted right after cuda_prelude.cuh
// in every CUDA kernel source (embedded into tlc at build time). Warp-wide
// building blocks for bf16 tiles, as inline PTX:
//   mmaBf16         D += A B, m16n8k16, A row-major bf16, B column-major bf16, f32 accumulators
//   ldmatrix<N>     N (1, 2, 4) 8x8 b16 matrices from shared memory into fragments
//   ldmatrixTrans<N> the same, each matrix transposed
//   cpAsync16       a 16-byte global -> shared copy that bypasses registers (and L1)
//   cpAsyncCommit / cpAsyncWait<N>  close a group of copies / wait until at most N groups are in flight
//   loadAcquire / storeRelease      a flag between blocks (gpu scope), spinPause while waiting on one
// Fragment layouts are the PTX ISA's ("Matrix Fragments for mma.m16n8k16",
// "ldmatrix"): with g = lane / 4 and t = lane % 4, a 32-bit register holds two
// bf16 of adjacent columns, the lower column in the low half. The CUDA
// emulator of the tests (tests/unit/CudaEmulator.cpp) implements the same
// functions in C++ from those layouts; host compilers see none of this file.
//
// The instructions need sm_80. Older targets compile (a kernel that uses them
// traps there): tlc picks tensor-core kernels only for bf16, which needs sm_80
// anyway for its arithmetic to be fast.
#ifdef __CUDA_ARCH__
#if __CUDA_ARCH__ >= 800
#define TL_MMA_ASM(...) asm volatile(__VA_ARGS__)
#else
#define TL_MMA_ASM(...) __trap()
#endif
TL_INLINE uint32_t sharedAddress(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }
TL_INLINE void mmaBf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  TL_MMA_ASM("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
             "{%8, %9}, {%0, %1, %2, %3};\n"
             : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
             : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
// Lanes 0-7 give the rows of matrix 0, 8-15 of matrix 1, ... (one 16-byte
// aligned row of 8 b16 each); register i receives matrix i.
template <int N> TL_INLINE void ldmatrix(uint32_t (&r)[N], const void *row) {
  static_assert(N == 1 || N == 2 || N == 4, "ldmatrix loads 1, 2 or 4 matrices");
  if constexpr (N == 1)
    TL_MMA_ASM("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(sharedAddress(row)));
  else if constexpr (N == 2)
    TL_MMA_ASM("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1]) : "r"(sharedAddress(row)));
  else
    TL_MMA_ASM("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(sharedAddress(row)));
}
template <int N> TL_INLINE void ldmatrixTrans(uint32_t (&r)[N], const void *row) {
  static_assert(N == 1 || N == 2 || N == 4, "ldmatrix loads 1, 2 or 4 matrices");
  if constexpr (N == 1)
    TL_MMA_ASM("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(sharedAddress(row)));
  else if constexpr (N == 2)
    TL_MMA_ASM("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1]) : "r"(sharedAddress(row)));
  else
    TL_MMA_ASM("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(sharedAddress(row)));
}
// `valid` false fills the 16 bytes with zeros and reads nothing (ragged
// tiles); `global` must still be a mapped address.
TL_INLINE void cpAsync16(void *shared, const void *global, bool valid = true) {
  TL_MMA_ASM("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
             :: "r"(sharedAddress(shared)), "l"(global), "r"(valid ? 16 : 0) : "memory");
}
TL_INLINE void cpAsyncCommit() { TL_MMA_ASM("cp.async.commit_group;\n" ::: "memory"); }
template <int N> TL_INLINE void cpAsyncWait() { TL_MMA_ASM("cp.async.wait_group %0;\n" :: "n"(N) : "memory"); }
// A block publishes with storeRelease what its threads wrote before a
// __syncthreads and a __threadfence; another block's loadAcquire that sees
// the value sees those writes (read them with __ldcg: L1 is not coherent).
TL_INLINE int loadAcquire(const int *p) {
  int v = 0;
  TL_MMA_ASM("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
  return v;
}
TL_INLINE void storeRelease(int *p, int v) {
  TL_MMA_ASM("st.release.gpu.global.b32 [%0], %1;\n" :: "l"(p), "r"(v) : "memory");
}
TL_INLINE void spinPause() { TL_MMA_ASM("nanosleep.u32 64;\n"); }
#undef TL_MMA_ASM
#endif  // __CUDA_ARCH__
// Two floats as a bf16x2 fragment register (round to nearest even, like f2bf).
TL_INLINE uint32_t packBf16x2(float lo, float hi) { return (uint32_t)f2bf(lo) | ((uint32_t)f2bf(hi) << 16); }
