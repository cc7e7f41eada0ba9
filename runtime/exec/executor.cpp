#include "runtime/exec/executor.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

namespace tlc {

Executor::Executor(const artifact::Artifact &a, Device &device, int64_t flatElements,
                   const std::vector<std::string> &only)
    : a_(a), device_(device) {
  for (const std::string &name : only) entryIndex(name);  // throws when absent
  auto used = [&](const artifact::EntryPoint &e) {
    return only.empty() || std::find(only.begin(), only.end(), e.name) != only.end();
  };
  int64_t arenaBytes = only.empty() ? a.arenaBytes : 0;
  bool grads = only.empty();
  for (const auto &e : a.entries) {
    if (!used(e)) continue;
    arenaBytes = std::max(arenaBytes, e.arenaBytes);
    for (const auto &s : e.steps)
      for (int b : s.buffers) grads |= a.buffers[b].kind == artifact::BufferKind::Grad;
  }
  size_t flat = static_cast<size_t>(std::max(flatElements, a.flatElements));
  device_.loadKernels(a);
  arena_ = device_.alloc(static_cast<size_t>(arenaBytes));
  error_ = static_cast<int *>(device_.alloc(sizeof(int)));
  params_ = device_.alloc(flat * artifact::dtypeSize(a.paramDType()));
  if (grads) grads_ = device_.alloc(flat * sizeof(float));
  for (const auto &e : a.entries) {
    inputs_.emplace_back();
    outputs_.emplace_back();
    stepSeconds_.emplace_back(e.steps.size(), 0.0);
    if (!used(e)) continue;
    for (const auto &t : e.inputs) inputs_.back().push_back(device_.alloc(a.buffers[t.buffer].bytes));
    for (const auto &t : e.outputs) outputs_.back().push_back(device_.alloc(a.buffers[t.buffer].bytes));
  }
  profile_ = std::getenv("TLC_PROFILE") != nullptr;
  const char *graphs = std::getenv("TLC_CUDA_GRAPHS");
  graphs_ = !profile_ && !(graphs && std::string(graphs) == "0");
}

Executor::~Executor() {
  if (profile_) printProfile();
  releaseGraphs();
  for (auto *lists : {&inputs_, &outputs_})
    for (auto &list : *lists)
      for (void *p : list) device_.release(p);
  for (void *p : {arena_, params_, grads_, static_cast<void *>(error_)})
    if (p) device_.release(p);
}

size_t Executor::entryIndex(const std::string &name) const {
  for (size_t i = 0; i < a_.entries.size(); ++i)
    if (a_.entries[i].name == name) return i;
  throw artifact::Error("the artifact has no entry point '" + name + "': recompile with tlc compile");
}

void *Executor::pointer(size_t entry, int buffer) const {
  const artifact::Buffer &b = a_.buffers[buffer];
  switch (b.kind) {
    case artifact::BufferKind::Arena: return static_cast<char *>(arena_) + b.offset;
    case artifact::BufferKind::Param:
      return static_cast<char *>(params_) +
             a_.params[b.offset].offset * artifact::dtypeSize(a_.paramDType());
    case artifact::BufferKind::Grad: return static_cast<float *>(grads_) + a_.params[b.offset].offset;
    case artifact::BufferKind::Input: return inputs_[entry][b.offset];
    case artifact::BufferKind::Output: return outputs_[entry][b.offset];
  }
  return nullptr;
}

void Executor::setParam(size_t i, const void *host) {
  const artifact::Tensor &p = a_.params[i];
  size_t size = artifact::dtypeSize(p.dtype);
  device_.upload(static_cast<char *>(params_) + p.offset * size, host, p.numel() * size);
}
int64_t Executor::resolveBatch(size_t entry, int64_t batch) const {
  const artifact::EntryPoint &e = a_.entries[entry];
  if (batch == 0 || batch == e.batch) return e.batch;
  // Without a run-time batch count (the compiler found no batch dimension,
  // as at B = 1) the compiled micro-batch, the inputs' leading extent, runs.
  if (e.batch == 0 && !e.inputs.empty() && !e.inputs[0].shape.empty() && batch == e.inputs[0].shape[0]) return 0;
  if (e.batch == 0)
    throw artifact::Error(e.name + " runs only the micro-batch it was compiled for, not " + std::to_string(batch));
  if (batch < 0 || batch > e.batch)
    throw artifact::Error(e.name + " runs micro-batches of 1 to " + std::to_string(e.batch) +
                          " (the compiled one), not " + std::to_string(batch));
  return batch;
}

void Executor::setInput(size_t entry, size_t i, const void *host, int64_t batch) {
  const artifact::EntryPoint &e = a_.entries[entry];
  int64_t bytes = a_.buffers[e.inputs[i].buffer].bytes, run = resolveBatch(entry, batch);
  if (e.batch > 0) bytes = bytes / e.batch * run;  // inputs lead with the micro-batch
  device_.upload(inputs_[entry][i], host, bytes);
}
void Executor::getOutput(size_t entry, size_t o, void *host) {
  device_.download(host, outputs_[entry][o], a_.buffers[a_.entries[entry].outputs[o].buffer].bytes);
}
void Executor::getOutputBytes(size_t entry, size_t o, void *host, int64_t offset, int64_t bytes) {
  const artifact::Tensor &t = a_.entries[entry].outputs[o];
  if (offset < 0 || bytes < 0 || offset + bytes > a_.buffers[t.buffer].bytes)
    throw artifact::Error(a_.entries[entry].name + ": bytes " + std::to_string(offset) + ".." +
                          std::to_string(offset + bytes) + " are outside output '" + t.name + "'");
  device_.download(host, static_cast<char *>(outputs_[entry][o]) + offset, bytes);
}

void Executor::swapInputOutput(size_t entry, size_t i, size_t o) {
  const artifact::EntryPoint &e = a_.entries[entry];
  if (a_.buffers[e.inputs[i].buffer].bytes != a_.buffers[e.outputs[o].buffer].bytes)
    throw artifact::Error(e.name + ": input '" + e.inputs[i].name + "' and output '" + e.outputs[o].name +
                          "' differ in size");
  std::swap(inputs_[entry][i], outputs_[entry][o]);
}

void Executor::run(size_t entry, int64_t batch, const std::function<void(size_t step)> &afterStep) {
  const artifact::EntryPoint &e = a_.entries[entry];
  batch = resolveBatch(entry, batch);
  if (inputs_[entry].size() != e.inputs.size() || outputs_[entry].size() != e.outputs.size())
    throw artifact::Error(e.name + ": this executor was made for other entry points");
  device_.zero(error_, sizeof(int));
  // Data parallelism's hooks need the host between steps: no graph then.
  if (afterStep || !replayed(entry, batch)) issueSteps(entry, batch, afterStep);
  device_.synchronize();
  int code = 0;
  device_.download(&code, error_, sizeof code);
  // Kernels report the 1-based index of their step in the entry point.
  if (code > 0 && code <= static_cast<int>(e.steps.size()))
    throw DeviceError("an index is out of range (a token id or target beyond the vocabulary?) in " + e.name +
                      " step " + std::to_string(code - 1) + " (" + e.steps[code - 1].kernel + ") at " +
                      e.steps[code - 1].location);
  if (code != 0) throw DeviceError("a kernel reported error " + std::to_string(code));
}

void Executor::issueSteps(size_t entry, int64_t batch, const std::function<void(size_t step)> &afterStep) {
  const artifact::EntryPoint &e = a_.entries[entry];
  std::vector<void *> args;
  for (size_t i = 0; i < e.steps.size(); ++i) {
    const artifact::Step &s = e.steps[i];
    auto start = std::chrono::steady_clock::now();
    args.clear();
    for (int b : s.buffers) args.push_back(pointer(entry, b));
    switch (s.kind) {
      case artifact::Step::Kernel: {
        device_.launch(*a_.kernel(s.kernel), args, error_, s.gridFor(batch, e.batch), s.countsFor(batch, e.batch));
        break;
      }
      case artifact::Step::Gemm: device_.gemm(s.gemm.forBatch(batch, e.batch), args[0], args[1], args[2]); break;
      case artifact::Step::Zero: device_.zero(args[0], a_.buffers[s.buffers[0]].bytes); break;
    }
    if (profile_) {
      device_.synchronize();
      stepSeconds_[entry][i] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    if (afterStep) afterStep(i);
  }
}

// Issues the run's steps as its key's graph, captured on the key's second
// run (see graphs_); false when the caller must issue them itself.
bool Executor::replayed(size_t entry, int64_t batch) {
  if (!graphs_) return false;
  std::vector<uintptr_t> key = {entry, static_cast<uintptr_t>(batch)};
  for (const auto *lists : {&inputs_, &outputs_})
    for (void *p : (*lists)[entry]) key.push_back(reinterpret_cast<uintptr_t>(p));
  Graph &g = graphCache_[key];
  if (!g.graph) {
    // Eager first: plans the GEMMs, loads their kernels, fails plainly.
    if (g.runs++ == 0) return false;
    void *graph = capture(entry, batch);  // when null, the cache is gone
    if (!graph) return false;
    g.graph = graph;
  }
  try {
    device_.replay(g.graph);
  } catch (const DeviceError &err) {
    graphsOff("replay", err.what());
    return false;
  }
  return true;
}

// The run's steps captured as a graph, or null: graphs are off from then on
// (silently where the device has none).
void *Executor::capture(size_t entry, int64_t batch) {
  std::string why = "no graph came back";
  try {
    if (!device_.beginCapture()) {
      graphs_ = false;
      return nullptr;
    }
    try {
      issueSteps(entry, batch, {});
    } catch (...) {
      try {  // ends the capture; the first error is the one to report
        if (void *g = device_.endCapture()) device_.releaseGraph(g);
      } catch (const std::exception &) {
      }
      throw;
    }
    if (void *g = device_.endCapture()) return g;
  } catch (const std::exception &err) {
    why = err.what();
  }
  graphsOff("capture", why);
  return nullptr;
}

// Never fails a run: warns once and runs kernel by kernel from then on.
void Executor::graphsOff(const char *what, const std::string &why) {
  std::fprintf(stderr, "warning: CUDA graph %s failed (%s): running kernel by kernel\n", what, why.c_str());
  graphs_ = false;
  releaseGraphs();
}

void Executor::releaseGraphs() {
  for (auto &[key, g] : graphCache_)
    if (g.graph) device_.releaseGraph(g.graph);
  graphCache_.clear();
}

void Executor::printProfile() const {
  for (size_t entry = 0; entry < a_.entries.size(); ++entry) {
    const artifact::EntryPoint &e = a_.entries[entry];
    // Kernels named kN_<op>: group by <op>; GEMMs by shape.
    std::map<std::string, std::pair<double, int>> byKind;
    double total = 0;
    for (size_t i = 0; i < e.steps.size(); ++i) {
      const artifact::Step &s = e.steps[i];
      std::string kind = s.kind == artifact::Step::Gemm ? "gemm"
                         : s.kind == artifact::Step::Zero ? "zero"
                                                            : s.kernel.substr(s.kernel.find('_') + 1);
      byKind[kind].first += stepSeconds_[entry][i];
      byKind[kind].second += 1;
      total += stepSeconds_[entry][i];
    }
    if (total == 0) continue;  // never run
    std::vector<std::pair<std::string, std::pair<double, int>>> rows(byKind.begin(), byKind.end());
    std::sort(rows.begin(), rows.end(), [](auto &x, auto &y) { return x.second.first > y.second.first; });
    std::fprintf(stderr, "profile of %s (%s): %.3f s in %zu steps\n", e.name.c_str(),
                 device_.describe().c_str(), total, e.steps.size());
    for (const auto &[kind, v] : rows)
      std::fprintf(stderr, "  %-28s %9.3f s %5.1f%%  (%d steps)\n", kind.c_str(), v.first,
                   total > 0 ? 100 * v.first / total : 0.0, v.second);
  }
}

}  // namespace tlc
