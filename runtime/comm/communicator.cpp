// Choosing a communicator: the single-process one, the MPI plugin (dlopen'ed
// so that tlrun never links libmpi), or NCCL.
#include "runtime/comm/communicator.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "runtime/comm/comm_common.h"

namespace tlc::comm {
namespace {

const char *env(const char *name) {
  const char *v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int envInt(const char *name, int fallback) {
  const char *v = env(name);
  if (!v) return fallback;
  char *end = nullptr;
  long x = std::strtol(v, &end, 10);
  return end && *end == '\0' && x >= 0 ? static_cast<int>(x) : fallback;
}

// A job of one: every collective is a copy (or nothing).
class SingleWork : public Work {
 public:
  void wait() override {}
};

class SingleCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  bool deviceBuffers() const override { return false; }
  std::string describe() const override { return "single process"; }
  std::unique_ptr<Work> start(const Collective &c) override {
    checkCollective(c, 1);
    size_t bytes = c.count * dtypeSize(c.dtype);
    if (c.op != Op::Barrier && c.send != c.recv && bytes) std::memmove(c.recv, c.send, bytes);
    return std::make_unique<SingleWork>();
  }
};

std::string executableDir() {
  std::vector<char> buf(4096);
  ssize_t n = readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n <= 0) return ".";
  std::string path(buf.data(), static_cast<size_t>(n));
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

}  // namespace

Launch detectLaunch() {
  Launch l;
  if (env("OMPI_COMM_WORLD_SIZE")) {
    l.launcher = "open mpi";
    l.size = envInt("OMPI_COMM_WORLD_SIZE", -1);
    l.rank = envInt("OMPI_COMM_WORLD_RANK", 0);
    l.localRank = envInt("OMPI_COMM_WORLD_LOCAL_RANK", 0);
  } else if (env("PMI_SIZE")) {  // MPICH's hydra, Slurm's PMI-1/2
    l.launcher = "pmi";
    l.size = envInt("PMI_SIZE", -1);
    l.rank = envInt("PMI_RANK", 0);
    l.localRank = envInt("MPI_LOCALRANKID", envInt("SLURM_LOCALID", 0));
  } else if (env("PMIX_RANK")) {  // PMIx without a size variable (srun --mpi=pmix sets SLURM_*)
    l.launcher = "pmix";
    l.size = envInt("SLURM_NTASKS", -1);
    l.rank = envInt("PMIX_RANK", 0);
    l.localRank = envInt("SLURM_LOCALID", 0);
  } else if (env("SLURM_PROCID") && env("SLURM_NTASKS")) {
    l.launcher = "slurm";
    l.size = envInt("SLURM_NTASKS", -1);
    l.rank = envInt("SLURM_PROCID", 0);
    l.localRank = envInt("SLURM_LOCALID", 0);
  }
  return l;
}

void requireSameOnAllRanks(Communicator &c, const std::string &what, uint64_t digest) {
  Communicator &h = c.host();
  std::vector<uint64_t> all(static_cast<size_t>(h.size()));
  h.allGather(&digest, all.data(), sizeof digest, DType::U8);
  std::string differ;
  for (size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0]) differ += (differ.empty() ? "" : ", ") + std::to_string(r);
  if (!differ.empty())
    throw CommError("comm: the ranks disagree on " + what + ": rank(s) " + differ + " differ from rank 0" +
                    " (start every rank with the same files and settings)");
}

std::unique_ptr<Communicator> makeSingleCommunicator() { return std::make_unique<SingleCommunicator>(); }

std::unique_ptr<Communicator> makeMpiCommunicator(const Options &o) {
  std::vector<std::string> candidates;
  if (!o.mpiPlugin.empty()) {
    candidates.push_back(o.mpiPlugin);
  } else if (const char *p = env("TLC_COMM_MPI_PLUGIN")) {
    candidates.push_back(p);
  } else {
    std::string dir = executableDir();
    candidates = {dir + "/libtl_comm_mpi.so", dir + "/../lib/libtl_comm_mpi.so", "libtl_comm_mpi.so"};
  }
  std::string tried;
  void *lib = nullptr;
  for (const std::string &c : candidates) {
    // Global: Open MPI's own components resolve libmpi's symbols through it.
    if ((lib = dlopen(c.c_str(), RTLD_NOW | RTLD_GLOBAL))) break;
    tried += "\n  " + c + ": " + dlerror();
  }
  if (!lib)
    throw CommError("comm: cannot load the MPI plugin libtl_comm_mpi.so (it needs Open MPI's libmpi.so.40; "
                    "install openmpi-bin, or set TLC_COMM_MPI_PLUGIN):" + tried);
  auto abi = reinterpret_cast<int (*)()>(dlsym(lib, "tl_comm_mpi_abi"));
  auto create = reinterpret_cast<Communicator *(*)(double, char *, size_t)>(dlsym(lib, "tl_comm_mpi_create"));
  if (!abi || !create || abi() != kMpiPluginAbi)
    throw CommError("comm: the MPI plugin does not match this tlrun (rebuild both from the same source)");
  char error[1024] = {0};
  Communicator *c = create(o.timeoutSeconds, error, sizeof error);
  if (!c) throw CommError(std::string("comm: MPI: ") + error);
  return std::unique_ptr<Communicator>(c);
}

std::unique_ptr<Communicator> makeCommunicator(const Options &o) {
  if (!(o.timeoutSeconds > 0))
    throw CommError("comm: comm_timeout_s must be positive, got " + std::to_string(o.timeoutSeconds));
  Launch l = detectLaunch();
  bool many = !l.launcher.empty() && l.size != 1;
  if (o.backend == "single") {
    if (many)
      throw CommError("comm: backend 'single' but " + l.launcher + " started " +
                      (l.size > 0 ? std::to_string(l.size) : std::string("several")) + " ranks");
    return makeSingleCommunicator();
  }
  // An MPI world smaller than the launcher's (srun with an MPI built without
  // that launcher's support) would train as N independent jobs.
  auto joined = [&](std::unique_ptr<Communicator> c) {
    if (many && l.size > 0 && c->size() != l.size)
      throw CommError("comm: " + l.launcher + " started " + std::to_string(l.size) + " ranks, but MPI joined " +
                      std::to_string(c->size()) + " of them: this MPI lacks " + l.launcher +
                      " support (launch with mpirun, or srun --mpi=pmix where MPI was built with PMIx)");
    return c;
  };
  if (o.backend == "mpi") return joined(makeMpiCommunicator(o));
  if (o.backend == "nccl") return makeNcclCommunicator(o, many ? joined(makeMpiCommunicator(o)) : nullptr);
  if (o.backend == "auto") {
    if (!many) return makeSingleCommunicator();
    std::unique_ptr<Communicator> c;
    try {
      c = makeMpiCommunicator(o);
    } catch (const CommError &e) {
      throw CommError("comm: started by " + l.launcher + " with " +
                      (l.size > 0 ? std::to_string(l.size) : std::string("several")) + " ranks, but " +
                      (e.what() + 6));
    }
    return joined(std::move(c));
  }
  throw CommError("comm: unknown backend '" + o.backend + "' (expected auto, single, mpi or nccl)");
}

}  // namespace tlc::comm
