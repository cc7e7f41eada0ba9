// The MPI communicator: a plugin library (libtl_comm_mpi.so) that tlrun
// dlopens when it runs under a launcher, so that tlrun itself never links
// libmpi. Host buffers.
//
// MPI moves the data (non-blocking collectives, polled against the
// deadline); the sums are ours: a reduction gathers every rank's copy of a
// block to the block's owner (MPI_Ialltoall / MPI_Igather) and the owner
// adds them in rank order (sumBlocksInOrder). So every reduction is bitwise
// reproducible across runs, identical on every rank, independent of the MPI
// library's algorithm choice, and bf16 is summed in f32 and rounded once
// (MPI has no bf16 type). The traffic per rank equals a ring
// reduce-scatter's; the price is a receive buffer of size x block.
//
// The timeout: a second communicator (diag_) carries "where are you?"
// queries. Waiting ranks answer them while they poll; a rank whose deadline
// passed asks every peer, waits a short grace for the answers, prints which
// ranks did not answer (or are stuck in an earlier collective) and calls
// MPI_Abort, which ends every process of the job.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <deque>
#include <cstdio>
#include <cstring>
#include <functional>
#include <exception>
#include <map>
#include <vector>

#include "runtime/comm/comm_common.h"

namespace tlc::comm {
namespace {

constexpr int kQueryTag = 1, kReplyTag = 2;

MPI_Datatype mpiType(DType d) {
  switch (d) {
    case DType::F32: return MPI_FLOAT;
    case DType::BF16: return MPI_UINT16_T;  // moved as bits; summed by us
    case DType::U8: return MPI_BYTE;
  }
  return MPI_BYTE;
}

std::string mpiError(int code) {
  char s[MPI_MAX_ERROR_STRING];
  int n = 0;
  MPI_Error_string(code, s, &n);
  return std::string(s, static_cast<size_t>(n));
}

int toInt(size_t n, const Collective &c) {
  if (n > static_cast<size_t>(INT_MAX))
    throw CommError("comm: " + describeCollective(c) + " exceeds MPI's int element counts; split it into buckets");
  return static_cast<int>(n);
}

class MpiCommunicator;

// A collective as a sequence of non-blocking MPI steps; the first is posted
// at start, each later one when the previous completed (during wait()).
struct Step {
  std::function<int(MPI_Request *)> post;
  std::function<void()> done;  // may be empty
};

class MpiWork : public Work {
 public:
  MpiWork(MpiCommunicator &comm, const Collective &c, uint64_t seq);
  ~MpiWork() override {
    if (!finished_) wait();  // MPI may still write into the buffers
  }
  // Waits for every earlier unfinished work first: a collective's later
  // steps are posted while waiting, and MPI needs every rank to post its
  // collectives in the same order whatever order the caller waits in.
  void wait() override;
  void finish();

  // Buffers the steps use; they live as long as the work.
  std::vector<char> tmp;
  std::vector<int> counts, displs, counts2, displs2;

  void add(Step s) { steps_.push_back(std::move(s)); }
  void postNext();

 private:
  MpiCommunicator &comm_;
  Collective c_;
  uint64_t seq_;
  Clock::time_point deadline_;
  std::vector<Step> steps_;
  size_t next_ = 0;
  MPI_Request req_ = MPI_REQUEST_NULL;
  bool finished_ = false;
};

class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(double timeoutSeconds) : timeout_(timeoutSeconds) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      // Serialized: the trainer's communication thread runs collectives
      // while the main thread computes (never both at once).
      int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &threadLevel_);
      if (rc != MPI_SUCCESS) throw CommError("MPI_Init_thread failed: " + mpiError(rc));
      ownsMpi_ = true;
    } else {
      MPI_Query_thread(&threadLevel_);
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    check(MPI_Comm_dup(MPI_COMM_WORLD, &diag_), "MPI_Comm_dup");
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int n = 0;
    MPI_Get_library_version(version, &n);
    library_.assign(version, static_cast<size_t>(n));
    library_ = library_.substr(0, library_.find_first_of(",\n"));
  }

  ~MpiCommunicator() override {
    // Unwinding from an error on this rank alone: MPI_Finalize would wait
    // for ranks that wait for this one. Exit without it; the launcher sees
    // the failed rank and ends the job at once (the error gets printed).
    if (std::uncaught_exceptions() > 0) return;
    for (auto &r : replies_) MPI_Request_free(&r.first);
    MPI_Comm_free(&diag_);
    MPI_Comm_free(&comm_);
    if (ownsMpi_) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool deviceBuffers() const override { return false; }
  bool serializedThreads() const override { return threadLevel_ >= MPI_THREAD_SERIALIZED; }
  std::string describe() const override {
    return "mpi (" + std::to_string(size_) + " ranks, " + library_ + ")";
  }

  std::unique_ptr<Work> start(const Collective &c) override {
    checkCollective(c, size_);
    auto w = std::make_unique<MpiWork>(*this, c, ++seq_);
    plan(*w, c);
    w->postNext();
    pending_.push_back(w.get());
    return w;
  }

  std::deque<MpiWork *> &pending() { return pending_; }

  // Polls `req` until it completes; past the deadline, ends the job.
  void waitRequest(MPI_Request *req, const Collective &c, uint64_t seq, Clock::time_point deadline) {
    Backoff backoff;
    for (;;) {
      int flag = 0;
      check(MPI_Test(req, &flag, MPI_STATUS_IGNORE), "MPI_Test");
      if (flag) return;
      answerPeers(seq, c.op);
      if (Clock::now() > deadline) abortOnTimeout(describeCollective(c), seq, timeout_);
      backoff.pause();
    }
  }

  void answerPeers(uint64_t seq, Op op) override {
    waitingOp_ = op;
    for (;;) {
      int flag = 0;
      MPI_Status st;
      MPI_Iprobe(MPI_ANY_SOURCE, kQueryTag, diag_, &flag, &st);
      if (!flag) break;
      uint64_t theirs = 0;
      MPI_Recv(&theirs, 1, MPI_UINT64_T, st.MPI_SOURCE, kQueryTag, diag_, MPI_STATUS_IGNORE);
      auto buf = std::make_unique<uint64_t[]>(2);
      buf[0] = seq;
      buf[1] = static_cast<uint64_t>(op);
      MPI_Request r;
      MPI_Isend(buf.get(), 2, MPI_UINT64_T, st.MPI_SOURCE, kReplyTag, diag_, &r);
      replies_.emplace_back(r, std::move(buf));
    }
    // Forget the answers already delivered.
    for (size_t i = 0; i < replies_.size();) {
      int done = 0;
      MPI_Test(&replies_[i].first, &done, MPI_STATUS_IGNORE);
      if (done) {
        replies_[i] = std::move(replies_.back());
        replies_.pop_back();
      } else {
        ++i;
      }
    }
  }

  [[noreturn]] void abortOnTimeout(const std::string &what, uint64_t seq, double timeoutSeconds) override {
    std::vector<uint64_t> query(static_cast<size_t>(size_), seq);
    std::vector<MPI_Request> sent;
    for (int p = 0; p < size_; ++p) {
      if (p == rank_) continue;
      MPI_Request r;
      MPI_Isend(&query[static_cast<size_t>(p)], 1, MPI_UINT64_T, p, kQueryTag, diag_, &r);
      sent.push_back(r);
    }
    std::map<int, std::pair<uint64_t, Op>> answers;
    double grace = diagnosisGraceSeconds(timeoutSeconds);
    Clock::time_point until = deadlineAfter(grace);
    Backoff backoff;
    while (static_cast<int>(answers.size()) < size_ - 1 && Clock::now() < until) {
      answerPeers(seq, waitingOp_);
      int flag = 0;
      MPI_Status st;
      MPI_Iprobe(MPI_ANY_SOURCE, kReplyTag, diag_, &flag, &st);
      if (flag) {
        uint64_t a[2];
        MPI_Recv(a, 2, MPI_UINT64_T, st.MPI_SOURCE, kReplyTag, diag_, MPI_STATUS_IGNORE);
        answers[st.MPI_SOURCE] = {a[0], static_cast<Op>(a[1])};
      } else {
        backoff.pause();
      }
    }
    std::string missing, elsewhere;
    for (int p = 0; p < size_; ++p) {
      if (p == rank_) continue;
      auto it = answers.find(p);
      if (it == answers.end()) {
        missing += (missing.empty() ? "" : ", ") + std::to_string(p);
      } else if (it->second.first != seq) {
        elsewhere += "; rank " + std::to_string(p) + " is waiting in collective #" +
                     std::to_string(it->second.first) + " (" + opName(it->second.second) + ")";
      }
    }
    char g[32];
    std::snprintf(g, sizeof g, "%g", grace);
    std::string peers;
    if (!missing.empty())
      peers = std::string(missing.find(',') == std::string::npos ? "rank " : "ranks ") + missing +
              " did not arrive (no answer within " + g + " s: dead, hung, or busy outside collectives)";
    else if (elsewhere.empty())
      peers = "every rank is waiting in it (the transport itself is stuck)";
    else
      peers = "the ranks disagree on the order of collectives";
    std::string msg = timeoutMessage(rank_, what, seq, timeoutSeconds, peers + elsewhere);
    std::fprintf(stderr, "%s; aborting the job\n", msg.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);  // exit status 1: a failure
    std::_Exit(1);  // MPI_Abort does not return
  }

  void check(int rc, const char *what) {
    if (rc == MPI_SUCCESS) return;
    std::fprintf(stderr, "tlrun: rank %d: %s failed: %s; aborting the job\n", rank_, what, mpiError(rc).c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::_Exit(1);
  }

  double timeout() const { return timeout_; }
  MPI_Comm comm() const { return comm_; }

 private:
  void plan(MpiWork &w, const Collective &c);

  double timeout_;
  bool ownsMpi_ = false;
  int threadLevel_ = MPI_THREAD_SINGLE;
  MPI_Comm comm_ = MPI_COMM_NULL, diag_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  uint64_t seq_ = 0;
  Op waitingOp_ = Op::Barrier;  // what this rank tells peers it waits in
  std::string library_;
  std::vector<std::pair<MPI_Request, std::unique_ptr<uint64_t[]>>> replies_;
  std::deque<MpiWork *> pending_;  // started, not finished, in start order
};

MpiWork::MpiWork(MpiCommunicator &comm, const Collective &c, uint64_t seq)
    : comm_(comm), c_(c), seq_(seq), deadline_(deadlineAfter(comm.timeout())) {}

void MpiWork::postNext() {
  if (next_ < steps_.size()) comm_.check(steps_[next_].post(&req_), "posting an MPI collective");
}

void MpiWork::wait() {
  if (finished_) return;
  while (comm_.pending().front() != this) comm_.pending().front()->finish();
  finish();
}

void MpiWork::finish() {
  while (next_ < steps_.size()) {
    comm_.waitRequest(&req_, c_, seq_, deadline_);
    if (steps_[next_].done) steps_[next_].done();
    ++next_;
    postNext();
  }
  finished_ = true;
  comm_.pending().erase(std::find(comm_.pending().begin(), comm_.pending().end(), this));
}

void MpiCommunicator::plan(MpiWork &w, const Collective &c) {
  const int n = size_, r = rank_;
  const size_t es = dtypeSize(c.dtype);
  const MPI_Datatype t = mpiType(c.dtype);
  const MPI_Comm comm = comm_;
  char *recv = static_cast<char *>(c.recv);
  const char *send = static_cast<const char *>(c.send);
  // The largest buffer a step addresses, in elements, must fit MPI's ints.
  bool blocks = c.op == Op::ReduceScatter || c.op == Op::AllGather || c.op == Op::Reduce;
  toInt(blocks ? c.count * static_cast<size_t>(n) : c.count, c);
  const int count = static_cast<int>(c.count);
  switch (c.op) {
    case Op::Barrier:
      w.add({[comm](MPI_Request *q) { return MPI_Ibarrier(comm, q); }, {}});
      return;
    case Op::Broadcast:
      w.add({[=](MPI_Request *q) { return MPI_Ibcast(recv, count, t, c.root, comm, q); }, {}});
      return;
    case Op::AllGather: {
      bool inPlace = send == recv + static_cast<size_t>(r) * c.count * es;
      w.add({[=](MPI_Request *q) {
               return MPI_Iallgather(inPlace ? MPI_IN_PLACE : send, count, t, recv, count, t, comm, q);
             },
             {}});
      return;
    }
    case Op::ReduceScatter: {
      // Block p of every rank's send buffer goes to rank p; rank r sums the
      // n copies of its block in rank order.
      w.tmp.resize(static_cast<size_t>(n) * c.count * es);
      char *tmp = w.tmp.data();
      w.add({[=](MPI_Request *q) { return MPI_Ialltoall(send, count, t, tmp, count, t, comm, q); },
             [=] { sumBlocksInOrder(tmp, c.count, n, recv, c.count, c.dtype); }});
      return;
    }
    case Op::Reduce: {
      if (r == c.root) w.tmp.resize(static_cast<size_t>(n) * c.count * es);
      char *tmp = w.tmp.data();
      bool root = r == c.root;
      w.add({[=](MPI_Request *q) { return MPI_Igather(send, count, t, tmp, count, t, c.root, comm, q); },
             [=] {
               if (root) sumBlocksInOrder(tmp, c.count, n, recv, c.count, c.dtype);
             }});
      return;
    }
    case Op::AllReduce: {
      // A reduce-scatter over blocks of ceil(count/n) (the last ones shorter
      // or empty), then an all-gather of the summed blocks.
      size_t b = (c.count + static_cast<size_t>(n) - 1) / static_cast<size_t>(n);
      auto blockLen = [&](int p) {
        size_t begin = std::min(c.count, static_cast<size_t>(p) * b);
        return static_cast<int>(std::min(c.count, begin + b) - begin);
      };
      int mine = blockLen(r);
      w.tmp.resize(static_cast<size_t>(n) * static_cast<size_t>(mine) * es);
      w.counts.resize(static_cast<size_t>(n));
      w.displs.resize(static_cast<size_t>(n));
      w.counts2.assign(static_cast<size_t>(n), mine);
      w.displs2.resize(static_cast<size_t>(n));
      for (int p = 0; p < n; ++p) {
        w.counts[static_cast<size_t>(p)] = blockLen(p);
        w.displs[static_cast<size_t>(p)] = static_cast<int>(std::min(c.count, static_cast<size_t>(p) * b));
        w.displs2[static_cast<size_t>(p)] = p * mine;
      }
      char *tmp = w.tmp.data();
      const int *counts = w.counts.data(), *displs = w.displs.data();
      const int *counts2 = w.counts2.data(), *displs2 = w.displs2.data();
      size_t myBegin = static_cast<size_t>(displs[r]);
      w.add({[=](MPI_Request *q) {
               return MPI_Ialltoallv(recv, counts, displs, t, tmp, counts2, displs2, t, comm, q);
             },
             [=] { sumBlocksInOrder(tmp, static_cast<size_t>(mine), n, recv + myBegin * es, static_cast<size_t>(mine), c.dtype); }});
      w.add({[=](MPI_Request *q) {
               return MPI_Iallgatherv(MPI_IN_PLACE, 0, t, recv, counts, displs, t, comm, q);
             },
             {}});
      return;
    }
  }
}

}  // namespace
}  // namespace tlc::comm

extern "C" int tl_comm_mpi_abi() { return tlc::comm::kMpiPluginAbi; }

extern "C" tlc::comm::Communicator *tl_comm_mpi_create(double timeoutSeconds, char *error, size_t errorSize) {
  try {
    return new tlc::comm::MpiCommunicator(timeoutSeconds);
  } catch (const std::exception &e) {
    std::snprintf(error, errorSize, "%s", e.what());
    return nullptr;
  }
}
