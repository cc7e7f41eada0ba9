// Built without the CUDA toolkit headers: NVRTC reports that clearly
// instead of failing to link.
#include "runtime/cuda/nvrtc.h"
#include "runtime/exec/device.h"

namespace tlc::cuda {
bool nvrtcAvailable(std::string *why) {
  if (why) *why = "built without the CUDA toolkit headers";
  return false;
}
std::string nvrtcVersionString() { throw DeviceError("built without the CUDA toolkit headers"); }
Compiled compileWithNvrtc(const std::string &, const std::string &) {
  throw DeviceError("built without the CUDA toolkit headers");
}
}  // namespace tlc::cuda
