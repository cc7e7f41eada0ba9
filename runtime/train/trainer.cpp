#include "runtime/train/trainer.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "runtime/artifact.h"
#include "runtime/device.h"
#include "runtime/engine.h"
#include "runtime/safetensors.h"
#include "runtime/train/checkpoint.h"
#include "runtime/train/config.h"
#include "runtime/train/data.h"
#include "runtime/train/metrics.h"

namespace fs = std::filesystem;

namespace tlc::train {
namespace {

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// SIGINT/SIGTERM: the loop finishes its step, writes a checkpoint and
// exits. A second signal gets the default action (the checkpoint on disk is
// still the last complete one).
volatile sig_atomic_t gStopSignal = 0;

void onStopSignal(int sig) {
  gStopSignal = sig;
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
}

class StopSignals {
 public:
  StopSignals() {
    gStopSignal = 0;
    struct sigaction sa = {};
    sa.sa_handler = onStopSignal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &oldInt_);
    sigaction(SIGTERM, &sa, &oldTerm_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &oldInt_, nullptr);
    sigaction(SIGTERM, &oldTerm_, nullptr);
  }

 private:
  struct sigaction oldInt_, oldTerm_;
};

// One writer per run directory.
class RunLock {
 public:
  explicit RunLock(const std::string &runDir) {
    std::string path = runDir + "/.lock";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
    if (fd_ < 0) throw Failure(runDir + ": the run directory is not writable (" + std::strerror(errno) + ")");
    if (flock(fd_, LOCK_EX | LOCK_NB) != 0)
      throw Failure(runDir + ": another tlrun train is using this run directory");
  }
  ~RunLock() { ::close(fd_); }

 private:
  int fd_ = -1;
};

Layout layoutOf(const artifact::Artifact &a, const std::string &path) {
  const artifact::EntryPoint *step = a.entry(artifact::kTrainStep);
  if (!step) throw Failure(path + ": the artifact has no training step ('" + std::string(artifact::kTrainStep) + "')");
  Layout l;
  for (const artifact::Tensor &p : a.params) l.tensors.push_back({p.name, p.shape, p.offset, p.numel()});
  l.flatElements = a.flatElements;
  for (const artifact::Tensor &in : step->inputs)
    if (in.name == "tokens" && in.shape.size() == 2) l.batch = in.shape[0], l.seq = in.shape[1];
  if (l.batch == 0) throw Failure(path + ": the training step has no [B, T] input 'tokens'");
  return l;
}

// Fresh weights from the artifact's init specs, seeded per tensor, with our
// own Box-Muller so the values do not depend on the C++ library.
std::vector<float> initialWeights(const artifact::Tensor &p, size_t index, uint64_t seed) {
  std::vector<float> w(static_cast<size_t>(p.numel()));
  std::string kind = p.init.is_object() ? p.init.value("kind", "") : "";
  if (kind == "ones") {
    std::fill(w.begin(), w.end(), 1.0f);
  } else if (kind == "zeros") {
    std::fill(w.begin(), w.end(), 0.0f);
  } else if (kind == "normal") {
    double stdev = p.init.value("std", 0.02);
    std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(index), 0x1417u};
    std::mt19937_64 rng(seq);
    auto uniform = [&] { return (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53; };
    for (size_t i = 0; i < w.size(); i += 2) {
      double r = std::sqrt(-2 * std::log(uniform())), t = 2 * M_PI * uniform();
      w[i] = static_cast<float>(stdev * r * std::cos(t));
      if (i + 1 < w.size()) w[i + 1] = static_cast<float>(stdev * r * std::sin(t));
    }
  } else {
    throw Failure("parameter '" + p.name + "' has an unknown init " + p.init.dump());
  }
  return w;
}

std::vector<float> weightsFromFile(const safetensors::File &f, const artifact::Tensor &p) {
  const safetensors::TensorInfo &t = f.get(p.name);
  if (t.shape != p.shape) throw Failure(f.path() + ": tensor '" + p.name + "' has another shape than the model's");
  std::vector<double> d = f.toDoubles(t);
  return std::vector<float>(d.begin(), d.end());
}

// Peak dense FLOP/s of known GPUs (bf16, else TF32), for MFU; 0 when unknown.
double peakFlops(const std::string &device, bool bf16) {
  struct Gpu {
    const char *name;
    double bf16, tf32;
  };
  for (Gpu g : {Gpu{"H200", 989e12, 494e12}, Gpu{"H100", 989e12, 494e12}, Gpu{"A100", 312e12, 156e12}})
    if (device.find(g.name) != std::string::npos) return bf16 ? g.bf16 : g.tf32;
  return 0;
}

void writeTextAtomic(const std::string &path, const std::string &text) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  FILE *f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Failure(path + ": cannot create (" + std::strerror(errno) + ")");
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok &= std::fclose(f) == 0;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Failure(path + ": cannot write (" + std::strerror(errno) + ")");
  }
}

class Trainer {
 public:
  Trainer(const TrainOptions &o, Config c, const artifact::Artifact &a, const Layout &l, Dataset &data, Engine &e,
          std::string device)
      : o_(o), c_(c), a_(a), layout_(l), data_(data), engine_(e), device_(std::move(device)) {
    accum_ = c.batch_tokens / (l.batch * l.seq);
    std::vector<bool> decay;
    for (const artifact::Tensor &p : a.params) decay.push_back(c.decay_norms || p.shape.size() >= 2);
    engine_.setWeightDecayMask(decay);
  }

  void freshWeights() {
    std::unique_ptr<safetensors::File> init;
    if (!o_.initWeights.empty()) init = std::make_unique<safetensors::File>(safetensors::File::open(o_.initWeights));
    for (size_t i = 0; i < a_.params.size(); ++i) {
      std::vector<float> w = init ? weightsFromFile(*init, a_.params[i]) : initialWeights(a_.params[i], i, c_.seed);
      engine_.setParam(i, w.data());
    }
  }

  void restore(const Snapshot &s) {
    Range opt = engine_.optimizerRange(), all{0, engine_.flatElements()};
    engine_.upload(FlatBuffer::Params, all, s.master.data());
    engine_.upload(FlatBuffer::Master, opt, s.master.data() + opt.begin);
    engine_.upload(FlatBuffer::M, opt, s.m.data() + opt.begin - s.rangeBegin);
    engine_.upload(FlatBuffer::V, opt, s.v.data() + opt.begin - s.rangeBegin);
    state_ = s.state;
    data_.seek(state_.data);
  }

  std::string checkpoint() {
    Snapshot s;
    s.layout = layout_;
    s.state = state_;
    s.state.data = data_.position();
    s.state.config = c_.toJson();
    Range opt = engine_.optimizerRange();
    s.master.assign(static_cast<size_t>(engine_.flatElements()), 0.0f);
    engine_.download(FlatBuffer::Master, opt, s.master.data() + opt.begin);
    s.rangeBegin = opt.begin;
    s.m.resize(static_cast<size_t>(opt.size()));
    s.v.resize(static_cast<size_t>(opt.size()));
    engine_.download(FlatBuffer::M, opt, s.m.data());
    engine_.download(FlatBuffer::V, opt, s.v.data());
    lastCheckpointStep_ = state_.step;
    return writeCheckpoint(o_.runDir, s, c_.keep_checkpoints);
  }

  double validationLoss() {
    int64_t n = std::min(c_.val_batches, data_.validationBatches());
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      Batch b = data_.validation(i);
      sum += engine_.evalLoss(b.inputs.data(), b.targets.data());
    }
    return sum / static_cast<double>(n);
  }

  int run(bool resumed) {
    using Clock = std::chrono::steady_clock;
    MetricsLog metrics(o_.runDir + "/metrics.jsonl", resumed, state_.step);
    bool validate = data_.hasValidation() && engine_.hasEvalLoss();
    if (!data_.hasValidation()) std::printf("note: %s has no validation shards ('val' in the name): no validation loss\n", o_.dataDir.c_str());
    else if (!engine_.hasEvalLoss()) std::printf("note: %s has no forward-only loss: no validation loss\n", o_.model.c_str());
    double peak = peakFlops(device_, a_.paramDType() == artifact::DType::BF16);
    double flopsPerToken = 0;
    if (peak > 0) {
      int64_t n = 0;
      for (const TensorSlot &t : layout_.tensors) n += t.numel;
      flopsPerToken = 6.0 * n + 12.0 * a_.config.value("layers", 0) * a_.config.value("dim", 0) * layout_.seq;
    }
    std::printf("training %s: %lld steps from step %lld, %lld micro-batches of %lldx%lld per step (%lld tokens), %s\n",
                o_.model.c_str(), static_cast<long long>(c_.steps), static_cast<long long>(state_.step),
                static_cast<long long>(accum_), static_cast<long long>(layout_.batch), static_cast<long long>(layout_.seq),
                static_cast<long long>(c_.batch_tokens), device_.c_str());
    std::fflush(stdout);

    StopSignals signals;
    Clock::time_point start = Clock::now(), intervalStart = start;
    int64_t intervalSteps = 0, firstStep = state_.step;
    Range all{0, engine_.flatElements()}, opt = engine_.optimizerRange();
    while (state_.step < c_.steps) {
      int64_t s = state_.step;  // 0-indexed step being taken
      engine_.zeroGrads();
      double lossSum = 0;
      for (int64_t k = 0; k < accum_; ++k) {
        Batch b = data_.next();
        lossSum += engine_.trainMicroBatch(b.inputs.data(), b.targets.data());
      }
      double loss = lossSum / static_cast<double>(accum_);
      double norm = std::sqrt(engine_.gradSquaredNorm(all)) / static_cast<double>(accum_);
      double lr = learningRate(c_, s);
      bool finite = std::isfinite(loss) && std::isfinite(norm);
      if (finite) {
        AdamWHyper h;
        h.lr = lr, h.beta1 = c_.beta1, h.beta2 = c_.beta2, h.eps = c_.eps, h.weightDecay = c_.weight_decay;
        h.step = ++state_.adamStep;
        h.gradScale = 1.0 / static_cast<double>(accum_);
        if (c_.grad_clip > 0 && norm > c_.grad_clip) h.gradScale *= c_.grad_clip / norm;
        engine_.adamw(opt, h);
        state_.nonfiniteInARow = 0;
      } else {
        ++state_.skippedSteps;
        ++state_.nonfiniteInARow;
      }
      state_.step = s + 1;
      ++intervalSteps;

      bool last = state_.step == c_.steps;
      nlohmann::json entry = {{"step", state_.step}, {"loss", loss}, {"lr", lr}, {"grad_norm", norm}};
      if (!finite) entry["skipped"] = true;
      bool valDue = validate && finite && ((c_.val_every > 0 && state_.step % c_.val_every == 0) || last);
      if (valDue) entry["val_loss"] = validationLoss();
      if (valDue || last || !finite || state_.step % c_.log_every == 0 || state_.step == firstStep + 1) {
        Clock::time_point now = Clock::now();
        double interval = std::chrono::duration<double>(now - intervalStart).count();
        double elapsed = std::chrono::duration<double>(now - start).count();
        double tps = interval > 0 ? static_cast<double>(intervalSteps * c_.batch_tokens) / interval : 0;
        entry["tokens_per_s"] = tps;
        if (peak > 0) entry["mfu"] = tps * flopsPerToken / peak;
        entry["elapsed_s"] = elapsed;
        double eta = elapsed / static_cast<double>(state_.step - firstStep) * static_cast<double>(c_.steps - state_.step);
        metrics.append(entry);
        std::printf("%s\n", progressLine(entry, c_.steps, elapsed, eta).c_str());
        std::fflush(stdout);
        intervalStart = now;
        intervalSteps = 0;
      }

      if (state_.nonfiniteInARow >= c_.nonfinite_limit) {
        std::string dir = checkpoint();
        std::fprintf(stderr,
                     "tlrun train: stopping: %lld steps in a row had a non-finite loss or gradient norm (step %lld: "
                     "loss %g, gradient norm %g); their updates were skipped. Checkpoint of the last good weights: %s\n",
                     static_cast<long long>(state_.nonfiniteInARow), static_cast<long long>(state_.step), loss, norm,
                     dir.c_str());
        return 1;
      }
      if (gStopSignal && !last) {  // on the last step, finish normally
        int sig = gStopSignal;
        std::string dir = checkpoint();
        std::fprintf(stderr, "tlrun train: %s after step %lld: checkpoint %s written; continue with --resume\n",
                     sig == SIGINT ? "interrupted (SIGINT)" : "terminated (SIGTERM)", static_cast<long long>(state_.step),
                     dir.c_str());
        return 128 + sig;
      }
      if (last || (c_.checkpoint_every > 0 && state_.step % c_.checkpoint_every == 0)) checkpoint();
    }
    if (lastCheckpointStep_ != state_.step) checkpoint();
    std::printf("done: %lld steps (%lld skipped as non-finite); checkpoint %s/checkpoints/%lld\n",
                static_cast<long long>(state_.step), static_cast<long long>(state_.skippedSteps), o_.runDir.c_str(),
                static_cast<long long>(state_.step));
    return 0;
  }


 private:
  const TrainOptions &o_;
  Config c_;
  const artifact::Artifact &a_;
  Layout layout_;
  Dataset &data_;
  Engine &engine_;
  std::string device_;
  TrainerState state_;
  int64_t accum_ = 1, lastCheckpointStep_ = -1;
};

Config resolveConfig(const TrainOptions &o, const nlohmann::json *checkpointConfig) {
  Config c = checkpointConfig ? fromJson(*checkpointConfig, "the checkpoint's config") : Config();
  if (!o.configFile.empty()) applyFile(c, o.configFile);
  for (const std::string &s : o.sets) applySet(c, s);
  if (o.steps > 0) c.steps = o.steps;
  validate(c);
  if (checkpointConfig) {
    Config before = fromJson(*checkpointConfig, "the checkpoint's config");
    if (before.seed != c.seed || before.shuffle != c.shuffle)
      throw ConfigError(std::string("key '") + (before.seed != c.seed ? "seed" : "shuffle") +
                        "' cannot change on resume: the data order depends on it");
  }
  return c;
}

}  // namespace

int runTrain(const TrainOptions &o) {
  try {
    // Everything is read and checked before the run directory is touched.
    std::string checkpointDir;
    nlohmann::json checkpointConfig;
    if (o.resume) {
      checkpointDir = resolveCheckpoint(o.runDir, o.resumeFrom);
      checkpointConfig = readCheckpointConfig(checkpointDir);
    }
    Config c = resolveConfig(o, o.resume ? &checkpointConfig : nullptr);
    artifact::Artifact a = artifact::read(o.model);
    Layout layout = layoutOf(a, o.model);
    int64_t microTokens = layout.batch * layout.seq;
    if (c.batch_tokens % microTokens != 0)
      throw ConfigError("key 'batch_tokens' (" + std::to_string(c.batch_tokens) + ") must be a multiple of the micro-batch's " +
                        std::to_string(layout.batch) + "x" + std::to_string(layout.seq) + " = " + std::to_string(microTokens) +
                        " tokens");
    int64_t vocab = a.config.value("vocab", int64_t{0});
    if (vocab <= 0) throw Failure(o.model + ": the model config has no vocab");
    Dataset data(o.dataDir, vocab, layout.batch, layout.seq, static_cast<uint64_t>(c.seed), c.shuffle);
    Snapshot snap;
    if (o.resume) {
      snap = readCheckpoint(checkpointDir, layout);
      data.seek(snap.state.data);
    } else if (fs::exists(o.runDir + "/checkpoints") || fs::exists(o.runDir + "/metrics.jsonl")) {
      throw Failure(o.runDir + ": already holds a run (checkpoints/ or metrics.jsonl); continue it with --resume or "
                    "choose another --out");
    }
    if (o.device != "cpu" && o.device != "cuda") throw ConfigError("--device must be cpu or cuda, got '" + o.device + "'");
    std::unique_ptr<Device> device = o.device == "cuda" ? makeCudaDevice() : makeCpuDevice();

    std::error_code ec;
    fs::create_directories(o.runDir, ec);
    if (ec) throw Failure(o.runDir + ": cannot create the run directory (" + ec.message() + ")");
    RunLock lock(o.runDir);
    removeStaleTemporaries(o.runDir);
    writeTextAtomic(o.runDir + "/config.json", c.toJson().dump(2) + "\n");
    // The artifact and data this run used (tlrun generate finds the model and tokenizer here).
    writeTextAtomic(o.runDir + "/run.json", nlohmann::json{{"model", fs::absolute(o.model).string()},
                                                           {"data", fs::absolute(o.dataDir).string()}}
                                                    .dump(2) + "\n");

    Engine engine(a, *device);
    Trainer t(o, c, a, layout, data, engine, device->describe());
    if (o.resume) {
      std::printf("resuming from %s (step %lld)\n", checkpointDir.c_str(), static_cast<long long>(snap.state.step));
      t.restore(snap);
      snap = Snapshot();  // free the host copy
    } else {
      t.freshWeights();
    }
    return t.run(o.resume);
  } catch (const ConfigError &e) {
    std::fprintf(stderr, "tlrun train: %s\n", e.what());
    return 2;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "tlrun train: %s\n", e.what());
    return 1;
  }
}

}  // namespace tlc::train
