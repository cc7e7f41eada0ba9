// tlc generated kernels: CPU C++
//
// compiler/Codegen/Library/cpu_prelude.h: emitted first in every CPU kernel
// library (embedded into tlc at build time). Helpers the CUDA prelude
// (cuda_prelude.cuh) defines with the same names, so kernel bodies are
// target-neutral: bf16 <-> float with round-to-nearest-even, TL_FAIL,
// TL_INF, TL_INLINE, TL_CONST. Plain C++ for the system compiler; CI
// compiles it on its own (tests/kernels/).
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
