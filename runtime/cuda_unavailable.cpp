// Built without the CUDA toolkit headers: the CUDA device and NVRTC report
// that clearly instead of failing to link.
#include "runtime/cuda_api.h"
#include "runtime/device.h"

namespace tlc {
std::unique_ptr<Device> makeCudaDevice(int) {
  throw DeviceError("this tlrun was built without the CUDA toolkit headers");
}
namespace cuda {
bool nvrtcAvailable(std::string *why) {
  if (why) *why = "built without the CUDA toolkit headers";
  return false;
}
std::string nvrtcVersionString() { throw DeviceError("built without the CUDA toolkit headers"); }
Compiled compileWithNvrtc(const std::string &, const std::string &) {
  throw DeviceError("built without the CUDA toolkit headers");
}
}  // namespace cuda
}  // namespace tlc
