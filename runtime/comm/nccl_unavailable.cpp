// Built without the CUDA toolkit's headers (nccl.h, cuda.h): NCCL is absent.
#include "runtime/comm/communicator.h"

namespace tlc::comm {

bool ncclAvailable(std::string *why) {
  if (why) *why = "this tlrun was built without the CUDA toolkit (no nccl.h)";
  return false;
}

std::unique_ptr<Communicator> makeNcclCommunicator(const Options &, std::unique_ptr<Communicator>) {
  throw CommError("comm: this tlrun was built without the CUDA toolkit, so it has no NCCL backend");
}

}  // namespace tlc::comm
