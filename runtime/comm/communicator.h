// Collectives between the ranks of a data-parallel job. Two implementations:
// MPI (host buffers; CPU ranks, and the bootstrap of NCCL) in a plugin
// library that tlrun dlopens only when it runs under a launcher, and NCCL
// (device buffers; one process per GPU) loaded with dlopen. A single process
// gets a communicator of size 1 that needs neither. No MPI or NCCL header
// is included here.
//
// Every collective is bounded by the timeout: a rank that waits longer than
// `timeoutSeconds` for its peers finds out which ranks did not arrive, prints
// a message naming them and aborts the whole job (no silent hang).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

namespace tlc::comm {

struct CommError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Element types. Sums are defined on F32 and BF16 only; U8 is for moving
// bytes (ids, hashes) with broadcast and allGather.
enum class DType { F32, BF16, U8 };
size_t dtypeSize(DType d);
const char *dtypeName(DType d);

enum class Op { AllReduce, ReduceScatter, AllGather, Broadcast, Reduce, Barrier };
const char *opName(Op op);

// One collective. `count` is always the per-rank block size in elements:
//   AllReduce      buf[count] summed over ranks, in place (send == recv)
//   ReduceScatter  send[size*count] summed; rank r gets block r in recv[count]
//                  (in place when recv == send + rank*count)
//   AllGather      send[count] of every rank into recv[size*count], rank order
//                  (in place when send == recv + rank*count)
//   Broadcast      buf[count] of `root` to every rank (send == recv)
//   Reduce         send[count] summed into recv[count] on `root` (recv
//                  unused elsewhere; in place when send == recv)
//   Barrier        no data
struct Collective {
  Op op = Op::Barrier;
  const void *send = nullptr;
  void *recv = nullptr;
  size_t count = 0;
  DType dtype = DType::F32;
  int root = 0;
};

// A started collective; wait() returns when it completed on this rank.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  // MPI: finalizes, which waits for every rank, except while an exception
  // propagates (an error on this rank): then the process exits with its
  // error unfinalized, and the launcher ends the job at once.
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Whether buffers are device pointers (NCCL) or host memory (MPI, single).
  virtual bool deviceBuffers() const = 0;
  virtual std::string describe() const = 0;  // "mpi (4 ranks, open mpi 4.1.4)"
  // Whether another thread may run the collectives, one thread at a time
  // (MPI_THREAD_SERIALIZED): the trainer's communication thread.
  virtual bool serializedThreads() const { return true; }

  // Starts a collective (MPI: non-blocking; NCCL: enqueued on the
  // communicator's stream, ordered after work already on the legacy default
  // stream). Buffers must stay valid until wait() returns, and every Work
  // must be done (waited or destroyed, which waits) before the communicator
  // is destroyed. Every rank starts the same collectives in the same order.
  virtual std::unique_ptr<Work> start(const Collective &c) = 0;

  // Blocking forms.
  void allReduce(void *buf, size_t count, DType d) { run({Op::AllReduce, buf, buf, count, d, 0}); }
  void reduceScatter(const void *send, void *recv, size_t count, DType d) {
    run({Op::ReduceScatter, send, recv, count, d, 0});
  }
  void allGather(const void *send, void *recv, size_t count, DType d) {
    run({Op::AllGather, send, recv, count, d, 0});
  }
  void broadcast(void *buf, size_t count, DType d, int root) { run({Op::Broadcast, buf, buf, count, d, root}); }
  void reduce(const void *send, void *recv, size_t count, DType d, int root) {
    run({Op::Reduce, send, recv, count, d, root});
  }
  void barrier() { run({Op::Barrier, nullptr, nullptr, 0, DType::F32, 0}); }

  // A communicator on host buffers over the same ranks, for small control
  // messages (digests, flags): this one, or NCCL's MPI bootstrap.
  virtual Communicator &host() { return *this; }

  // The liveness side channel behind the timeout (MPI has one; NCCL uses its
  // MPI bootstrap's). A waiting rank calls answerPeers() while it polls, so
  // that timed-out peers learn it is at collective `seq`. A rank whose wait
  // passed the deadline calls abortOnTimeout(), which asks every peer where
  // it is, prints a message naming the ranks that did not arrive, and ends
  // the whole job.
  virtual void answerPeers(uint64_t seq, Op op) {}
  [[noreturn]] virtual void abortOnTimeout(const std::string &what, uint64_t seq, double timeoutSeconds);

 private:
  void run(const Collective &c) { start(c)->wait(); }
};

struct Options {
  std::string backend = "auto";  // auto | single | mpi | nccl
  double timeoutSeconds = 300;   // config key comm_timeout_s
  // The MPI plugin; empty: $TLC_COMM_MPI_PLUGIN, then libtl_comm_mpi.so next
  // to the executable, in ../lib from it, then the loader's search path.
  std::string mpiPlugin;
};

// What the environment says about how this process was started.
struct Launch {
  std::string launcher;  // "" (none), "open mpi", "pmi", "pmix", "slurm"
  int size = 1;          // world size when the launcher tells it, else -1
  int rank = 0;          // likewise
  int localRank = 0;     // rank within the node (GPU selection); 0 when unknown
};
Launch detectLaunch();

// auto: a single-process communicator unless a launcher started more than
// one rank, then MPI. nccl: NCCL over the current CUDA context (device
// `localRank` when no context is current), bootstrapped over MPI when the
// launcher started more than one rank. Throws CommError with the reason
// (e.g. started by mpirun but the MPI plugin cannot be loaded).
std::unique_ptr<Communicator> makeCommunicator(const Options &o);

// Each backend alone (makeCommunicator chooses between them).
std::unique_ptr<Communicator> makeSingleCommunicator();
std::unique_ptr<Communicator> makeMpiCommunicator(const Options &o);
std::unique_ptr<Communicator> makeNcclCommunicator(const Options &o, std::unique_ptr<Communicator> bootstrap);

// Start-up check that every rank has the same artifact, configuration,
// layout...: each passes its digest of `what`; throws CommError naming the
// ranks whose digest differs from rank 0's (on every rank, so all stop).
void requireSameOnAllRanks(Communicator &c, const std::string &what, uint64_t digest);

// Whether NCCL can be loaded here (no GPU needed), and why not.
bool ncclAvailable(std::string *why = nullptr);

}  // namespace tlc::comm
