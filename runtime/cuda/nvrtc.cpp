#include "runtime/cuda/nvrtc.h"

#include <dlfcn.h>
#include <nvrtc.h>

#include <vector>

#include "runtime/exec/device.h"
#include "runtime/exec/dynlib.h"

namespace tlc::cuda {
namespace {

struct Nvrtc {
  decltype(&nvrtcCreateProgram) create = nullptr;
  decltype(&nvrtcCompileProgram) compile = nullptr;
  decltype(&nvrtcGetProgramLogSize) logSize = nullptr;
  decltype(&nvrtcGetProgramLog) log = nullptr;
  decltype(&nvrtcGetCUBINSize) cubinSize = nullptr;
  decltype(&nvrtcGetCUBIN) cubin = nullptr;
  decltype(&nvrtcDestroyProgram) destroy = nullptr;
  decltype(&nvrtcVersion) version = nullptr;
  std::string error;
};

const Nvrtc &nvrtc() {
  static Nvrtc api = [] {
    Nvrtc a;
    std::string tried;
    void *h = openFirstLibrary({"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so",
                         "/usr/local/cuda/lib64/libnvrtc.so"},
                        &tried);
    if (!h) {
      a.error = "NVRTC not found:" + tried;
      return a;
    }
    std::string missing;
    loadSymbol(h, a.create, "nvrtcCreateProgram", missing);
    loadSymbol(h, a.compile, "nvrtcCompileProgram", missing);
    loadSymbol(h, a.logSize, "nvrtcGetProgramLogSize", missing);
    loadSymbol(h, a.log, "nvrtcGetProgramLog", missing);
    loadSymbol(h, a.cubinSize, "nvrtcGetCUBINSize", missing);
    loadSymbol(h, a.cubin, "nvrtcGetCUBIN", missing);
    loadSymbol(h, a.destroy, "nvrtcDestroyProgram", missing);
    loadSymbol(h, a.version, "nvrtcVersion", missing);
    if (!missing.empty()) a.error = "NVRTC " + missing;
    return a;
  }();
  return api;
}

}  // namespace

bool nvrtcAvailable(std::string *why) {
  if (why) *why = nvrtc().error;
  return nvrtc().error.empty();
}

std::string nvrtcVersionString() {
  const Nvrtc &api = nvrtc();
  if (!api.error.empty()) throw DeviceError(api.error);
  int major = 0, minor = 0;
  api.version(&major, &minor);
  return std::to_string(major) + "." + std::to_string(minor);
}

Compiled compileWithNvrtc(const std::string &source, const std::string &arch,
                          const std::vector<std::string> &extraOptions) {
  const Nvrtc &api = nvrtc();
  if (!api.error.empty()) throw DeviceError(api.error);
  nvrtcProgram prog;
  if (api.create(&prog, source.c_str(), "tlc_kernels.cu", 0, nullptr, nullptr) != NVRTC_SUCCESS)
    throw DeviceError("nvrtcCreateProgram failed");
  std::string archOpt = "--gpu-architecture=" + arch;
  std::vector<const char *> opts = {archOpt.c_str(), "--std=c++17", "-default-device"};
  for (const std::string &o : extraOptions) opts.push_back(o.c_str());
  nvrtcResult r = api.compile(prog, static_cast<int>(opts.size()), opts.data());
  Compiled out;
  size_t n = 0;
  api.logSize(prog, &n);
  std::vector<char> log(n + 1, '\0');
  if (n) api.log(prog, log.data());
  out.log = log.data();
  out.ok = r == NVRTC_SUCCESS;
  if (out.ok) {
    api.cubinSize(prog, &n);
    out.cubin.resize(n);
    api.cubin(prog, out.cubin.data());
  }
  api.destroy(&prog);
  return out;
}

}  // namespace tlc::cuda
