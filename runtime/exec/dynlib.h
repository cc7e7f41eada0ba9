// Loading optional libraries (CUDA driver, NVRTC, cuBLASLt, NCCL) with
// dlopen, so that tlrun starts where they are absent.
#pragma once

#include <dlfcn.h>

#include <initializer_list>
#include <string>

namespace tlc {

// The first of `names` that dlopen loads, or null; the reason each failed
// (dlerror names the file) is appended to `tried` on a line of its own.
inline void *openFirstLibrary(std::initializer_list<const char *> names, std::string *tried) {
  for (const char *n : names) {
    if (void *h = dlopen(n, RTLD_NOW | RTLD_LOCAL)) return h;
    *tried += std::string("\n  ") + dlerror();  // dlerror names the file
  }
  return nullptr;
}

// Looks `name` up in `lib` into the function pointer `fn`. On failure `fn`
// is null and, when `missing` is still empty, it becomes "lacks <name>": the
// first absent symbol is the one reported.
template <typename F> bool loadSymbol(void *lib, F &fn, const char *name, std::string &missing) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  if (!fn && missing.empty()) missing = std::string("lacks ") + name;
  return fn != nullptr;
}

}  // namespace tlc
