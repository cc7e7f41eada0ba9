#include "runtime/cuda/driver.h"

#include "runtime/exec/dynlib.h"

namespace tlc::cuda {

const Driver &driver() {
  static const Driver table = [] {
    Driver d;
    std::string tried;
    void *h = openFirstLibrary({"libcuda.so.1", "libcuda.so"}, &tried);
    if (!h) {
      d.error = "cannot load the CUDA driver (libcuda.so.1):" + tried;
      return d;
    }
    std::string e;
    loadSymbol(h, d.init, "cuInit", e);
    loadSymbol(h, d.deviceGet, "cuDeviceGet", e);
    loadSymbol(h, d.deviceCount, "cuDeviceGetCount", e);
    loadSymbol(h, d.attribute, "cuDeviceGetAttribute", e);
    loadSymbol(h, d.name, "cuDeviceGetName", e);
    loadSymbol(h, d.retain, "cuDevicePrimaryCtxRetain", e);
    loadSymbol(h, d.ctxGetCurrent, "cuCtxGetCurrent", e);
    loadSymbol(h, d.setCurrent, "cuCtxSetCurrent", e);
    loadSymbol(h, d.sync, "cuCtxSynchronize", e);
    loadSymbol(h, d.memAlloc, "cuMemAlloc_v2", e);
    loadSymbol(h, d.memFree, "cuMemFree_v2", e);
    loadSymbol(h, d.htod, "cuMemcpyHtoD_v2", e);
    loadSymbol(h, d.dtoh, "cuMemcpyDtoH_v2", e);
    loadSymbol(h, d.memset8, "cuMemsetD8_v2", e);
    loadSymbol(h, d.loadData, "cuModuleLoadData", e);
    loadSymbol(h, d.getFunction, "cuModuleGetFunction", e);
    loadSymbol(h, d.funcSetAttribute, "cuFuncSetAttribute", e);
    loadSymbol(h, d.launch, "cuLaunchKernel", e);
    loadSymbol(h, d.streamCreate, "cuStreamCreate", e);
    loadSymbol(h, d.streamDestroy, "cuStreamDestroy_v2", e);
    loadSymbol(h, d.eventCreate, "cuEventCreate", e);
    loadSymbol(h, d.eventRecord, "cuEventRecord", e);
    loadSymbol(h, d.eventQuery, "cuEventQuery", e);
    loadSymbol(h, d.eventDestroy, "cuEventDestroy_v2", e);
    loadSymbol(h, d.errorString, "cuGetErrorString", e);
    if (!e.empty()) d.error = "the CUDA driver " + e;
    std::string g;
    loadSymbol(h, d.memset8Async, "cuMemsetD8Async", g);
    loadSymbol(h, d.beginCapture, "cuStreamBeginCapture_v2", g);
    loadSymbol(h, d.endCapture, "cuStreamEndCapture", g);
    loadSymbol(h, d.graphInstantiate, "cuGraphInstantiateWithFlags", g);
    loadSymbol(h, d.graphLaunch, "cuGraphLaunch", g);
    loadSymbol(h, d.graphExecDestroy, "cuGraphExecDestroy", g);
    loadSymbol(h, d.graphDestroy, "cuGraphDestroy", g);
    if (!g.empty()) d.graphError = "the CUDA driver " + g;
    return d;
  }();
  return table;
}

}  // namespace tlc::cuda
