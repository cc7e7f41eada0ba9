// Built without the CUDA toolkit headers: the CUDA device reports that
// clearly instead of failing to link.
#include "runtime/exec/device.h"

namespace tlc {
std::unique_ptr<Device> makeCudaDevice(int) {
  throw DeviceError("this tlrun was built without the CUDA toolkit headers");
}
}  // namespace tlc
