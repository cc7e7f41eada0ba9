// NVRTC, loaded with dlopen so that tlrun and tlc
// start where it is absent (no GPU or driver is needed to compile). Types and
// constants come from the toolkit headers; no library is linked.
#pragma once

#include <string>
#include <vector>

namespace tlc::cuda {

// The result of compiling CUDA C++ with NVRTC.
struct Compiled {
  bool ok = false;
  std::string log;    // warnings and errors
  std::string cubin;  // when ok
};

// Whether NVRTC can be loaded here (no GPU or driver needed).
bool nvrtcAvailable(std::string *why = nullptr);

// "major.minor" of the NVRTC found; part of the kernel cache key.
std::string nvrtcVersionString();

// Compiles `source` for `arch` (e.g. "sm_90") with NVRTC; throws
// DeviceError when NVRTC itself cannot be loaded. `extraOptions` follow
// tlc's own (tests pass "--ptxas-options=-v" for register and spill counts).
Compiled compileWithNvrtc(const std::string &source, const std::string &arch,
                          const std::vector<std::string> &extraOptions = {});

}  // namespace tlc::cuda
