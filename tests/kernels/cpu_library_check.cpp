// The CPU kernel library compiled on its own, the way a kernel library
// starts (cpu_prelude.h, then cpu_library.h), with warnings as errors, and
// its helpers checked against libm and bf16's definition: a mistake in
// these files shows here, not as a kernel that fails to JIT at run time.
#include <cmath>
#include <cstdio>

#include "compiler/Codegen/Library/cpu_prelude.h"
#include "compiler/Codegen/Library/cpu_library.h"

// Every template of the library instantiated (both masks), so all of it is
// type-checked, not only what a model happens to use.
template struct TlAttention<2, 1, 5, 5, 8, true>;
template struct TlAttention<4, 2, 3, 7, 16, false>;

static int failures = 0;
static void expect(bool ok, const char *what, double got, double want) {
  if (ok) return;
  std::printf("FAIL %s: got %.9g, want %.9g\n", what, got, want);
  ++failures;
}

int main() {
  // tl_expf (the library redefines expf): relative error ~1e-7 over the
  // finite range, exact limits.
  for (float x = -87.0f; x <= 88.0f; x += 0.0137f) {
    double want = std::exp((double)x), got = tl_expf(x);
    expect(std::fabs(got - want) <= 4e-7 * want, "tl_expf", got, want);
  }
  expect(tl_expf(-INFINITY) == 0.0f, "tl_expf(-inf)", tl_expf(-INFINITY), 0);
  expect(std::isinf(tl_expf(INFINITY)), "tl_expf(inf)", tl_expf(INFINITY), INFINITY);
  expect(std::isnan(tl_expf(NAN)), "tl_expf(nan)", tl_expf(NAN), NAN);
  // bf16: round to nearest even, NaN stays NaN.
  expect(f2bf(1.0f) == 0x3f80, "f2bf(1)", f2bf(1.0f), 0x3f80);
  expect(bf2f(f2bf(1.00390625f)) == 1.0f, "tie to even down", bf2f(f2bf(1.00390625f)), 1.0);
  expect(bf2f(f2bf(1.01171875f)) == 1.015625f, "tie to even up", bf2f(f2bf(1.01171875f)), 1.015625);
  expect(std::isnan(bf2f(f2bf(NAN))), "bf16 nan", bf2f(f2bf(NAN)), NAN);
  if (failures == 0) std::printf("cpu kernel library: ok\n");
  return failures == 0 ? 0 : 1;
}
