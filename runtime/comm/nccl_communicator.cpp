// The NCCL communicator: one process per GPU, device buffers. libnccl.so.2
// and the CUDA driver are loaded with dlopen (like the rest of the CUDA
// runtime), so tlrun starts where neither exists. The NCCL unique id goes
// from rank 0 to the others over the MPI bootstrap communicator, which also
// carries the liveness queries behind the timeout.
//
// Collectives run on the communicator's own stream, created blocking, so
// they are ordered after (and before) the work on the legacy default stream
// where the CUDA device launches kernels. The communicator is non-blocking
// (ncclConfig_t::blocking = 0): every wait polls NCCL's state and a CUDA
// event against the deadline, and on timeout aborts NCCL and ends the job
// naming the ranks that did not arrive.
#include <cuda.h>
#include <dlfcn.h>
#include <nccl.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "runtime/comm/comm_common.h"
#include "runtime/cuda/driver.h"
#include "runtime/exec/dynlib.h"

namespace tlc::comm {
namespace {

struct NcclApi {
  decltype(&ncclGetVersion) getVersion = nullptr;
  decltype(&ncclGetUniqueId) getUniqueId = nullptr;
  decltype(&ncclCommInitRankConfig) initRankConfig = nullptr;
  decltype(&ncclCommGetAsyncError) asyncError = nullptr;
  decltype(&ncclCommAbort) abort = nullptr;
  decltype(&ncclCommFinalize) finalize = nullptr;
  decltype(&ncclCommDestroy) destroy = nullptr;
  decltype(&ncclGetErrorString) errorString = nullptr;
  decltype(&ncclAllReduce) allReduce = nullptr;
  decltype(&ncclReduceScatter) reduceScatter = nullptr;
  decltype(&ncclAllGather) allGather = nullptr;
  decltype(&ncclBroadcast) broadcast = nullptr;
  decltype(&ncclReduce) reduce = nullptr;
  std::string error;
};

const NcclApi &nccl() {
  static NcclApi api = [] {
    NcclApi a;
    std::string tried;
    void *h = openFirstLibrary({"libnccl.so.2", "/usr/local/cuda/lib64/libnccl.so.2", "/usr/local/cuda/lib/libnccl.so.2"},
                        &tried);
    if (!h) {
      a.error = "cannot load NCCL (libnccl.so.2):" + tried;
      return a;
    }
    std::string e;
    loadSymbol(h, a.getVersion, "ncclGetVersion", e);
    loadSymbol(h, a.getUniqueId, "ncclGetUniqueId", e);
    loadSymbol(h, a.initRankConfig, "ncclCommInitRankConfig", e);
    loadSymbol(h, a.asyncError, "ncclCommGetAsyncError", e);
    loadSymbol(h, a.abort, "ncclCommAbort", e);
    loadSymbol(h, a.finalize, "ncclCommFinalize", e);
    loadSymbol(h, a.destroy, "ncclCommDestroy", e);
    loadSymbol(h, a.errorString, "ncclGetErrorString", e);
    loadSymbol(h, a.allReduce, "ncclAllReduce", e);
    loadSymbol(h, a.reduceScatter, "ncclReduceScatter", e);
    loadSymbol(h, a.allGather, "ncclAllGather", e);
    loadSymbol(h, a.broadcast, "ncclBroadcast", e);
    loadSymbol(h, a.reduce, "ncclReduce", e);
    if (!e.empty()) a.error = "NCCL " + e + " (version 2.14 or later is needed)";
    return a;
  }();
  return api;
}

// NCCL runs on the CUDA device's driver table (runtime/cuda/driver.h).
const cuda::Driver &cudaDriver() { return cuda::driver(); }

void checkCu(CUresult r, const char *what) {
  if (r == CUDA_SUCCESS) return;
  const char *s = nullptr;
  cudaDriver().errorString(r, &s);
  throw CommError(std::string("comm: nccl: ") + what + ": " + (s ? s : "unknown CUDA error"));
}

ncclDataType_t ncclType(DType d) {
  switch (d) {
    case DType::F32: return ncclFloat32;
    case DType::BF16: return ncclBfloat16;
    case DType::U8: return ncclUint8;
  }
  return ncclUint8;
}

class NcclCommunicator;

class NcclWork : public Work {
 public:
  NcclWork(NcclCommunicator &comm, const Collective &c, uint64_t seq, CUevent done)
      : comm_(comm), c_(c), seq_(seq), done_(done) {}
  ~NcclWork() override;
  void wait() override;

 private:
  NcclCommunicator &comm_;
  Collective c_;
  uint64_t seq_;
  CUevent done_;
  bool finished_ = false;
};

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(const Options &o, std::unique_ptr<Communicator> bootstrap)
      : timeout_(o.timeoutSeconds), bootstrap_(std::move(bootstrap)) {
    const NcclApi &n = nccl();
    if (!n.error.empty()) throw CommError("comm: " + n.error);
    const cuda::Driver &cu = cudaDriver();
    if (!cu.error.empty()) throw CommError("comm: NCCL needs a CUDA GPU, and " + cu.error);
    if (bootstrap_ && bootstrap_->deviceBuffers())
      throw CommError("comm: nccl: the bootstrap communicator must use host buffers");
    rank_ = bootstrap_ ? bootstrap_->rank() : 0;
    size_ = bootstrap_ ? bootstrap_->size() : 1;

    // Use the caller's context (the CUDA device's); else the primary context
    // of the GPU numbered by the node-local rank.
    CUcontext ctx = nullptr;
    if (cu.ctxGetCurrent(&ctx) != CUDA_SUCCESS || !ctx) {
      checkCu(cu.init(0), "cuInit");
      int count = 0;
      checkCu(cu.deviceCount(&count), "cuDeviceGetCount");
      if (count == 0) throw CommError("comm: nccl: no CUDA GPU is visible");
      CUdevice dev;
      checkCu(cu.deviceGet(&dev, detectLaunch().localRank % count), "cuDeviceGet");
      checkCu(cu.retain(&ctx, dev), "cuDevicePrimaryCtxRetain");
      checkCu(cu.setCurrent(ctx), "cuCtxSetCurrent");
    }
    checkCu(cu.streamCreate(&stream_, CU_STREAM_DEFAULT), "cuStreamCreate");
    CUdeviceptr scratch;
    checkCu(cu.memAlloc(&scratch, 4), "cuMemAlloc");
    scratch_ = reinterpret_cast<void *>(scratch);

    ncclUniqueId id;
    if (rank_ == 0) checkNccl(n.getUniqueId(&id), "ncclGetUniqueId");
    if (bootstrap_) bootstrap_->broadcast(&id, sizeof id, DType::U8, 0);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ++seq_;
    ncclResult_t r = n.initRankConfig(&comm_, size_, id, rank_, &config);
    if (r != ncclSuccess && r != ncclInProgress) checkNccl(r, "ncclCommInitRankConfig");
    waitNccl(Collective{}, seq_, deadlineAfter(timeout_), "ncclCommInitRank");
    int v = 0;
    n.getVersion(&v);
    version_ = std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
  }

  ~NcclCommunicator() override {
    if (comm_) {
      // A non-blocking communicator finalizes asynchronously; give it the
      // timeout, then free it either way (destructors do not throw).
      const NcclApi &n = nccl();
      ncclResult_t state = n.finalize(comm_);
      Clock::time_point deadline = deadlineAfter(timeout_);
      Backoff backoff;
      while (state == ncclInProgress && Clock::now() < deadline) {
        backoff.pause();
        if (n.asyncError(comm_, &state) != ncclSuccess) break;
      }
      state == ncclSuccess ? n.destroy(comm_) : n.abort(comm_);
    }
    if (stream_) cudaDriver().streamDestroy(stream_);
    if (scratch_) cudaDriver().memFree(reinterpret_cast<CUdeviceptr>(scratch_));
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool deviceBuffers() const override { return true; }
  std::string describe() const override {
    return "nccl " + version_ + " (" + std::to_string(size_) + (size_ == 1 ? " rank" : " ranks") +
           (bootstrap_ ? ", bootstrapped over " + bootstrap_->describe() : "") + ")";
  }

  std::unique_ptr<Work> start(const Collective &c) override {
    checkCollective(c, size_);
    const NcclApi &n = nccl();
    ncclDataType_t t = ncclType(c.dtype);
    uint64_t seq = ++seq_;
    ncclResult_t r = ncclSuccess;
    switch (c.op) {
      case Op::AllReduce: r = n.allReduce(c.send, c.recv, c.count, t, ncclSum, comm_, stream()); break;
      case Op::ReduceScatter: r = n.reduceScatter(c.send, c.recv, c.count, t, ncclSum, comm_, stream()); break;
      case Op::AllGather: r = n.allGather(c.send, c.recv, c.count, t, comm_, stream()); break;
      case Op::Broadcast: r = n.broadcast(c.send, c.recv, c.count, t, c.root, comm_, stream()); break;
      case Op::Reduce: r = n.reduce(c.send, c.recv, c.count, t, ncclSum, c.root, comm_, stream()); break;
      case Op::Barrier: r = n.allReduce(scratch_, scratch_, 1, ncclFloat32, ncclSum, comm_, stream()); break;
    }
    if (r != ncclSuccess && r != ncclInProgress) checkNccl(r, opName(c.op));
    waitNccl(c, seq, deadlineAfter(timeout_), opName(c.op));  // the enqueue itself
    CUevent done;
    checkCu(cudaDriver().eventCreate(&done, CU_EVENT_DISABLE_TIMING), "cuEventCreate");
    checkCu(cudaDriver().eventRecord(done, stream_), "cuEventRecord");
    return std::make_unique<NcclWork>(*this, c, seq, done);
  }

  // Polls until the GPU passed `done` (or the deadline passed).
  void waitEvent(CUevent done, const Collective &c, uint64_t seq) {
    Clock::time_point deadline = deadlineAfter(timeout_);
    Backoff backoff;
    for (;;) {
      CUresult r = cudaDriver().eventQuery(done);
      if (r == CUDA_SUCCESS) return;
      if (r != CUDA_ERROR_NOT_READY) checkCu(r, "cuEventQuery");
      pollAsyncError(opName(c.op));
      if (bootstrap_) bootstrap_->answerPeers(seq, c.op);
      if (Clock::now() > deadline) timedOut(describeCollective(c), seq);
      backoff.pause();
    }
  }

  Communicator &host() override { return bootstrap_ ? *bootstrap_ : *single_; }

  void answerPeers(uint64_t seq, Op op) override {
    if (bootstrap_) bootstrap_->answerPeers(seq, op);
  }
  [[noreturn]] void abortOnTimeout(const std::string &what, uint64_t seq, double timeoutSeconds) override {
    if (bootstrap_) bootstrap_->abortOnTimeout(what, seq, timeoutSeconds);
    Communicator::abortOnTimeout(what, seq, timeoutSeconds);
  }

 private:
  CUstream stream() const { return stream_; }

  [[noreturn]] void timedOut(const std::string &what, uint64_t seq) {
    nccl().abort(comm_);  // frees the GPU from kernels waiting on the missing peer
    comm_ = nullptr;
    abortOnTimeout(what, seq, timeout_);
  }

  void checkNccl(ncclResult_t r, const char *what) {
    if (r == ncclSuccess) return;
    throw CommError("comm: rank " + std::to_string(rank_) + ": nccl: " + what + ": " + nccl().errorString(r));
  }

  void pollAsyncError(const char *what) {
    ncclResult_t state = ncclSuccess;
    nccl().asyncError(comm_, &state);
    if (state != ncclSuccess && state != ncclInProgress) checkNccl(state, what);
  }

  // A non-blocking communicator returns ncclInProgress until an operation
  // (init, or enqueueing a collective) is done on the host side.
  void waitNccl(const Collective &c, uint64_t seq, Clock::time_point deadline, const char *what) {
    Backoff backoff;
    for (;;) {
      ncclResult_t state = ncclInProgress;
      checkNccl(nccl().asyncError(comm_, &state), what);
      if (state == ncclSuccess) return;
      if (state != ncclInProgress) checkNccl(state, what);
      if (bootstrap_) bootstrap_->answerPeers(seq, c.op);
      if (Clock::now() > deadline) timedOut(what, seq);
      backoff.pause();
    }
  }

  double timeout_;
  std::unique_ptr<Communicator> bootstrap_;
  std::unique_ptr<Communicator> single_ = makeSingleCommunicator();  // host() of a one-rank job
  int rank_ = 0, size_ = 1;
  uint64_t seq_ = 0;
  ncclComm_t comm_ = nullptr;
  CUstream stream_ = nullptr;
  void *scratch_ = nullptr;
  std::string version_;
};

NcclWork::~NcclWork() {
  // NCCL may still write into the buffers. A destructor must not throw
  // (this one may run while an exception unwinds): a failed wait is reported
  // by whoever waits next, and the job is ending anyway.
  try {
    if (!finished_) wait();
  } catch (const std::exception &e) {
    std::fprintf(stderr, "comm: %s (while abandoning a collective)\n", e.what());
  }
  cudaDriver().eventDestroy(done_);
}

void NcclWork::wait() {
  if (finished_) return;
  comm_.waitEvent(done_, c_, seq_);
  finished_ = true;
}

}  // namespace

bool ncclAvailable(std::string *why) {
  if (why) *why = nccl().error;
  return nccl().error.empty();
}

std::unique_ptr<Communicator> makeNcclCommunicator(const Options &o, std::unique_ptr<Communicator> bootstrap) {
  return std::make_unique<NcclCommunicator>(o, std::move(bootstrap));
}

}  // namespace tlc::comm
