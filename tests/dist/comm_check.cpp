// tl-comm-check: runs every collective of a communicator on fresh random
// f32 and bf16 data and checks each rank's result against a reference the
// rank computes itself from every rank's inputs (all ranks derive them from
// one seed that rank 0 draws and broadcasts). Run it as
//   tl-comm-check                                     (one process, no MPI)
//   mpirun -np 4 tl-comm-check                        (the MPI plugin)
//   tl-comm-check --backend nccl                      (NCCL on a GPU)
// Faults for the timeout tests: --hang-rank R (rank R sleeps instead of
// taking part), --exit-rank R (rank R exits without a word),
// --disagree-rank R (rank R has another "artifact"), --throw-rank R (rank R
// fails with an error while the others wait for it), --kill-rank R (rank R
// is killed by SIGKILL).
// Exit status: 0 when every check passed on every rank.
#include <unistd.h>

#include <csignal>

#include <chrono>
#include <cmath>
#include <functional>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "runtime/comm/communicator.h"
#include "runtime/comm/sharding.h"
#include "runtime/exec/device.h"
#include "formats/half.h"

using namespace tlc;
using namespace tlc::comm;

namespace {

// Buffers the communicator can use: host memory, or device memory for NCCL.
class Buffers {
 public:
  explicit Buffers(Device *device) : device_(device) {}
  ~Buffers() {
    for (void *p : owned_) device_ ? device_->release(p) : std::free(p);
  }
  void *alloc(size_t bytes) {
    void *p = device_ ? device_->alloc(bytes) : std::calloc(bytes ? bytes : 1, 1);
    owned_.push_back(p);
    return p;
  }
  void put(void *dst, const std::vector<char> &src) {
    if (src.empty()) return;
    device_ ? device_->upload(dst, src.data(), src.size()) : (void)std::memcpy(dst, src.data(), src.size());
  }
  std::vector<char> get(const void *src, size_t bytes) {
    std::vector<char> out(bytes);
    if (bytes) device_ ? device_->download(out.data(), src, bytes) : (void)std::memcpy(out.data(), src, bytes);
    return out;
  }

 private:
  Device *device_;
  std::vector<void *> owned_;
};

struct Checker {
  Communicator &comm;
  Buffers &buf;
  uint64_t seed;
  bool exactSums;  // our MPI and single backends sum in rank order, bitwise
  int checks = 0, failures = 0;

  // Rank p's input for case `id`: values in [-2, 2), stored in dtype d.
  std::vector<char> input(int p, int id, size_t count, DType d) const {
    std::mt19937_64 rng(seed ^ (static_cast<uint64_t>(p) << 48) ^ (static_cast<uint64_t>(id) << 20));
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    std::vector<char> out(count * dtypeSize(d));
    for (size_t i = 0; i < count; ++i) {
      float v = u(rng);
      if (d == DType::F32) {
        std::memcpy(&out[i * 4], &v, 4);
      } else {
        uint16_t h = floatToBf16(v);
        std::memcpy(&out[i * 2], &h, 2);
      }
    }
    return out;
  }

  static float at(const std::vector<char> &b, size_t i, DType d) {
    if (d == DType::F32) {
      float v;
      std::memcpy(&v, &b[i * 4], 4);
      return v;
    }
    uint16_t h;
    std::memcpy(&h, &b[i * 2], 2);
    return bf16ToFloat(h);
  }

  // Elements [first, first+count) of the sum over ranks of input(p, id, total).
  void checkSum(const std::vector<char> &got, int id, size_t total, size_t first, size_t count, DType d,
                const std::string &what) {
    ++checks;
    int n = comm.size();
    std::vector<std::vector<char>> in;
    for (int p = 0; p < n; ++p) in.push_back(input(p, id, total, d));
    for (size_t i = 0; i < count; ++i) {
      float fold = 0;  // rank order, in f32: what exactSums promises bitwise
      double exact = 0, magnitude = 0;
      for (int p = 0; p < n; ++p) {
        float x = at(in[static_cast<size_t>(p)], first + i, d);
        fold = p == 0 ? x : fold + x;
        exact += x;
        magnitude += std::fabs(x);
      }
      float want = d == DType::F32 ? fold : bf16ToFloat(floatToBf16(fold));
      float g = at(got, i, d);
      // Any order of summation: n f32 roundings, plus one (or, in NCCL, one
      // per step) bf16 rounding of a value below `magnitude`.
      double tol = n * 6e-8 * magnitude + (d == DType::BF16 ? n * std::ldexp(magnitude, -8) : 0);
      bool ok = exactSums ? std::memcmp(&g, &want, 4) == 0 || (g == 0 && want == 0) : std::fabs(g - exact) <= tol;
      if (exactSums && std::fabs(g - exact) > tol) ok = false;
      if (!ok) {
        fail(what + ": element " + std::to_string(i) + " is " + std::to_string(g) + ", expected " +
             std::to_string(exactSums ? want : exact));
        return;
      }
    }
  }

  void checkCopy(const std::vector<char> &got, const std::vector<char> &want, const std::string &what) {
    ++checks;
    if (got != want) fail(what + ": bytes differ from the sender's");
  }

  void fail(const std::string &msg) {
    ++failures;
    std::fprintf(stderr, "comm-check: rank %d: FAILED %s\n", comm.rank(), msg.c_str());
  }

  void run() {
    const int n = comm.size(), r = comm.rank();
    const size_t ur = static_cast<size_t>(r), un = static_cast<size_t>(n);
    int id = 0;
    for (DType d : {DType::F32, DType::BF16}) {
      size_t es = dtypeSize(d);
      for (size_t count : {size_t(1), size_t(3), size_t(64), size_t(1000), size_t(4099), size_t(70001)}) {
        std::string tag = std::string(dtypeName(d)) + " x" + std::to_string(count);

        // allReduce: in place, count need not divide by the world size.
        ++id;
        void *b = buf.alloc(count * es);
        buf.put(b, input(r, id, count, d));
        comm.allReduce(b, count, d);
        checkSum(buf.get(b, count * es), id, count, 0, count, d, "allReduce " + tag);

        // reduceScatter, out of place and in place.
        for (bool inPlace : {false, true}) {
          ++id;
          void *s = buf.alloc(un * count * es);
          buf.put(s, input(r, id, un * count, d));
          void *out = inPlace ? static_cast<char *>(s) + ur * count * es : buf.alloc(count * es);
          comm.reduceScatter(s, out, count, d);
          checkSum(buf.get(out, count * es), id, un * count, ur * count, count, d,
                   std::string("reduceScatter ") + (inPlace ? "in place " : "") + tag);
        }

        // allGather, out of place and in place.
        for (bool inPlace : {false, true}) {
          ++id;
          void *all = buf.alloc(un * count * es);
          void *mine = inPlace ? static_cast<char *>(all) + ur * count * es : buf.alloc(count * es);
          buf.put(mine, input(r, id, count, d));
          comm.allGather(mine, all, count, d);
          std::vector<char> got = buf.get(all, un * count * es);
          for (int p = 0; p < n; ++p) {
            std::vector<char> part(got.begin() + static_cast<long>(static_cast<size_t>(p) * count * es),
                                   got.begin() + static_cast<long>((static_cast<size_t>(p) + 1) * count * es));
            checkCopy(part, input(p, id, count, d),
                      std::string("allGather ") + (inPlace ? "in place " : "") + tag + " block " + std::to_string(p));
          }
        }

        // broadcast and reduce from every root.
        for (int root = 0; root < n; ++root) {
          ++id;
          void *bb = buf.alloc(count * es);
          buf.put(bb, input(r, id, count, d));
          comm.broadcast(bb, count, d, root);
          checkCopy(buf.get(bb, count * es), input(root, id, count, d),
                    "broadcast " + tag + " root " + std::to_string(root));
          ++id;
          void *s = buf.alloc(count * es), *out = buf.alloc(count * es);
          buf.put(s, input(r, id, count, d));
          comm.reduce(s, out, count, d, root);
          if (r == root)
            checkSum(buf.get(out, count * es), id, count, 0, count, d, "reduce " + tag + " root " + std::to_string(root));
        }
      }
    }
    // Several collectives in flight, waited for in reverse order.
    ++id;
    size_t count = 777;
    std::vector<void *> bs;
    std::vector<std::unique_ptr<Work>> works;
    for (int k = 0; k < 3; ++k) {
      bs.push_back(buf.alloc(count * 4));
      buf.put(bs.back(), input(r, id + k, count, DType::F32));
      works.push_back(comm.start({Op::AllReduce, bs.back(), bs.back(), count, DType::F32, 0}));
    }
    for (int k = 2; k >= 0; --k) works[static_cast<size_t>(k)]->wait();
    for (int k = 0; k < 3; ++k)
      checkSum(buf.get(bs[static_cast<size_t>(k)], count * 4), id + k, count, 0, count, DType::F32,
               "overlapped allReduce " + std::to_string(k));
    comm.barrier();
    ++checks;
    shardedStep(id + 3);
  }

  // The collectives of a ZeRO-1/2 step over a padded flat f32 gradient
  // buffer (shard::Layout): a whole-buffer reduce-scatter, the same sums
  // bucket by bucket to their owners, and the all-gather that rebuilds the
  // full buffer from the shards.
  void shardedStep(int id) {
    const int64_t elements = 10007;  // not a multiple of anything
    shard::Layout l = shard::makeLayout(elements, comm.size());
    const size_t padded = static_cast<size_t>(l.padded()), chunk = static_cast<size_t>(l.shard);
    Range mine = l.shardOf(comm.rank()), owned = l.ownedBy(comm.rank());
    std::vector<char> grads = input(comm.rank(), id, padded, DType::F32);
    std::memset(&grads[static_cast<size_t>(elements) * 4], 0, (padded - static_cast<size_t>(elements)) * 4);
    auto expectOwned = [&](const std::vector<char> &got, const std::string &what) {
      // Padding of every rank is zero, so the sum of the real elements is
      // checked against the generator and the padding against zero.
      std::vector<char> real(got.begin(), got.begin() + owned.size() * 4);
      checkSum(real, id, padded, static_cast<size_t>(owned.begin), static_cast<size_t>(owned.size()), DType::F32, what);
      for (size_t i = static_cast<size_t>(owned.size()); i < chunk; ++i) {
        if (at(got, i, DType::F32) != 0) return fail(what + ": padding element is not zero");
      }
    };

    void *g = buf.alloc(padded * 4);
    buf.put(g, grads);
    char *myChunk = static_cast<char *>(g) + static_cast<size_t>(mine.begin) * 4;
    comm.reduceScatter(g, myChunk, chunk, DType::F32);  // in place
    expectOwned(buf.get(myChunk, chunk * 4), "sharded step: whole-buffer reduceScatter");

    void *h = buf.alloc(padded * 4);
    buf.put(h, grads);
    std::vector<std::unique_ptr<Work>> works;
    std::vector<shard::Bucket> bs = shard::buckets(l, 1000);
    for (auto it = bs.rbegin(); it != bs.rend(); ++it) {  // the backward pass's order
      char *p = static_cast<char *>(h) + static_cast<size_t>(it->range.begin) * 4;
      works.push_back(comm.start({Op::Reduce, p, p, static_cast<size_t>(it->range.size()), DType::F32, it->owner}));
    }
    for (auto &w : works) w->wait();
    expectOwned(buf.get(static_cast<char *>(h) + static_cast<size_t>(mine.begin) * 4, chunk * 4),
                "sharded step: bucketed reduce to owners");

    // The updated shards (here: the reduced gradients) all-gathered in place.
    comm.allGather(myChunk, g, chunk, DType::F32);
    std::vector<char> full = buf.get(g, padded * 4);
    for (int p = 0; p < comm.size(); ++p) {
      Range o = l.ownedBy(p);
      std::vector<char> part(full.begin() + o.begin * 4, full.begin() + o.end * 4);
      checkSum(part, id, padded, static_cast<size_t>(o.begin), static_cast<size_t>(o.size()), DType::F32,
               "sharded step: allGather of shard " + std::to_string(p));
    }
  }
};

// --bench N: times the gradient collectives on N f32 elements (not a test;
// bus bandwidth as nccl-tests defines it: the bytes each rank must send).
void bench(Communicator &comm, Buffers &buf, size_t elements) {
  const size_t n = static_cast<size_t>(comm.size());
  const size_t chunk = (elements + n - 1) / n;
  void *a = buf.alloc(chunk * n * 4);
  buf.put(a, std::vector<char>(chunk * n * 4, 1));
  char *mine = static_cast<char *>(a) + static_cast<size_t>(comm.rank()) * chunk * 4;
  struct Case {
    const char *name;
    double factor;  // bytes sent per rank / buffer bytes
    std::function<void()> run;
  };
  double ring = static_cast<double>(n - 1) / static_cast<double>(n);
  std::vector<Case> cases = {
      {"allReduce", 2 * ring, [&] { comm.allReduce(a, chunk * n, DType::F32); }},
      {"reduceScatter", ring, [&] { comm.reduceScatter(a, mine, chunk, DType::F32); }},
      {"allGather", ring, [&] { comm.allGather(mine, a, chunk, DType::F32); }},
  };
  for (const Case &c : cases) {
    for (int i = 0; i < 2; ++i) c.run();
    comm.barrier();
    const int reps = 5;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) c.run();
    comm.barrier();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
    if (comm.rank() == 0)
      std::printf("bench: %-13s %zu f32 on %zu ranks: %8.3f ms, bus bandwidth %.2f GB/s\n", c.name, chunk * n, n,
                  s * 1e3, c.factor * static_cast<double>(chunk * n * 4) / s / 1e9);
  }
}

int usage() {
  std::fprintf(stderr,
               "usage: tl-comm-check [--backend auto|single|mpi|nccl] [--timeout S] [--hang-rank R] [--exit-rank R]\n"
               "                     [--disagree-rank R] [--throw-rank R] [--kill-rank R]\n"
               "                     [--bench ELEMENTS]\n");
  return 2;
}

}  // namespace

int main(int argc, char **argv) {
  Options o;
  o.timeoutSeconds = 60;
  int hangRank = -1, exitRank = -1, disagreeRank = -1, throwRank = -1, killRank = -1;
  size_t benchElements = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    if (a == "--backend") o.backend = argv[++i];
    else if (a == "--timeout") o.timeoutSeconds = std::atof(argv[++i]);
    else if (a == "--hang-rank") hangRank = std::atoi(argv[++i]);
    else if (a == "--exit-rank") exitRank = std::atoi(argv[++i]);
    else if (a == "--disagree-rank") disagreeRank = std::atoi(argv[++i]);
    else if (a == "--throw-rank") throwRank = std::atoi(argv[++i]);
    else if (a == "--kill-rank") killRank = std::atoi(argv[++i]);
    else if (a == "--bench") benchElements = std::strtoull(argv[++i], nullptr, 10);
    else return usage();
  }
  try {
    std::unique_ptr<Device> device;  // outlives the communicator and the buffers
    if (o.backend == "nccl") {
      std::string why;
      if (!ncclAvailable(&why)) throw CommError("comm: " + why);
    }
    std::unique_ptr<Communicator> comm = makeCommunicator(o);
    // NCCL made the primary context of the node-local rank's GPU current;
    // the device must open that same GPU.
    if (comm->deviceBuffers()) device = makeCudaDevice(detectLaunch().localRank);
    std::printf("comm-check: rank %d of %d: %s\n", comm->rank(), comm->size(), comm->describe().c_str());
    std::fflush(stdout);
    if (comm->rank() == exitRank) std::_Exit(0);
    if (comm->rank() == throwRank) throw std::runtime_error("an error on this rank alone (--throw-rank)");
    // The start-up agreement check (a digest of "the artifact"). It also
    // lines the ranks up, so a slow start never looks like the hang below.
    requireSameOnAllRanks(*comm, "the artifact", comm->rank() == disagreeRank ? 2 : 1);
    if (comm->rank() == hangRank) sleep(600);
    if (comm->rank() == killRank) raise(SIGKILL);

    Buffers buf(comm->deviceBuffers() ? device.get() : nullptr);
    if (benchElements) {
      bench(*comm, buf, benchElements);
      return 0;
    }
    // One fresh seed for all ranks.
    uint64_t seed = std::random_device{}() * 0x9e3779b97f4a7c15ull ^ static_cast<uint64_t>(getpid());
    void *s = buf.alloc(8);
    buf.put(s, std::vector<char>(reinterpret_cast<char *>(&seed), reinterpret_cast<char *>(&seed) + 8));
    comm->broadcast(s, 8, DType::U8, 0);
    std::memcpy(&seed, buf.get(s, 8).data(), 8);

    bool exact = comm->describe().rfind("mpi", 0) == 0 || comm->size() == 1;
    Checker c{*comm, buf, seed, exact && !comm->deviceBuffers()};
    c.run();
    // Every rank's verdict, summed.
    float failed = static_cast<float>(c.failures);
    void *f = buf.alloc(4);
    buf.put(f, std::vector<char>(reinterpret_cast<char *>(&failed), reinterpret_cast<char *>(&failed) + 4));
    comm->allReduce(f, 1, DType::F32);
    std::memcpy(&failed, buf.get(f, 4).data(), 4);
    if (comm->rank() == 0)
      std::printf("comm-check: %s: %d checks per rank with seed %llu: %s\n", comm->describe().c_str(), c.checks,
                  static_cast<unsigned long long>(seed), failed == 0 ? "all passed on every rank" : "FAILED");
    return failed == 0 ? 0 : 1;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "tl-comm-check: %s\n", e.what());
    return 1;
  }
}
