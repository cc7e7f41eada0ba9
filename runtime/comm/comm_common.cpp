#include "runtime/comm/comm_common.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "formats/half.h"

namespace tlc::comm {

size_t dtypeSize(DType d) {
  switch (d) {
    case DType::F32: return 4;
    case DType::BF16: return 2;
    case DType::U8: return 1;
  }
  return 0;
}

const char *dtypeName(DType d) {
  switch (d) {
    case DType::F32: return "f32";
    case DType::BF16: return "bf16";
    case DType::U8: return "u8";
  }
  return "?";
}

const char *opName(Op op) {
  switch (op) {
    case Op::AllReduce: return "allReduce";
    case Op::ReduceScatter: return "reduceScatter";
    case Op::AllGather: return "allGather";
    case Op::Broadcast: return "broadcast";
    case Op::Reduce: return "reduce";
    case Op::Barrier: return "barrier";
  }
  return "?";
}

void sumBlocksInOrder(const void *in, size_t stride, int n, void *out, size_t count, DType d) {
  if (d == DType::F32) {
    // `out` never overlaps `in` (the blocks are a receive buffer).
    const float *x = static_cast<const float *>(in);
    float *y = static_cast<float *>(out);
    std::memcpy(y, x, count * 4);
    for (int r = 1; r < n; ++r)
      for (size_t i = 0; i < count; ++i) y[i] += x[r * stride + i];
  } else if (d == DType::BF16) {
    const uint16_t *x = static_cast<const uint16_t *>(in);
    std::vector<float> acc(count);
    for (size_t i = 0; i < count; ++i) acc[i] = bf16ToFloat(x[i]);
    for (int r = 1; r < n; ++r)
      for (size_t i = 0; i < count; ++i) acc[i] += bf16ToFloat(x[r * stride + i]);
    uint16_t *y = static_cast<uint16_t *>(out);
    for (size_t i = 0; i < count; ++i) y[i] = floatToBf16(acc[i]);
  } else {
    throw CommError("comm: sums are defined on f32 and bf16, not u8");
  }
}

void checkCollective(const Collective &c, int size) {
  bool sums = c.op == Op::AllReduce || c.op == Op::ReduceScatter || c.op == Op::Reduce;
  if (sums && c.dtype == DType::U8)
    throw CommError(std::string("comm: ") + opName(c.op) + " sums f32 or bf16, not u8");
  if ((c.op == Op::Broadcast || c.op == Op::Reduce) && (c.root < 0 || c.root >= size))
    throw CommError(std::string("comm: ") + opName(c.op) + " root " + std::to_string(c.root) +
                    " is not a rank of this " + std::to_string(size) + "-rank job");
  if ((c.op == Op::AllReduce || c.op == Op::Broadcast) && c.send != c.recv)
    throw CommError(std::string("comm: ") + opName(c.op) + " works in place (send == recv)");
  if (c.op != Op::Barrier && c.count > 0 && (!c.send || !c.recv))
    throw CommError(std::string("comm: ") + opName(c.op) + " of " + std::to_string(c.count) +
                    " elements with a null buffer");
}

std::string describeCollective(const Collective &c) {
  if (c.op == Op::Barrier) return "barrier";
  std::string s = std::string(opName(c.op)) + " of " + std::to_string(c.count) + " " + dtypeName(c.dtype);
  if (c.op == Op::Broadcast || c.op == Op::Reduce) s += " (root " + std::to_string(c.root) + ")";
  return s;
}

void Backoff::pause() {
  if (++spins_ < 64) return;
  int us = std::min(200, (spins_ - 64) / 16 + 1);
  std::this_thread::sleep_for(std::chrono::microseconds(us));
}

// Here rather than in communicator.cpp: the MPI plugin links this file and
// needs Communicator's vtable, which goes with this first non-inline virtual.
void Communicator::abortOnTimeout(const std::string &what, uint64_t seq, double timeoutSeconds) {
  std::string msg = timeoutMessage(rank(), what, seq, timeoutSeconds, "no peer could be asked why");
  std::fprintf(stderr, "%s\n", msg.c_str());
  std::fflush(stderr);
  std::_Exit(3);
}

double diagnosisGraceSeconds(double timeoutSeconds) {
  return std::clamp(timeoutSeconds * 0.2, 0.5, 10.0);
}

std::string timeoutMessage(int rank, const std::string &what, uint64_t seq, double timeoutSeconds,
                           const std::string &peers) {
  char t[32];
  std::snprintf(t, sizeof t, "%g", timeoutSeconds);
  return "tlrun: rank " + std::to_string(rank) + ": collective #" + std::to_string(seq) + " (" + what +
         ") did not complete within comm_timeout_s=" + t + " s: " + peers;
}

}  // namespace tlc::comm
