// The CUDA driver API, loaded once with dlopen: one table for the CUDA
// device and NCCL's communicator, so tlrun starts where no driver exists.
// Types come from the toolkit's cuda.h; nothing is linked.
#pragma once

#include <cuda.h>

#include <string>

namespace tlc::cuda {

struct Driver {
  decltype(&cuInit) init = nullptr;
  decltype(&cuDeviceGet) deviceGet = nullptr;
  decltype(&cuDeviceGetCount) deviceCount = nullptr;
  decltype(&cuDeviceGetAttribute) attribute = nullptr;
  decltype(&cuDeviceGetName) name = nullptr;
  decltype(&cuDevicePrimaryCtxRetain) retain = nullptr;
  decltype(&cuCtxGetCurrent) ctxGetCurrent = nullptr;
  decltype(&cuCtxSetCurrent) setCurrent = nullptr;
  decltype(&cuCtxSynchronize) sync = nullptr;
  decltype(&cuMemAlloc) memAlloc = nullptr;
  decltype(&cuMemFree) memFree = nullptr;
  decltype(&cuMemcpyHtoD) htod = nullptr;
  decltype(&cuMemcpyDtoH) dtoh = nullptr;
  decltype(&cuMemsetD8) memset8 = nullptr;
  decltype(&cuModuleLoadData) loadData = nullptr;
  decltype(&cuModuleGetFunction) getFunction = nullptr;
  decltype(&cuFuncSetAttribute) funcSetAttribute = nullptr;
  decltype(&cuLaunchKernel) launch = nullptr;
  decltype(&cuStreamCreate) streamCreate = nullptr;
  decltype(&cuStreamDestroy) streamDestroy = nullptr;
  decltype(&cuEventCreate) eventCreate = nullptr;
  decltype(&cuEventRecord) eventRecord = nullptr;
  decltype(&cuEventQuery) eventQuery = nullptr;
  decltype(&cuEventDestroy) eventDestroy = nullptr;
  decltype(&cuGetErrorString) errorString = nullptr;
  // Empty when every entry point loaded; else why not (the files tried, or
  // the first missing symbol).
  std::string error;
  // CUDA graphs, optional: without them the device runs kernel by kernel,
  // and graphError says which symbol is missing.
  decltype(&cuMemsetD8Async) memset8Async = nullptr;
  decltype(&cuStreamBeginCapture_v2) beginCapture = nullptr;
  decltype(&cuStreamEndCapture) endCapture = nullptr;
  decltype(&cuGraphInstantiateWithFlags) graphInstantiate = nullptr;
  decltype(&cuGraphLaunch) graphLaunch = nullptr;
  decltype(&cuGraphExecDestroy) graphExecDestroy = nullptr;
  decltype(&cuGraphDestroy) graphDestroy = nullptr;
  std::string graphError;
};

// The process's driver table, loaded on first use.
const Driver &driver();

}  // namespace tlc::cuda
