#include "runtime/train/trainer.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>

#include "formats/artifact.h"
#include "runtime/comm/communicator.h"
#include "runtime/exec/device.h"
#include "runtime/train/training_state.h"
#include "runtime/hf/init_weights.h"
#include "formats/safetensors.h"
#include "runtime/train/checkpoint.h"
#include "runtime/train/checkpoint_ref.h"
#include "runtime/train/checkpoint_save.h"
#include "runtime/train/config.h"
#include "runtime/train/data.h"
#include "runtime/train/metrics.h"
#include "runtime/train/mixture.h"
#include "runtime/train/parallel.h"
#include "runtime/train/run_info.h"
#include "runtime/train/run_setup.h"
#include "runtime/train/stop_signals.h"

namespace fs = std::filesystem;

namespace tlc::train {
namespace {

using Failure = TrainError;

class Trainer {
 public:
  ~Trainer() {
    dp_.quiesce();  // no reduction may outlive the engine's buffers
    if (trace_) std::fclose(trace_);
  }
  Trainer(const TrainOptions &o, Config c, const artifact::Artifact &a, const Layout &l, TrainingData &data,
          TrainingState &e, std::string device, DataParallel &dp, long checkpointTag,
          std::vector<std::unique_ptr<PeriodicWork>> work)
      : o_(o), c_(c), a_(a), layout_(l), data_(data), engine_(e), device_(std::move(device)), dp_(dp),
        checkpointTag_(checkpointTag), work_(std::move(work)) {
    accum_ = c.batch_tokens / (l.batch * l.seq);
    if (const char *path = std::getenv("TLC_TRACE_DATA")) {
      std::string file = std::string(path) + ".rank" + std::to_string(dp.rank());
      trace_ = std::fopen(file.c_str(), "ab");
      if (!trace_) throw Failure(file + ": cannot open (TLC_TRACE_DATA)");
    }
    dp_.attach(engine_);
    memory_ = shard::stateBytes(dp_.layout(), dp_.world() == 1 ? 0 : dp_.zero(), dp_.rank(),
                                static_cast<int64_t>(artifact::dtypeSize(a.paramDType())), dp_.gatheredElements());
    std::vector<bool> decay;
    for (const artifact::Tensor &p : a.params) decay.push_back(p.decay || c.decay_norms);
    engine_.setWeightDecayMask(decay);
  }

  // zero=3: params only for the shard a rank keeps at rest, so that its peak
  // memory stays a step's; the rest is gathered where it is read.
  void freshWeights(const hf::InitWeights *init) {
    for (size_t i = 0; i < a_.params.size(); ++i) {
      std::vector<float> w = init ? init->values(a_.params[i]) : initialWeights(a_.params[i], i, c_.seed);
      engine_.setParam(i, w.data(), dp_.paramsAtRest());
    }
  }

  // A new phase from a checkpoint: its moments and AdamW's step count (the
  // bias correction goes on from there); step, data and schedule stay fresh.
  void adoptOptimizer(const std::string &dir, const Snapshot &s) {
    loadWeights(dir, s);
    loadMoments(dir, s);
    state_.adamStep = s.state.adamStep;
  }

  // Params (everywhere; zero=3: the shard, as freshWeights) and master
  // weights (the optimizer range) from the checkpoint's model file, in
  // chunks; only the elements either needs are read.
  void loadWeights(const std::string &dir, const Snapshot &s) {
    Range opt = engine_.optimizerRange();
    Range keep = dp_.paramsAtRest();
    auto upload = [&](int64_t b, int64_t e, const float *v) {
      int64_t kb = std::max(b, keep.begin), ke = std::min(e, keep.end);
      if (kb < ke) engine_.upload(FlatBuffer::Params, {kb, ke}, v + (kb - b));
      int64_t pb = std::max(b, opt.begin), pe = std::min(e, opt.end);
      if (pb < pe) engine_.upload(FlatBuffer::Master, {pb, pe}, v + (pb - b));
    };
    readMasterChunks(dir, s, {std::min(keep.begin, opt.begin), std::max(keep.end, opt.end)}, upload);
  }

  void loadMoments(const std::string &dir, const Snapshot &s) {
    Range opt = engine_.optimizerRange();
    auto upload = [this](FlatBuffer which) {
      return [this, which](int64_t b, int64_t e, const float *v) { engine_.upload(which, {b, e}, v); };
    };
    readMomentChunks(dir, s, opt.begin, opt.end, upload(FlatBuffer::M), upload(FlatBuffer::V));
  }

  // A verified checkpoint (read without data), streamed chunk by chunk
  // onto the device.
  void restore(const std::string &dir, const Snapshot &s) {
    loadWeights(dir, s);
    loadMoments(dir, s);
    state_ = s.state;
    data_.seek(state_.data);
  }

  std::string checkpoint() {
    lastCheckpointStep_ = state_.step;
    TrainerState s = state_;
    s.data = data_.position();
    s.config = c_.toJson();
    return saveCheckpoint(o_.runDir, s, layout_, c_, dp_, engine_, checkpointTag_);
  }

  // The validation loss of source `src` over its first val_batches.
  double validationLoss(size_t src) {
    // Each rank evaluates a contiguous part; the losses are summed in batch
    // order, as on one rank.
    int64_t n = std::min(c_.val_batches, data_.validationBatches(src));
    int64_t per = (n + dp_.world() - 1) / dp_.world(), first = dp_.rank() * per;
    std::vector<double> mine(static_cast<size_t>(per), 0.0);
    for (int64_t i = first; i < std::min(n, first + per); ++i) {
      Batch b = data_.validation(src, i);
      mine[static_cast<size_t>(i - first)] =
          engine_.evalLoss(b.inputs.data(), b.targets.data(), dp_.stepHook(artifact::kEvalLoss));
    }
    std::vector<double> all = dp_.allGather(mine);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += all[static_cast<size_t>(i)];
    return sum / static_cast<double>(n);
  }

  // val_loss, and for a mixture each source's (source_val_loss) with
  // val_loss their mean weighted by the mixture's shares.
  void validate(nlohmann::json &entry) {
    if (!data_.mixture()) {
      entry["val_loss"] = validationLoss(0);
      return;
    }
    nlohmann::json per = nlohmann::json::object();
    double sum = 0, shares = 0;
    for (size_t src = 0; src < data_.sources(); ++src) {
      if (!data_.hasValidation(src)) continue;
      double v = validationLoss(src);
      per[data_.source(src).name] = v;
      sum += data_.share(src) * v;
      shares += data_.share(src);
    }
    entry["val_loss"] = sum / shares;
    entry["source_val_loss"] = per;
  }

  bool anyValidation() const {
    for (size_t src = 0; src < data_.sources(); ++src)
      if (data_.hasValidation(src)) return true;
    return false;
  }

  // TLC_TRACE_DATA=PATH: each rank appends to PATH.rank<R> one line per
  // micro-batch it trains on (step, stream index, input tokens), so tests
  // can measure the consumed token stream.
  void traceBatch(int64_t step, int64_t g, const Batch &b) {
    std::string line = std::to_string(step) + " " + std::to_string(g);
    for (int32_t t : b.inputs) line += " " + std::to_string(t);
    line += "\n";
    std::fputs(line.c_str(), trace_);
    std::fflush(trace_);
  }

  // Every parameter as f32 (from the compute-dtype copy every rank holds).
  std::vector<std::vector<float>> currentWeights() {
    std::vector<std::vector<float>> params;
    for (size_t i = 0; i < a_.params.size(); ++i) {
      params.emplace_back(static_cast<size_t>(a_.params[i].numel()));
      engine_.download(FlatBuffer::Params, engine_.rangeOf(i), params.back().data());
    }
    return params;
  }

  int run(bool resumed) {
    using Clock = std::chrono::steady_clock;
    // Rank 0 writes the metrics and the progress; the others only errors.
    bool root = dp_.rank() == 0;
    std::unique_ptr<MetricsLog> metrics;
    if (root) metrics = std::make_unique<MetricsLog>(o_.runDir + "/metrics.jsonl", resumed, state_.step);
    bool validate = anyValidation() && engine_.hasEvalLoss();
    if (!root) {
    } else if (!anyValidation()) std::printf("note: %s has no validation shards ('val' in the name): no validation loss\n", describeData(c_.data).c_str());
    else if (!engine_.hasEvalLoss()) std::printf("note: %s has no forward-only loss: no validation loss\n", o_.model.c_str());
    double peak = peakFlops(device_, a_.paramDType() == artifact::DType::BF16);
    int64_t parameters = 0, embedding = 0;
    for (const TensorSlot &t : layout_.tensors) {
      parameters += t.numel;
      if (t.name == "model.embed_tokens.weight") embedding = t.numel;
    }
    double modelFlops = flopsPerToken(parameters, embedding, a_.config.value("layers", 0), a_.config.value("dim", 0),
                                      layout_.seq);
    if (root)
      std::printf("training %s: %lld steps from step %lld, %lld micro-batches of %lldx%lld per step (%lld tokens), %s\n",
                o_.model.c_str(), static_cast<long long>(c_.steps), static_cast<long long>(state_.step),
                static_cast<long long>(accum_), static_cast<long long>(layout_.batch), static_cast<long long>(layout_.seq),
                static_cast<long long>(c_.batch_tokens), device_.c_str());
    if (root && data_.mixture()) std::printf("data mixture: %s\n", describeData(c_.data).c_str());
    std::fflush(stdout);

    StopSignals signals(root);
    Clock::time_point start = Clock::now(), intervalStart = start;
    int64_t intervalSteps = 0, firstStep = state_.step;
    // Where this rank's reduced gradients are: everything (one rank, zero=0)
    // or its owned range.
    Range opt = engine_.optimizerRange(), gradRange = opt;
    double commSum = 0, busySum = 0, hiddenSum = 0;
    std::vector<std::vector<float>> weights;  // for periodic work
    while (state_.step < c_.steps) {
      int64_t s = state_.step;  // 0-indexed step being taken
      dp_.beforeRun();  // zero=3 without a plan: gathered for the step
      dp_.zeroGrads();
      // This rank's slice of the global batch; the others' are skipped.
      int64_t mineFirst = dp_.firstMicroBatch(accum_), mineCount = accum_ / dp_.world();
      std::vector<double> message = {0.0, 0.0};
      for (int64_t k = 0; k < accum_; ++k) {
        if (k < mineFirst || k >= mineFirst + mineCount) {
          data_.skip();
          continue;
        }
        int64_t g = data_.position().index;
        Batch b = data_.next();
        if (trace_) traceBatch(s, g, b);
        bool lastOfMine = k + 1 == mineFirst + mineCount;
        message.push_back(engine_.trainMicroBatch(b.inputs.data(), b.targets.data(),
                                                  dp_.stepHook(artifact::kTrainStep, lastOfMine)));
        dp_.afterMicroBatch();
      }
      dp_.afterAccumulation();
      // One host message per rank: its gradient sum of squares, whether it
      // was signalled, its micro-batch losses. Summed in rank (= batch) order.
      message[0] = engine_.gradSquaredNorm(gradRange);
      message[1] = static_cast<double>(StopSignals::received());  // 0 for none
      std::vector<double> all = dp_.allGather(message);
      double lossSum = 0, norm2 = 0;
      bool stop = false;
      int stopSignal = 0;  // the first rank's that got one: every rank reports the same
      for (int r = 0; r < dp_.world(); ++r) {
        const double *m = all.data() + static_cast<size_t>(r) * message.size();
        norm2 += m[0];
        stop |= m[1] != 0;
        if (!stopSignal) stopSignal = static_cast<int>(m[1]);
        for (int64_t k = 0; k < mineCount; ++k) lossSum += m[2 + k];
      }
      if (dp_.zero() == 0) norm2 = message[0];  // replicated: every rank has the whole sum
      double loss = lossSum / static_cast<double>(accum_);
      double norm = std::sqrt(norm2) / static_cast<double>(accum_);
      double lr = learningRate(c_, s);
      bool finite = std::isfinite(loss) && std::isfinite(norm);
      if (finite) {
        AdamWHyper h;
        h.lr = lr, h.beta1 = c_.beta1, h.beta2 = c_.beta2, h.eps = c_.eps, h.weightDecay = c_.weight_decay;
        h.step = ++state_.adamStep;
        h.gradScale = 1.0 / static_cast<double>(accum_);
        // torch.nn.utils.clip_grad_norm_: the coefficient max/(norm + 1e-6), clamped to 1.
        double clip = c_.grad_clip / (norm + 1e-6);
        if (c_.grad_clip > 0 && clip < 1) h.gradScale *= clip;
        engine_.adamw(opt, h);
        dp_.afterUpdate();
        state_.nonfiniteInARow = 0;
      } else {
        ++state_.skippedSteps;
        ++state_.nonfiniteInARow;
      }
      state_.step = s + 1;
      state_.loss = loss;
      ++intervalSteps;

      bool last = state_.step == c_.steps;
      nlohmann::json entry = {{"step", state_.step}, {"loss", loss}, {"lr", lr}, {"grad_norm", norm}};
      if (!finite) entry["skipped"] = true;
      commSum += dp_.takeCommSeconds();
      DataParallel::Overlapped ov = dp_.takeOverlapped();
      busySum += ov.busy, hiddenSum += ov.hidden;
      bool valDue = validate && finite && ((c_.val_every > 0 && state_.step % c_.val_every == 0) || last);
      if (valDue) {
        dp_.beforeRun();
        this->validate(entry);
      }
      for (const std::string &notice : data_.takeNotices())
        if (root) std::printf("note: %s\n", notice.c_str());
      bool workDone = false, workDue = false;
      for (auto &w : work_) workDue |= root && finite && state_.step % w->every() == 0;
      // Only rank 0 has periodic work; with zero=3 every rank joins the gather it needs.
      if (dp_.zero() == 3 && dp_.active() && dp_.sumOverRanks(workDue ? 1 : 0) > 0) dp_.needFullParams();
      for (auto &w : work_)
        if (root && finite && state_.step % w->every() == 0) {
          if (!workDone) weights = currentWeights();
          nlohmann::json fields = w->run(state_.step, weights);
          if (fields.is_object()) entry.update(fields);
          workDone = true;
        }
      dp_.doneWithFullParams();
      if (valDue || workDone || last || !finite || state_.step % c_.log_every == 0 || state_.step == firstStep + 1) {
        if (data_.mixture()) {
          std::vector<int64_t> used = data_.consumed();
          nlohmann::json tokens = nlohmann::json::object();
          for (size_t src = 0; src < used.size(); ++src)
            tokens[data_.source(src).name] = used[src] * layout_.batch * layout_.seq;
          entry["source_tokens"] = tokens;
        }
        Clock::time_point now = Clock::now();
        double interval = std::chrono::duration<double>(now - intervalStart).count();
        double elapsed = std::chrono::duration<double>(now - start).count();
        double tps = interval > 0 ? static_cast<double>(intervalSteps * c_.batch_tokens) / interval : 0;
        entry["tokens_per_s"] = tps;
        // tps counts every rank's tokens: utilisation of all the devices.
        if (peak > 0) entry["mfu"] = modelFlopsUtilisation(tps, modelFlops, peak, dp_.world());
        entry["elapsed_s"] = elapsed;
        if (dp_.world() > 1) {
          entry["comm_s"] = commSum / static_cast<double>(intervalSteps);
          if (dp_.overlapping()) {  // the communication thread: busy seconds, the part while computing
            entry["comm_thread_s"] = busySum / static_cast<double>(intervalSteps);
            entry["comm_hidden"] = busySum > 0 ? hiddenSum / busySum : 0.0;
          }
          entry["world"] = dp_.world();
          entry["mem_params_bytes"] = memory_.params + memory_.paramGathered;
          entry["mem_grads_bytes"] = memory_.grads + memory_.gradScratch;
          entry["mem_optimizer_bytes"] = memory_.master + memory_.moments;
        }
        commSum = busySum = hiddenSum = 0;
        double eta = elapsed / static_cast<double>(state_.step - firstStep) * static_cast<double>(c_.steps - state_.step);
        if (root) {
          metrics->append(entry);
          std::printf("%s\n", progressLine(entry, c_.steps, elapsed, eta).c_str());
          std::fflush(stdout);
        }
        intervalStart = now;
        intervalSteps = 0;
      }

      if (state_.nonfiniteInARow >= c_.nonfinite_limit) {
        std::string dir = checkpoint();
        if (root)
          std::fprintf(stderr,
                     "tlrun train: stopping: %lld steps in a row had a non-finite loss or gradient norm (step %lld: "
                     "loss %g, gradient norm %g); their updates were skipped. Checkpoint of the last good weights: %s\n",
                     static_cast<long long>(state_.nonfiniteInARow), static_cast<long long>(state_.step), loss, norm,
                     dir.c_str());
        return 1;
      }
      if (stop && !last) {  // on the last step, finish normally
        int sig = stopSignal ? stopSignal : SIGTERM;
        std::string dir = checkpoint();
        if (root)
          std::fprintf(stderr, "tlrun train: %s after step %lld: checkpoint %s written; continue with --resume\n",
                     sig == SIGINT ? "interrupted (SIGINT)" : "terminated (SIGTERM)", static_cast<long long>(state_.step),
                     dir.c_str());
        return 128 + sig;
      }
      if ((last && c_.final_checkpoint) || (c_.checkpoint_every > 0 && state_.step % c_.checkpoint_every == 0))
        checkpoint();
    }
    if (c_.final_checkpoint && lastCheckpointStep_ != state_.step) checkpoint();
    if (root) {
      std::printf("done: %lld steps (%lld skipped as non-finite); ", static_cast<long long>(state_.step),
                  static_cast<long long>(state_.skippedSteps));
      if (lastCheckpointStep_ == state_.step)
        std::printf("checkpoint %s/checkpoints/%lld\n", o_.runDir.c_str(), static_cast<long long>(state_.step));
      else
        std::printf("no final checkpoint (final_checkpoint=false)\n");
    }
    return 0;
  }


 private:
  const TrainOptions &o_;
  Config c_;
  const artifact::Artifact &a_;
  Layout layout_;
  TrainingData &data_;
  TrainingState &engine_;
  std::string device_;
  DataParallel &dp_;
  long checkpointTag_;
  shard::StateBytes memory_;
  TrainerState state_;
  int64_t accum_ = 1, lastCheckpointStep_ = -1;
  std::vector<std::unique_ptr<PeriodicWork>> work_;
  FILE *trace_ = nullptr;  // TLC_TRACE_DATA
};

}  // namespace

int runTrain(const TrainOptions &o, const std::vector<WorkFactory> &workFactories) {
  std::string rankPrefix;  // "rank R: " in messages of a multi-rank job
  try {
    // Everything is read and checked before the run directory is touched.
    std::string checkpointDir;
    nlohmann::json checkpointConfig;
    if (o.resume) {
      if (o.resumeFrom.empty() && !fs::exists(o.runDir + "/checkpoints/latest"))
        throw CheckpointError(o.runDir + ": has no checkpoint to resume (no checkpoints/latest)");
      checkpointDir = resolveCheckpointRef(o.resumeFrom.empty() ? o.runDir : o.resumeFrom).dir;
      checkpointConfig = readCheckpointConfig(checkpointDir);
    }
    Config c = resolveConfig(o, o.resume ? &checkpointConfig : nullptr);
    artifact::Artifact a = artifact::read(o.model);
    Layout layout = trainingLayout(a, o.model, c.micro_batch);
    int64_t microTokens = layout.batch * layout.seq;
    if (c.batch_tokens % microTokens != 0)
      throw ConfigError("key 'batch_tokens' (" + std::to_string(c.batch_tokens) + ") must be a multiple of the micro-batch's " +
                        std::to_string(layout.batch) + "x" + std::to_string(layout.seq) + " = " + std::to_string(microTokens) +
                        " tokens");
    int64_t vocab = a.config.value("vocab", int64_t{0});
    if (vocab <= 0) throw Failure(o.model + ": the model config has no vocab");
    TrainingData data(c.data, vocab, layout.batch, layout.seq, static_cast<uint64_t>(c.seed), c.shuffle);
    checkOneTokenizer(c.data);
    if (!o.resume && (fs::exists(o.runDir + "/checkpoints") || fs::exists(o.runDir + "/metrics.jsonl")))
      throw Failure(o.runDir + ": already holds a run (checkpoints/ or metrics.jsonl); continue it with --resume or "
                    "choose another --out");
    if (o.device != "cpu" && o.device != "cuda") throw ConfigError("--device must be cpu or cuda, got '" + o.device + "'");

    std::unique_ptr<hf::InitWeights> init;
    std::string initCheckpoint;  // --init-from a tlc checkpoint: for --resume-optimizer
    if (o.resumeOptimizer && o.initWeights.empty())
      throw ConfigError("--resume-optimizer needs --init-from CHECKPOINT (the optimizer state to start from)");
    if (!o.initWeights.empty()) {
      // A tlc checkpoint gives its verified model.safetensors (weights only:
      // a fresh optimizer and schedule); anything else is Hugging Face weights.
      std::string weights = o.initWeights;
      if (std::optional<CheckpointRef> ref = findCheckpointRef(o.initWeights)) {
        if (!o.resumeOptimizer)
          verifyCheckpointWeights(ref->dir, "--init-from");
        weights = ref->dir;  // hf::InitWeights reads either form of checkpoint weights
        initCheckpoint = ref->dir;
      } else if (o.resumeOptimizer) {
        throw ConfigError("--resume-optimizer: " + o.initWeights + " is not a tlc checkpoint (Hugging Face weights "
                          "carry no optimizer state)");
      }
      init = std::make_unique<hf::InitWeights>(hf::InitWeights::open(weights, a));
    }

    // Ranks: one per process started by the launcher (docs/distributed.md);
    // each GPU rank opens the GPU numbered by its node-local rank.
    comm::Launch launch = comm::detectLaunch();
    std::unique_ptr<Device> device = o.device == "cuda" ? makeCudaDevice(launch.localRank) : makeCpuDevice();
    comm::Options co;
    co.backend = o.device == "cuda" && launch.size > 1 ? "nccl" : "auto";
    if (const char *b = std::getenv("TLC_COMM_BACKEND")) co.backend = b;  // e.g. nccl on one GPU (tools/gpu)
    co.timeoutSeconds = c.comm_timeout_s;
    std::unique_ptr<comm::Communicator> comm = comm::makeCommunicator(co);
    int rank = comm->rank(), world = comm->size();
    resolveCheckpointWeights(c, world);
    // Collectives run on the flat buffers where they live: NCCL on GPU memory, MPI on host memory.
    bool gpu = o.device == "cuda";
    if ((world > 1 || comm->deviceBuffers()) && comm->deviceBuffers() != gpu)
      throw ConfigError(comm->describe() + " works on " + (comm->deviceBuffers() ? "GPU" : "host") +
                        " buffers, but --device is " + o.device + ": use " + (gpu ? "NCCL" : "MPI") +
                        " (unset TLC_COMM_BACKEND)");
    if (world > 1) {
      rankPrefix = "rank " + std::to_string(rank) + ": ";
      std::printf("rank %d of %d (pid %ld, local rank %d): %s, zero=%lld\n", rank, world, static_cast<long>(getpid()),
                  launch.localRank, comm->describe().c_str(), static_cast<long long>(c.zero));
      std::fflush(stdout);
    }
    // Every rank must train the same model on the same data the same way.
    comm::requireSameOnAllRanks(*comm, "the artifact (" + o.model + ")", fileFnv1a64(o.model));
    // Names and sizes, not the directories' spelling (each node may mount its own copy).
    comm::requireSameOnAllRanks(*comm, "the training data (" + describeData(c.data) + ")", textDigest(data.shardList()));
    Config spelled = c;
    for (DataSource &d : spelled.data) d.dir.clear();
    comm::requireSameOnAllRanks(*comm, "the configuration (resolved keys, run directory, checkpoint, device)",
                                textDigest(spelled.toJson().dump() + "\n" + o.runDir + "\n" + checkpointDir + "\n" + o.device));
    if (world > 1) {  // the values, not the path: each node may read its own copy
      uint64_t weights = kFnv1a64Basis;
      if (init)
        for (const artifact::Tensor &p : a.params) {
          std::vector<float> v = init->values(p);
          weights = fnv1a64(v.data(), v.size() * sizeof(float), weights);
        }
      comm::requireSameOnAllRanks(*comm, "the initial weights (--init-from)", weights);
    }
    int64_t accum = c.batch_tokens / microTokens;
    if (accum % world != 0)
      throw ConfigError("key 'batch_tokens' (" + std::to_string(c.batch_tokens) + ") is " + std::to_string(accum) +
                        " micro-batches, which the " + std::to_string(world) + " ranks cannot share equally");
    DataParallel dp(*comm, *device, static_cast<int>(c.zero), a.flatElements, c.bucket_mb, c.overlap);
    Range opt = dp.optimizerRange();

    Snapshot snap;
    if (o.resume) {  // this rank's range of the moments, whatever ranks wrote them
      try {
        snap = readCheckpoint(checkpointDir, layout, opt.begin, opt.end, rank == 0, false);
      } catch (const CheckpointError &e) {
        std::string run = runDirOfCheckpoint(checkpointDir);
        if (run.empty()) throw;
        throw CheckpointError(std::string(e.what()) + " (tlrun checkpoints " + run +
                              " --verify lists the checkpoints that can be resumed)");
      }
      if (c.steps <= snap.state.step)
        throw ConfigError("nothing to train: " + checkpointDir + " is at step " + std::to_string(snap.state.step) +
                          " and the run ends at step " + std::to_string(c.steps) + " (give --steps N with N > " +
                          std::to_string(snap.state.step) + " to continue it)");
      data.seek(snap.state.data);
    } else if (o.resumeOptimizer) {  // a new phase: the weights and moments, a fresh step count and data
      snap = readCheckpoint(initCheckpoint, layout, opt.begin, opt.end, rank == 0, false);
    }
    // Samples and evaluations, set up (and refused) before the run directory is touched.
    std::vector<std::unique_ptr<PeriodicWork>> work;
    if (rank == 0) {
      WorkContext context{c, a, o.model, c.data.front().dir, o.runDir, *device, o.resume ? snap.state.step : 0};
      for (const WorkFactory &f : workFactories)
        if (std::unique_ptr<PeriodicWork> w = f(context)) work.push_back(std::move(w));
    }

    // Rank 0 owns the run directory; the others wait until it is set up.
    std::unique_ptr<RunLock> lock;
    if (rank == 0) {
      std::error_code ec;
      fs::create_directories(o.runDir, ec);
      if (ec) throw Failure(o.runDir + ": cannot create the run directory (" + ec.message() + ")");
      lock = std::make_unique<RunLock>(o.runDir);
      removeStaleTemporaries(o.runDir);
      writeTextAtomic(o.runDir + "/config.json", c.toJson().dump(2) + "\n");
      writeRunInfo(o.runDir, {o.model, c.data.front().dir, a.config, artifact::dtypeName(a.paramDType())});
    }
    // Rank 0's pid names the checkpoints' temporary directories.
    long tag = static_cast<long>(dp.allGather({static_cast<double>(getpid())})[0]);

    TrainingState engine(a, *device, opt, dp.allocatedElements());
    engine.setMicroBatch(layout.batch);
    Trainer t(o, c, a, layout, data, engine, device->describe(), dp, tag, std::move(work));
    if (world > 1) {  // per-rank memory of the training state, as rank 0 sees it
      shard::StateBytes m = shard::stateBytes(dp.layout(), static_cast<int>(c.zero), rank,
                                              static_cast<int64_t>(artifact::dtypeSize(a.paramDType())),
                                              dp.gatheredElements());
      std::vector<double> all = dp.allGather({static_cast<double>(m.params + m.paramGathered),
                                              static_cast<double>(m.grads + m.gradScratch),
                                              static_cast<double>(m.master + m.moments)});
      for (int r = 0; rank == 0 && r < world; ++r)
        std::printf("rank %d memory: params %.0f B, grads %.0f B, optimizer state %.0f B (zero=%lld)\n", r, all[3 * r],
                    all[3 * r + 1], all[3 * r + 2], static_cast<long long>(c.zero));
    }
    if (o.resume) {
      if (rank == 0)
        std::printf("resuming from %s (step %lld)\n", checkpointDir.c_str(), static_cast<long long>(snap.state.step));
      t.restore(checkpointDir, snap);
      snap = Snapshot();  // free the host copy
    } else {
      if (init && rank == 0) std::printf("initial weights from %s\n", init->describe().c_str());
      t.freshWeights(init.get());
      if (o.resumeOptimizer) {
        if (rank == 0)
          std::printf("optimizer state from %s (AdamW step %lld; the schedule and data start afresh)\n",
                      initCheckpoint.c_str(), static_cast<long long>(snap.state.adamStep));
        t.adoptOptimizer(initCheckpoint, snap);
        snap = Snapshot();
      }
    }
    return t.run(o.resume);
  } catch (const ConfigError &e) {
    std::fprintf(stderr, "tlrun train: %s%s\n", rankPrefix.c_str(), e.what());
    return 2;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "tlrun train: %s%s\n", rankPrefix.c_str(), e.what());
    return 1;
  }
}

}  // namespace tlc::train
