// The kernel cache both devices share: compiled CPU libraries and CUDA
// cubins, named by a hash of everything that decides the binary.
#pragma once

#include <string>

namespace tlc {

// The cache directory, created when missing: $TLC_CACHE_DIR, else
// $XDG_CACHE_HOME/tlc, else ~/.cache/tlc.
std::string kernelCacheDir();

// The words of `cxx -march=native -###` naming the CPU and features this
// machine's kernels are built for: part of the CPU kernel cache key, so
// nodes with different CPUs sharing one cache never load each other's
// libraries (SIGILL).
std::string resolvedCpuTarget(const std::string &cxx);

// Runs `cmd` through the shell with stderr joined to stdout; returns the
// output and sets `status` (pclose's). Throws DeviceError when it cannot start.
std::string runCommand(const std::string &cmd, int *status);

}  // namespace tlc
