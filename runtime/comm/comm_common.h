// Pieces shared by the communicator implementations (compiled into tlrun and
// into the MPI plugin): the fixed-order host sum, argument checks, and the
// polling loop that bounds every wait by the timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "runtime/comm/communicator.h"

namespace tlc::comm {

// The MPI plugin's entry points (checked against each other when loaded):
//   extern "C" int tl_comm_mpi_abi();
//   extern "C" Communicator *tl_comm_mpi_create(double timeoutSeconds, char *error, size_t errorSize);
constexpr int kMpiPluginAbi = 1;

// out[i] = in[0][i] + in[1][i] + ... + in[n-1][i], summed left to right in
// f32 (bf16 inputs are widened, and the f32 sum rounded once). `in` holds
// the n blocks back to back, `stride` elements apart; `out` must not overlap
// them. The order is fixed,
// so the result is bitwise the same on every rank and in every run.
void sumBlocksInOrder(const void *in, size_t stride, int n, void *out, size_t count, DType d);

// Throws CommError when a collective's arguments are inconsistent (a sum
// on bytes, a root out of range, null buffers with a non-zero count).
void checkCollective(const Collective &c, int size);

// "allReduce of 1024 bf16"
std::string describeCollective(const Collective &c);

// Polls with a growing pause (spins first, then up to 200 us), so waiting
// ranks neither burn a shared core nor add much latency.
class Backoff {
 public:
  void pause();

 private:
  int spins_ = 0;
};

using Clock = std::chrono::steady_clock;
inline Clock::time_point deadlineAfter(double seconds) {
  return Clock::now() + std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
}

// How long a timed-out rank waits for its peers to say where they are.
double diagnosisGraceSeconds(double timeoutSeconds);

// The message every timed-out rank prints (its rank first, then the peers).
std::string timeoutMessage(int rank, const std::string &what, uint64_t seq, double timeoutSeconds,
                           const std::string &peers);

}  // namespace tlc::comm
