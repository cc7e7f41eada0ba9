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

}  // namespace tlc
