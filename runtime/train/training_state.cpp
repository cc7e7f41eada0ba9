#include "runtime/train/training_state.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "runtime/exec/executor.h"
#include "formats/half.h"

namespace tlc {
namespace {

// Layout of the small scalar buffer the optimizer kernels read: the element
// count at byte 0, the AdamW hyperparameters as floats from byte 16.
constexpr size_t kHyperOffset = 16, kScalarBytes = 64;

struct EntryIo {
  size_t entry = 0, tokens = 0, targets = 0, loss = 0;
};

EntryIo entryIo(const Executor &ex, const std::string &name) {
  const artifact::Artifact &a = ex.artifact();
  EntryIo io;
  io.entry = ex.entryIndex(name);
  const artifact::EntryPoint &e = a.entries[io.entry];
  bool tokens = false, targets = false, loss = false;
  for (size_t i = 0; i < e.inputs.size(); ++i) {
    if (e.inputs[i].name == "tokens") io.tokens = i, tokens = true;
    else if (e.inputs[i].name == "targets") io.targets = i, targets = true;
    else throw artifact::Error(name + ": don't know how to feed input '" + e.inputs[i].name + "'");
  }
  for (size_t o = 0; o < e.outputs.size(); ++o)
    if (e.outputs[o].name == "loss") io.loss = o, loss = true;
  if (!tokens || !targets || e.inputs[io.tokens].shape.size() != 2 ||
      e.inputs[io.tokens].shape != e.inputs[io.targets].shape)
    throw artifact::Error(name + " needs inputs 'tokens' and 'targets' of shape [B, T]");
  if (!loss || e.outputs[io.loss].numel() != 1) throw artifact::Error(name + " needs a scalar output 'loss'");
  return io;
}

// Training needs the training step and the loss; not generation's KV caches.
std::vector<std::string> trainingEntries(const artifact::Artifact &a) {
  std::vector<std::string> names;
  for (const auto &e : a.entries)
    if (e.name == artifact::kTrainStep || e.name == artifact::kEvalLoss) names.push_back(e.name);
  return names;
}

}  // namespace

struct TrainingState::Impl {
  Impl(const artifact::Artifact &a, Device &d, int64_t allocated)
      : ex(a, d, allocated, trainingEntries(a)), dev(d), allocated(std::max(allocated, a.flatElements)) {}
  Executor ex;
  Device &dev;
  int64_t allocated;
  Range opt;
  EntryIo train, eval;
  bool hasEval = false;
  int64_t batch = 0;  // the run's micro-batch; 0: the compiled one
  void *master = nullptr, *m = nullptr, *v = nullptr, *decay = nullptr;
  void *scalars = nullptr;  // count + hyperparameters
  double *sums = nullptr;   // kSumSqPartials partial sums, then the total
  const artifact::Kernel *adamw = nullptr, *sumsqPartial = nullptr, *sumsqFinal = nullptr;
  // TLC_PROFILE: the optimizer's calls, timed like the executor's steps
  // (synchronised); the table goes to stderr with the executor's.
  bool profile = std::getenv("TLC_PROFILE") != nullptr;
  struct Timing {
    const char *kind;
    double seconds = 0;
    int calls = 0;
  } timings[3] = {{"zero_grads"}, {"opt_sumsq"}, {"opt_adamw"}};
  using Clock = std::chrono::steady_clock;
  void record(int which, Clock::time_point start) {
    if (!profile) return;
    dev.synchronize();
    timings[which].seconds += std::chrono::duration<double>(Clock::now() - start).count();
    ++timings[which].calls;
  }
  void printProfile() const {
    double total = 0;
    for (const Timing &t : timings) total += t.seconds;
    if (!profile || total == 0) return;
    std::fprintf(stderr, "profile of the optimizer (%s): %.3f s\n", dev.describe().c_str(), total);
    for (const Timing &t : timings)
      std::fprintf(stderr, "  %-28s %9.3f s %5.1f%%  (%d calls)\n", t.kind, t.seconds, 100 * t.seconds / total,
                   t.calls);
  }

  size_t paramSize() const { return artifact::dtypeSize(ex.artifact().paramDType()); }
  float run(const EntryIo &io, const int32_t *tokens, const int32_t *targets,
            const std::function<void(size_t)> &afterStep = {}) {
    ex.setInput(io.entry, io.tokens, tokens, batch);
    ex.setInput(io.entry, io.targets, targets, batch);
    ex.run(io.entry, batch, afterStep);
    const artifact::Tensor &t = ex.artifact().entries[io.entry].outputs[io.loss];
    if (t.dtype == artifact::DType::BF16) {
      uint16_t h;
      ex.getOutput(io.entry, io.loss, &h);
      return bf16ToFloat(h);
    }
    float loss;
    ex.getOutput(io.entry, io.loss, &loss);
    return loss;
  }
  void setCount(int64_t n) { dev.upload(scalars, &n, sizeof n); }
  void check(Range r, Range within, const char *what) const {
    if (r.begin < within.begin || r.end > within.end || r.begin > r.end)
      throw std::out_of_range(std::string(what) + ": range [" + std::to_string(r.begin) + ", " +
                              std::to_string(r.end) + ") outside [" + std::to_string(within.begin) +
                              ", " + std::to_string(within.end) + ")");
  }
};

TrainingState::TrainingState(const artifact::Artifact &a, Device &device, Range optimizerRange, int64_t allocatedElements)
    : impl_(std::make_unique<Impl>(a, device, allocatedElements)) {
  Impl &s = *impl_;
  s.opt = optimizerRange.size() == 0 ? Range{0, a.flatElements} : optimizerRange;
  s.check(s.opt, {0, a.flatElements}, "optimizer range");
  s.train = entryIo(s.ex, artifact::kTrainStep);
  if (a.entry(artifact::kEvalLoss)) {
    s.eval = entryIo(s.ex, artifact::kEvalLoss);
    s.hasEval = true;
  }
  s.adamw = a.kernel(artifact::kAdamWKernel);
  s.sumsqPartial = a.kernel(artifact::kSumSqPartialKernel);
  s.sumsqFinal = a.kernel(artifact::kSumSqFinalKernel);
  if (!s.adamw || !s.sumsqPartial || !s.sumsqFinal)
    throw artifact::Error("the artifact has no optimizer kernels: recompile with tlc compile");
  size_t n = static_cast<size_t>(s.opt.size());
  s.master = device.alloc(n * sizeof(float));
  s.m = device.alloc(n * sizeof(float));
  s.v = device.alloc(n * sizeof(float));
  s.decay = device.alloc(n);
  s.scalars = device.alloc(kScalarBytes);
  s.sums = static_cast<double *>(device.alloc((artifact::kSumSqPartials + 1) * sizeof(double)));
  std::vector<bool> mask;
  for (const auto &p : a.params) mask.push_back(p.decay);  // the model's policy
  setWeightDecayMask(mask);
}

TrainingState::~TrainingState() {
  impl_->printProfile();
  for (void *p : {impl_->master, impl_->m, impl_->v, impl_->decay, impl_->scalars,
                  static_cast<void *>(impl_->sums)})
    impl_->dev.release(p);
}

const artifact::Artifact &TrainingState::artifact() const { return impl_->ex.artifact(); }
int64_t TrainingState::flatElements() const { return artifact().flatElements; }
int64_t TrainingState::allocatedElements() const { return impl_->allocated; }
Range TrainingState::optimizerRange() const { return impl_->opt; }
Range TrainingState::rangeOf(size_t i) const {
  const artifact::Tensor &p = artifact().params.at(i);
  return {p.offset, p.offset + p.numel()};
}
int64_t TrainingState::batchSize() const {
  if (impl_->batch) return impl_->batch;
  return artifact().entries[impl_->train.entry].inputs[impl_->train.tokens].shape[0];
}
void TrainingState::setMicroBatch(int64_t b) {
  impl_->ex.resolveBatch(impl_->train.entry, b);  // throws for a batch it cannot run
  if (impl_->hasEval) impl_->ex.resolveBatch(impl_->eval.entry, b);
  impl_->batch = b == artifact().entries[impl_->train.entry].inputs[impl_->train.tokens].shape[0] ? 0 : b;
}
int64_t TrainingState::seqLen() const {
  return artifact().entries[impl_->train.entry].inputs[impl_->train.tokens].shape[1];
}
bool TrainingState::hasEvalLoss() const { return impl_->hasEval; }
std::string TrainingState::layoutHash() const { return artifact().layoutHash(); }

float TrainingState::trainMicroBatch(const int32_t *tokens, const int32_t *targets,
                                     const std::function<void(size_t step)> &afterStep) {
  return impl_->run(impl_->train, tokens, targets, afterStep);
}
void TrainingState::zeroGrads() {
  auto start = Impl::Clock::now();
  impl_->dev.zero(impl_->ex.flatGrads(), impl_->allocated * sizeof(float));
  impl_->record(0, start);
}
float TrainingState::evalLoss(const int32_t *tokens, const int32_t *targets,
                              const std::function<void(size_t step)> &afterStep) {
  if (!impl_->hasEval)
    throw artifact::Error("the artifact has no eval_loss entry point (it was compiled from a training "
                          "step): recompile the model's loss function with tlc compile");
  return impl_->run(impl_->eval, tokens, targets, afterStep);
}

double TrainingState::gradSquaredNorm(Range r) {
  Impl &s = *impl_;
  s.check(r, {0, flatElements()}, "gradSquaredNorm");
  if (r.size() == 0) return 0.0;
  auto start = Impl::Clock::now();
  s.setCount(r.size());
  float *g = static_cast<float *>(s.ex.flatGrads()) + r.begin;
  double *total = s.sums + artifact::kSumSqPartials;
  s.dev.launch(*s.sumsqPartial, {g, s.scalars, s.sums}, nullptr);
  s.dev.launch(*s.sumsqFinal, {s.sums, total}, nullptr);
  double out = 0;
  s.dev.download(&out, total, sizeof out);
  s.record(1, start);
  return out;
}

void TrainingState::adamw(Range r, const AdamWHyper &h) {
  Impl &s = *impl_;
  s.check(r, s.opt, "adamw");
  if (r.size() == 0) return;
  if (h.step < 1) throw std::invalid_argument("adamw: step counts from 1");
  double bc1 = 1.0 - std::pow(h.beta1, static_cast<double>(h.step));
  double bc2 = 1.0 - std::pow(h.beta2, static_cast<double>(h.step));
  // What PyTorch computes in double before its f32 tensor ops (see OptimizerKernels.cpp).
  auto f = [](double x) { return static_cast<float>(x); };
  float hyper[9] = {f(1.0 - h.lr * h.weightDecay), f(h.beta1), f(h.beta2), f(h.eps), f(1.0 - h.beta1),
                    f(1.0 - h.beta2), f(h.lr / bc1), f(std::sqrt(bc2)), f(h.gradScale)};
  char scalars[kScalarBytes] = {};
  int64_t n = r.size();
  std::memcpy(scalars, &n, sizeof n);
  std::memcpy(scalars + kHyperOffset, hyper, sizeof hyper);
  auto start = Impl::Clock::now();
  s.dev.upload(s.scalars, scalars, kScalarBytes);
  int64_t local = r.begin - s.opt.begin;
  std::vector<void *> args = {
      static_cast<float *>(s.master) + local,
      static_cast<float *>(s.m) + local,
      static_cast<float *>(s.v) + local,
      static_cast<char *>(s.ex.flatParams()) + r.begin * s.paramSize(),
      static_cast<float *>(s.ex.flatGrads()) + r.begin,
      static_cast<uint8_t *>(s.decay) + local,
      static_cast<char *>(s.scalars) + kHyperOffset,
      s.scalars};
  s.dev.launch(*s.adamw, args, nullptr);
  s.dev.synchronize();
  s.record(2, start);
}

void TrainingState::setWeightDecayMask(std::vector<bool> decayPerParam) {
  Impl &s = *impl_;
  const auto &params = artifact().params;
  if (decayPerParam.size() != params.size())
    throw std::invalid_argument("setWeightDecayMask: " + std::to_string(decayPerParam.size()) +
                                " flags for " + std::to_string(params.size()) + " parameters");
  std::vector<uint8_t> mask(static_cast<size_t>(s.opt.size()), 0);
  for (size_t i = 0; i < params.size(); ++i) {
    Range p = rangeOf(i);
    for (int64_t k = std::max(p.begin, s.opt.begin); k < std::min(p.end, s.opt.end); ++k)
      mask[k - s.opt.begin] = decayPerParam[i];
  }
  s.dev.upload(s.decay, mask.data(), mask.size());
}

void *TrainingState::devicePointer(FlatBuffer which) {
  Impl &s = *impl_;
  switch (which) {
    case FlatBuffer::Params: return s.ex.flatParams();
    case FlatBuffer::Grads: return s.ex.flatGrads();
    case FlatBuffer::Master: return s.master;
    case FlatBuffer::M: return s.m;
    case FlatBuffer::V: return s.v;
  }
  return nullptr;
}

void TrainingState::download(FlatBuffer which, Range r, float *host) {
  Impl &s = *impl_;
  if (which == FlatBuffer::Params) {
    s.check(r, {0, flatElements()}, "download");
    if (artifact().paramDType() == artifact::DType::BF16) {
      std::vector<uint16_t> raw(r.size());
      s.dev.download(raw.data(), static_cast<uint16_t *>(s.ex.flatParams()) + r.begin, r.size() * 2);
      for (int64_t i = 0; i < r.size(); ++i) host[i] = bf16ToFloat(raw[i]);
      return;
    }
    s.dev.download(host, static_cast<float *>(s.ex.flatParams()) + r.begin, r.size() * sizeof(float));
  } else if (which == FlatBuffer::Grads) {
    s.check(r, {0, flatElements()}, "download");
    s.dev.download(host, static_cast<float *>(s.ex.flatGrads()) + r.begin, r.size() * sizeof(float));
  } else {
    s.check(r, s.opt, "download");
    s.dev.download(host, static_cast<float *>(devicePointer(which)) + (r.begin - s.opt.begin),
                   r.size() * sizeof(float));
  }
}

void TrainingState::upload(FlatBuffer which, Range r, const float *host) {
  Impl &s = *impl_;
  if (which == FlatBuffer::Params) {
    s.check(r, {0, flatElements()}, "upload");
    if (artifact().paramDType() == artifact::DType::BF16) {
      std::vector<uint16_t> raw(r.size());
      for (int64_t i = 0; i < r.size(); ++i) raw[i] = floatToBf16(host[i]);
      s.dev.upload(static_cast<uint16_t *>(s.ex.flatParams()) + r.begin, raw.data(), r.size() * 2);
      return;
    }
    s.dev.upload(static_cast<float *>(s.ex.flatParams()) + r.begin, host, r.size() * sizeof(float));
  } else if (which == FlatBuffer::Grads) {
    s.check(r, {0, flatElements()}, "upload");
    s.dev.upload(static_cast<float *>(s.ex.flatGrads()) + r.begin, host, r.size() * sizeof(float));
  } else {
    s.check(r, s.opt, "upload");
    s.dev.upload(static_cast<float *>(devicePointer(which)) + (r.begin - s.opt.begin), host,
                 r.size() * sizeof(float));
  }
}

void TrainingState::setParam(size_t i, const float *host, Range kept) {
  Range p = rangeOf(i);
  for (auto [which, within] : {std::pair{FlatBuffer::Params, kept}, std::pair{FlatBuffer::Master, impl_->opt}}) {
    Range r = {std::max(p.begin, within.begin), std::min(p.end, within.end)};
    if (r.size() > 0) upload(which, r, host + (r.begin - p.begin));
  }
}

}  // namespace tlc
