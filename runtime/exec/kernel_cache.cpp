// Where JIT-compiled kernels are kept, and what their keys hold.
#include "runtime/exec/kernel_cache.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "runtime/exec/device.h"

namespace tlc {

std::string runCommand(const std::string &cmd, int *status) {
  std::string out;
  FILE *p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) throw DeviceError("cannot run: " + cmd);
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  *status = pclose(p);
  return out;
}

std::string resolvedCpuTarget(const std::string &cxx) {
  // `-###` prints the compiler proper's command line with -march=native
  // expanded (GCC: -march=<cpu>, -mtune and every -m<feature>/-mno-<feature>;
  // Clang: -target-cpu and -target-feature). Only those words are kept: the
  // line also names temporary files, which differ on every call.
  int status = 0;
  std::string out = runCommand(cxx + " -march=native -### -x c++ -c /dev/null -o /dev/null", &status);
  if (status != 0) throw DeviceError("cannot resolve -march=native with " + cxx + ":\n" + out);
  std::string target, word;
  bool takeNext = false, resolved = false;
  std::istringstream words(out);
  while (words >> word) {
    word.erase(std::remove(word.begin(), word.end(), '"'), word.end());
    word.erase(std::remove(word.begin(), word.end(), '\''), word.end());
    if (word == "-march=native") continue;  // the driver's echo of our own flag
    bool keep = takeNext || word.rfind("-m", 0) == 0;
    takeNext = word == "-target-cpu" || word == "-target-feature";
    resolved |= word.rfind("-march=", 0) == 0 || word == "-target-cpu";
    if (keep || takeNext) target += word + " ";
  }
  if (!resolved) throw DeviceError(cxx + " -### does not show the CPU -march=native resolves to:\n" + out);
  return target;
}

std::string kernelCacheDir() {
  std::string dir;
  if (const char *d = std::getenv("TLC_CACHE_DIR")) dir = d;
  else if (const char *x = std::getenv("XDG_CACHE_HOME")) dir = std::string(x) + "/tlc";
  else dir = std::string(std::getenv("HOME") ? std::getenv("HOME") : "/tmp") + "/.cache/tlc";
  std::string partial;
  for (size_t i = 0; i <= dir.size(); ++i) {  // mkdir -p
    if (i == dir.size() || dir[i] == '/') {
      if (!partial.empty()) mkdir(partial.c_str(), 0755);
    }
    if (i < dir.size()) partial += dir[i];
  }
  return dir;
}

}  // namespace tlc
