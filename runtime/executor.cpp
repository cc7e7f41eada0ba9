#include "runtime/executor.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>

namespace tlc {

Executor::Executor(const artifact::Artifact &a, Device &device) : a_(a), device_(device) {
  device_.loadKernels(a);
  arena_ = device_.alloc(static_cast<size_t>(a.arenaBytes));
  error_ = static_cast<int *>(device_.alloc(sizeof(int)));
  auto allocAll = [&](const std::vector<artifact::Tensor> &ts, std::vector<void *> &out) {
    for (const auto &t : ts) out.push_back(device_.alloc(a.buffers[t.buffer].bytes));
  };
  allocAll(a.params, params_);
  allocAll(a.inputs, inputs_);
  allocAll(a.outputs, outputs_);
  profile_ = std::getenv("TLC_PROFILE") != nullptr;
  stepSeconds_.assign(a.steps.size(), 0.0);
}

Executor::~Executor() {
  if (profile_) printProfile();
  for (auto *list : {&params_, &inputs_, &outputs_})
    for (void *p : *list) device_.release(p);
  device_.release(arena_);
  device_.release(error_);
}

void *Executor::pointer(int buffer) const {
  const artifact::Buffer &b = a_.buffers[buffer];
  switch (b.kind) {
    case artifact::BufferKind::Arena: return static_cast<char *>(arena_) + b.offset;
    case artifact::BufferKind::Param: return params_[b.offset];
    case artifact::BufferKind::Input: return inputs_[b.offset];
    case artifact::BufferKind::Output: return outputs_[b.offset];
  }
  return nullptr;
}

void Executor::setParam(size_t i, const void *host) {
  device_.upload(params_[i], host, a_.buffers[a_.params[i].buffer].bytes);
}
void Executor::setInput(size_t i, const void *host) {
  device_.upload(inputs_[i], host, a_.buffers[a_.inputs[i].buffer].bytes);
}
void Executor::getOutput(size_t i, void *host) {
  device_.download(host, outputs_[i], a_.buffers[a_.outputs[i].buffer].bytes);
}

void Executor::run() {
  std::map<std::string, const artifact::Kernel *> kernels;
  for (const auto &k : a_.kernels) kernels[k.name] = &k;
  device_.zero(error_, sizeof(int));
  std::vector<void *> args;
  for (size_t i = 0; i < a_.steps.size(); ++i) {
    const artifact::Step &s = a_.steps[i];
    auto start = std::chrono::steady_clock::now();
    args.clear();
    for (int b : s.buffers) args.push_back(pointer(b));
    switch (s.kind) {
      case artifact::Step::Kernel: device_.launch(*kernels.at(s.kernel), args, error_); break;
      case artifact::Step::Gemm: device_.gemm(s.gemm, args[0], args[1], args[2]); break;
      case artifact::Step::Zero: device_.zero(args[0], a_.buffers[s.buffers[0]].bytes); break;
    }
    if (profile_) {
      device_.synchronize();
      stepSeconds_[i] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
  }
  device_.synchronize();
  int code = 0;
  device_.download(&code, error_, sizeof code);
  if (code > 0 && code <= static_cast<int>(a_.steps.size()))
    throw DeviceError("an index is out of range (a token id or target beyond the vocabulary?) in step " +
                      std::to_string(code - 1) + " (" + a_.steps[code - 1].kernel + ") at " +
                      a_.steps[code - 1].location);
  if (code != 0) throw DeviceError("a kernel reported error " + std::to_string(code));
}

void Executor::printProfile() const {
  // Kernels named kN_<op>: group by <op>; GEMMs by shape.
  std::map<std::string, std::pair<double, int>> byKind;
  double total = 0;
  for (size_t i = 0; i < a_.steps.size(); ++i) {
    const artifact::Step &s = a_.steps[i];
    std::string kind = s.kind == artifact::Step::Gemm ? "gemm"
                       : s.kind == artifact::Step::Zero ? "zero"
                                                          : s.kernel.substr(s.kernel.find('_') + 1);
    byKind[kind].first += stepSeconds_[i];
    byKind[kind].second += 1;
    total += stepSeconds_[i];
  }
  std::vector<std::pair<std::string, std::pair<double, int>>> rows(byKind.begin(), byKind.end());
  std::sort(rows.begin(), rows.end(), [](auto &x, auto &y) { return x.second.first > y.second.first; });
  std::fprintf(stderr, "profile (%s): %.3f s in %zu steps\n", device_.describe().c_str(), total,
               a_.steps.size());
  for (const auto &[kind, v] : rows)
    std::fprintf(stderr, "  %-28s %9.3f s %5.1f%%  (%d steps)\n", kind.c_str(), v.first,
                 total > 0 ? 100 * v.first / total : 0.0, v.second);
}

}  // namespace tlc
