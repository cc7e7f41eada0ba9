//===- MemoryPlan.cpp - tlc compile's memory budget and estimate ----------===//
#include "compiler/Driver/MemoryPlan.h"

#include "cli/cli.h"

#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

namespace mlir::tl {

namespace {
// The CUDA device's cuBLASLt workspace (runtime/cuda/cuda_device.cpp).
constexpr int64_t kGemmWorkspaceBytes = 32ll << 20;

std::string gib(int64_t bytes) { return llvm::formatv("{0:F1} GiB", bytes / double(1ll << 30)).str(); }
} // namespace

int64_t parseByteSize(const std::string &text, const std::string &option) {
  auto bad = [&] {
    return ::tlc::cli::UsageError(option + " expects a size such as 30GiB, 32GB, 800MiB or a number of "
                                           "bytes, got '" + text + "'");
  };
  size_t end = 0;
  double value = 0;
  try {
    value = std::stod(text, &end);
  } catch (const std::exception &) {
    throw bad();
  }
  std::string unit = text.substr(end);
  unit.erase(0, unit.find_first_not_of(' '));
  std::string lower;
  for (char c : unit) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const std::map<std::string, double> units = {
      {"", 1},          {"b", 1},           {"k", 1024.0},     {"kib", 1024.0},  {"kb", 1e3},
      {"m", 1048576.0}, {"mib", 1048576.0}, {"mb", 1e6},       {"g", 1073741824.0},
      {"gib", 1073741824.0}, {"gb", 1e9},   {"t", 1099511627776.0}, {"tib", 1099511627776.0},
      {"tb", 1e12}};
  auto it = units.find(lower);
  if (it == units.end() || !std::isfinite(value) || value <= 0 || value * it->second > 9.0e18) throw bad();
  return static_cast<int64_t>(value * it->second);
}

std::string withCommas(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string humanBytes(int64_t bytes) {
  const char *names[] = {"B", "KB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int i = 0;
  while (std::fabs(v) >= 1000 && i < 4) v /= 1000, ++i;
  if (i == 0) return std::to_string(bytes) + " B";
  return llvm::formatv("{0:F2} {1}", v, names[i]).str();
}

DeviceState deviceStateOf(int64_t flatElements, int64_t paramBytes, int ranks) {
  DeviceState s;
  s.params = flatElements * paramBytes;
  s.grads = flatElements * 4;
  // Rank 0's shard: the flat buffer cut in `ranks` aligned pieces, as tlrun's
  // sharding does (runtime/comm/sharding.cpp).
  int64_t align = ::tlc::artifact::kFlatAlignment;
  int64_t shard = ((flatElements + ranks - 1) / ranks + align - 1) / align * align;
  s.optimizer = std::min(shard, flatElements) * (3 * 4 + 1);  // master, m, v (f32), decay mask (a byte)
  s.workspace = kGemmWorkspaceBytes;
  return s;
}

namespace {
namespace art = ::tlc::artifact;

DeviceState stateOf(const art::Artifact &a, int ranks) {
  return deviceStateOf(a.flatElements, static_cast<int64_t>(art::dtypeSize(a.paramDType())), ranks);
}

/// Training allocates the inputs and outputs of train_step and eval_loss
/// beside the arena (runtime/train/training_state.cpp).
int64_t trainingIoBytes(const art::Artifact &a) {
  int64_t io = 0;
  for (const art::EntryPoint &e : a.entries)
    if (e.name == art::kTrainStep || e.name == art::kEvalLoss)
      for (const auto *list : {&e.inputs, &e.outputs})
        for (const art::Tensor &t : *list) io += a.buffers[t.buffer].bytes;
  return io;
}
} // namespace

/// One line per entry point: its steps and its arena plan.
std::string entryPointSummary(const art::Artifact &a) {
  std::string out;
  for (const auto &e : a.entries)
    out += llvm::formatv("  entry point {0}: {1} steps, arena {2} bytes planned (tensors sum to {3} "
                         "bytes, {4:P} of it)\n",
                         e.name, e.steps.size(), withCommas(e.arenaBytes), withCommas(e.unplannedBytes),
                         static_cast<double>(e.arenaBytes) / std::max<int64_t>(1, e.unplannedBytes))
               .str();
  return out;
}

int64_t deviceTotal(const art::Artifact &a, int ranks) {
  return stateOf(a, ranks).total() + a.arenaBytes + trainingIoBytes(a);
}

std::string memoryEstimate(const art::Artifact &a, int ranks) {
  DeviceState s = stateOf(a, ranks);
  int64_t io = trainingIoBytes(a), total = deviceTotal(a, ranks);
  std::string who = ranks == 1 ? "one rank, unsharded"
                               : llvm::formatv("one of {0} ranks, the optimizer state sharded", ranks).str();
  return llvm::formatv("  memory per device ({9}): parameters {0} ({1}) + gradients {2} (f32) "
                       "+ optimizer {3} (f32 master, m, v) + arena {4} + inputs/outputs {5} + GEMM workspace "
                       "{6} = {7} ({8})\n",
                       humanBytes(s.params), art::dtypeName(a.paramDType()), humanBytes(s.grads),
                       humanBytes(s.optimizer), humanBytes(a.arenaBytes), humanBytes(io),
                       humanBytes(s.workspace), humanBytes(total), gib(total), who)
      .str();
}

std::string recomputeSummary(const RecomputeReport &r) {
  if (!r.ran) return "";
  double share = r.stepFlops > 0 ? 100.0 * r.recomputedFlops / r.stepFlops : 0;
  std::string budget = r.budget > 0 ? ", activation budget " + humanBytes(r.budget) : "";
  return llvm::formatv("  recompute: {0}{1}: {2} values, estimated peak {3} -> {4}; {5:F2} GFLOP recomputed, "
                       "{6:F2}% of the step's {7:F1} GFLOP\n",
                       recomputeModeName(r.mode), budget, r.decisions.size(), humanBytes(r.peakBefore),
                       humanBytes(r.peakAfter), r.recomputedFlops / 1e9, share, r.stepFlops / 1e9)
      .str();
}

std::string recomputeDecisions(const RecomputeReport &r) {
  struct Group {
    int count = 0;
    int64_t bytes = 0, flops = 0;
    std::string first;
    bool cheap = false;
  };
  std::map<std::string, Group> groups;
  for (const RecomputeDecision &d : r.decisions) {
    Group &g = groups[d.op];
    if (g.count++ == 0) g.first = d.location;
    g.bytes += d.bytes;
    g.flops += d.flops;
    g.cheap = d.cheap;
  }
  std::vector<std::pair<std::string, Group>> sorted(groups.begin(), groups.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto &x, const auto &y) { return x.second.bytes > y.second.bytes; });
  std::string out = llvm::formatv("  {0,-22} {1,6} {2,12} {3,12} {4,-8} {5}\n", "recomputed", "values",
                                  "bytes", "GFLOP", "why", "first at")
                        .str();
  for (const auto &[op, g] : sorted)
    out += llvm::formatv("  {0,-22} {1,6} {2,12} {3,12:F2} {4,-8} {5}\n", op, g.count, humanBytes(g.bytes),
                         g.flops / 1e9, g.cheap ? "cheap" : r.mode == RecomputeMode::Full ? "full" : "budget", g.first)
               .str();
  if (sorted.empty()) out += "  (nothing recomputed)\n";
  return out;
}

} // namespace mlir::tl
