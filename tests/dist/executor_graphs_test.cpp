// The executor's graphs (executor.h, graphs_) on a fake device that records
// every launch, GEMM and zeroing, captures by recording them into a list and
// replays the list: which runs are eager, captured or replayed, per key, and
// that the results and the error flag are those of eager runs. A hand-built
// entry point: t = 0; t = 2 x (a kernel that flags negative inputs); y = t w.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <sstream>
#include <utility>

#include "runtime/exec/executor.h"

namespace {

using namespace tlc;
using namespace tlc::artifact;

constexpr int64_t kBatch = 2, kWidth = 4;

Tensor tensor(const char *name, int64_t rows, int buffer) {
  Tensor t;
  t.name = name;
  t.shape = {rows, kWidth};
  t.buffer = buffer;
  return t;
}

Artifact makeArtifact() {
  Artifact a;
  a.params.push_back(tensor("w", kWidth, 2));
  assignFlatLayout(a);
  int64_t rows = kBatch * kWidth * 4;
  a.buffers = {{rows, BufferKind::Input, 0}, {rows, BufferKind::Arena, 0}, {64, BufferKind::Param, 0},
               {rows, BufferKind::Output, 0}};
  a.arenaBytes = rows;
  a.kernels.push_back({"k1_double", 1, 32, 0, true});
  EntryPoint e;
  e.name = "step";
  e.inputs.push_back(tensor("x", kBatch, 0));
  e.outputs.push_back(tensor("y", kBatch, 3));
  e.batch = kBatch;
  e.arenaBytes = rows;
  Step zero;
  zero.kind = Step::Zero;
  zero.buffers = {1};
  Step twice;
  twice.kernel = "k1_double";
  twice.buffers = {0, 1};
  twice.location = "model.mlir:7";
  twice.counts = {kBatch * kWidth};
  twice.countScales = {true};
  twice.grid = kBatch;
  twice.gridScales = true;
  Step product;
  product.kind = Step::Gemm;
  product.buffers = {1, 2, 3};
  product.gemm.m = kBatch;
  product.gemm.n = product.gemm.k = kWidth;
  product.gemm.scale = Gemm::Scale::M;
  e.steps = {zero, twice, product};
  a.entries.push_back(e);
  return a;
}

// One recorded call: what it does and, for comparison, its text.
struct Call {
  Call(Step::Kind kind, std::vector<void *> args) : kind(kind), args(std::move(args)) {}
  Step::Kind kind;
  std::vector<void *> args;
  int *error = nullptr;
  std::vector<int64_t> counts;
  Gemm gemm;
  size_t bytes = 0;
  std::string text;
};

class FakeDevice : public Device {
 public:
  bool graphs = true;          // else beginCapture says the device has none
  bool endGivesNull = false;   // endCapture fails
  bool launchThrows = false;   // a launch fails while capturing
  bool replayThrows = false;
  std::vector<std::string> eager, replayed;  // the calls run by each path
  int captures = 0, liveGraphs = 0;

  std::string describe() const override { return "fake"; }
  void *alloc(size_t bytes) override { return std::calloc(bytes ? bytes : 1, 1); }
  void release(void *p) override { std::free(p); }
  void upload(void *dst, const void *src, size_t n) override { std::memcpy(dst, src, n); }
  void download(void *dst, const void *src, size_t n) override { std::memcpy(dst, src, n); }
  void loadKernels(const Artifact &) override {}
  void synchronize() override {}

  void zero(void *p, size_t n) override {
    Call c(Step::Zero, {p});
    c.bytes = n;
    issue(c, "zero " + pointers(c.args) + " " + std::to_string(n));
  }
  void launch(const Kernel &k, const std::vector<void *> &args, int *error, int64_t grid,
              const std::vector<int64_t> &counts) override {
    if (recording_ && launchThrows) throw DeviceError("the fake cannot capture " + k.name);
    Call c(Step::Kernel, args);
    c.error = error;
    c.counts = counts;
    issue(c, "launch " + k.name + " " + pointers(args) + " error " + pointers({error}) + " grid " +
                 std::to_string(grid) + " count " + std::to_string(counts.at(0)));
  }
  void gemm(const Gemm &g, const void *a, const void *b, void *c) override {
    Call call(Step::Gemm, {const_cast<void *>(a), const_cast<void *>(b), c});
    call.gemm = g;
    issue(call, "gemm " + pointers(call.args) + " m " + std::to_string(g.m));
  }

  bool beginCapture() override {
    if (!graphs) return false;
    ++captures;
    recording_ = new std::vector<Call>;
    return true;
  }
  void *endCapture() override {
    std::vector<Call> *g = recording_;
    recording_ = nullptr;
    if (endGivesNull) {
      delete g;
      return nullptr;
    }
    ++liveGraphs;
    return g;
  }
  void replay(void *graph) override {
    if (replayThrows) throw DeviceError("the fake's replay failed");
    for (const Call &c : *static_cast<std::vector<Call> *>(graph)) {
      run(c);
      replayed.push_back(c.text);
    }
  }
  void releaseGraph(void *graph) override {
    delete static_cast<std::vector<Call> *>(graph);
    --liveGraphs;
  }
  bool capturing() const { return recording_ != nullptr; }

 private:
  static std::string pointers(const std::vector<void *> &ps) {
    std::ostringstream s;
    for (void *p : ps) s << p << ' ';
    return s.str();
  }
  void issue(Call c, std::string text) {
    c.text = std::move(text);
    if (recording_) {
      recording_->push_back(c);
      return;
    }
    run(c);
    eager.push_back(c.text);
  }
  // t = 2 x, flagging a negative x as step 1 (1-based: 2); C = A B.
  static void run(const Call &c) {
    switch (c.kind) {
      case Step::Zero: std::memset(c.args[0], 0, c.bytes); break;
      case Step::Kernel: {
        auto *x = static_cast<const float *>(c.args[0]);
        auto *t = static_cast<float *>(c.args[1]);
        for (int64_t i = 0; i < c.counts[0]; ++i) {
          t[i] = 2 * x[i];
          if (x[i] < 0) *c.error = 2;
        }
        break;
      }
      case Step::Gemm: {
        auto *a = static_cast<const float *>(c.args[0]);
        auto *b = static_cast<const float *>(c.args[1]);
        auto *out = static_cast<float *>(c.args[2]);
        const Gemm &g = c.gemm;
        for (int64_t i = 0; i < g.m; ++i)
          for (int64_t j = 0; j < g.n; ++j) {
            float sum = 0;
            for (int64_t k = 0; k < g.k; ++k) sum += a[i * g.k + k] * b[k * g.n + j];
            out[i * g.n + j] = sum;
          }
        break;
      }
    }
  }
  std::vector<Call> *recording_ = nullptr;
};

class ExecutorGraphs : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("TLC_CUDA_GRAPHS");
    unsetenv("TLC_PROFILE");
  }
  void TearDown() override { unsetenv("TLC_CUDA_GRAPHS"); }

  std::unique_ptr<Executor> executor() {
    auto ex = std::make_unique<Executor>(a_, device_);
    float w[kWidth * kWidth];
    for (int i = 0; i < kWidth * kWidth; ++i) w[i] = static_cast<float>(i % 5) - 1.5f;
    ex->setParam(0, w);
    std::memcpy(w_, w, sizeof w);
    return ex;
  }
  // Runs micro-batch `batch` on fresh inputs (offset by `seed`) and checks
  // y = 2 x w; the device's call logs then hold this run's calls alone.
  void runAndCheck(Executor &ex, int64_t batch, int seed, const std::function<void(size_t)> &hook = {}) {
    float x[kBatch * kWidth], y[kBatch * kWidth];
    for (int i = 0; i < kBatch * kWidth; ++i) x[i] = static_cast<float>(seed + i);
    device_.eager.clear();
    device_.replayed.clear();
    ex.setInput(0, 0, x, batch);
    ex.run(0, batch, hook);
    ex.getOutput(0, 0, y);
    for (int64_t r = 0; r < batch; ++r)
      for (int64_t j = 0; j < kWidth; ++j) {
        float want = 0;
        for (int64_t k = 0; k < kWidth; ++k) want += 2 * x[r * kWidth + k] * w_[k * kWidth + j];
        ASSERT_EQ(y[r * kWidth + j], want) << "run with seed " << seed << ", row " << r;
      }
  }
  // The calls of the steps alone: the first eager call zeroes the error flag.
  std::vector<std::string> eagerSteps() const {
    return std::vector<std::string>(device_.eager.begin() + 1, device_.eager.end());
  }

  Artifact a_ = makeArtifact();
  FakeDevice device_;
  float w_[kWidth * kWidth];
};

TEST_F(ExecutorGraphs, SecondRunCapturesAndLaterRunsReplay) {
  {
    auto ex = executor();
    runAndCheck(*ex, 0, 1);
    std::vector<std::string> steps = eagerSteps(), flag = {device_.eager[0]};
    ASSERT_EQ(steps.size(), 3u);
    EXPECT_EQ(device_.captures, 0);
    EXPECT_TRUE(device_.replayed.empty());
    for (int run = 2; run <= 5; ++run) {
      runAndCheck(*ex, 0, 10 * run);
      EXPECT_EQ(device_.eager, flag) << "run " << run << ": only the error flag's zeroing is eager";
      EXPECT_EQ(device_.replayed, steps) << "run " << run;
      EXPECT_EQ(device_.captures, 1);
    }
  }
  EXPECT_EQ(device_.liveGraphs, 0);  // released with the executor
}

TEST_F(ExecutorGraphs, EachBatchAndSwapHasItsOwnGraph) {
  {
    auto ex = executor();
    for (int run = 0; run < 3; ++run) runAndCheck(*ex, 0, run);
    std::vector<std::string> full = device_.replayed;
    for (int run = 0; run < 3; ++run) {
      runAndCheck(*ex, 1, run);
      EXPECT_EQ(device_.captures, run == 0 ? 1 : 2);
      EXPECT_EQ(device_.eager.size(), run == 0 ? 4u : 1u) << "batch 1, run " << run;
    }
    EXPECT_NE(device_.replayed, full);  // its counts, grid and rows
    ex->swapInputOutput(0, 0, 0);
    for (int run = 0; run < 3; ++run) {
      runAndCheck(*ex, 0, run);
      EXPECT_EQ(device_.captures, run == 0 ? 2 : 3);
      EXPECT_EQ(device_.eager.size(), run == 0 ? 4u : 1u) << "swapped, run " << run;
    }
    EXPECT_NE(device_.replayed, full);  // other pointers
    ex->swapInputOutput(0, 0, 0);
    runAndCheck(*ex, 0, 7);
    EXPECT_EQ(device_.captures, 3);
    EXPECT_EQ(device_.replayed, full);
    EXPECT_EQ(device_.liveGraphs, 3);
  }
  EXPECT_EQ(device_.liveGraphs, 0);
}

TEST_F(ExecutorGraphs, StepHooksRunEveryStepEagerly) {
  auto ex = executor();
  for (int run = 0; run < 4; ++run) {
    std::vector<size_t> seen;
    runAndCheck(*ex, 0, run, [&](size_t step) { seen.push_back(step); });
    EXPECT_EQ(seen, (std::vector<size_t>{0, 1, 2}));
    EXPECT_EQ(device_.eager.size(), 4u);
    EXPECT_TRUE(device_.replayed.empty());
  }
  EXPECT_EQ(device_.captures, 0);
}

TEST_F(ExecutorGraphs, OffWithTlcCudaGraphsZero) {
  setenv("TLC_CUDA_GRAPHS", "0", 1);
  auto ex = executor();
  for (int run = 0; run < 4; ++run) {
    runAndCheck(*ex, 0, run);
    EXPECT_EQ(device_.eager.size(), 4u);
  }
  EXPECT_EQ(device_.captures, 0);
}

TEST_F(ExecutorGraphs, DeviceWithoutGraphsRunsEagerlyAndSilently) {
  device_.graphs = false;
  auto ex = executor();
  testing::internal::CaptureStderr();
  for (int run = 0; run < 4; ++run) runAndCheck(*ex, 0, run);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(device_.eager.size(), 4u);
}

// A capture that yields no graph, one whose launch fails, a failed replay:
// one warning, then every run eager and right.
TEST_F(ExecutorGraphs, FailedCaptureOrReplayWarnsOnceThenRunsEagerly) {
  for (int mode = 0; mode < 3; ++mode) {
    SCOPED_TRACE("mode " + std::to_string(mode));
    device_.endGivesNull = mode == 0;
    device_.launchThrows = mode == 1;
    device_.replayThrows = mode == 2;
    device_.captures = 0;
    auto ex = executor();
    testing::internal::CaptureStderr();
    for (int run = 0; run < 5; ++run) {
      runAndCheck(*ex, 0, run);
      EXPECT_EQ(device_.eager.size(), 4u) << "run " << run;
      EXPECT_FALSE(device_.capturing());
    }
    std::string err = testing::internal::GetCapturedStderr();
    std::string what = mode == 2 ? "replay" : "capture";
    std::string warning = "warning: CUDA graph " + what + " failed (";
    EXPECT_NE(err.find(warning), std::string::npos) << err;
    EXPECT_EQ(err.find(warning), err.rfind(warning)) << "warned more than once: " << err;
    EXPECT_NE(err.find("running kernel by kernel"), std::string::npos) << err;
    EXPECT_EQ(device_.captures, 1);
    EXPECT_EQ(device_.liveGraphs, 0);
  }
}

TEST_F(ExecutorGraphs, ErrorFlagOfAReplayedRunIsReported) {
  auto ex = executor();
  for (int run = 0; run < 3; ++run) runAndCheck(*ex, 0, run);
  float x[kBatch * kWidth] = {1, 2, 3, -4, 5, 6, 7, 8};
  ex->setInput(0, 0, x);
  device_.replayed.clear();
  try {
    ex->run(0);
    FAIL() << "no DeviceError";
  } catch (const DeviceError &e) {
    EXPECT_NE(std::string(e.what()).find("step 1 (k1_double) at model.mlir:7"), std::string::npos) << e.what();
  }
  EXPECT_EQ(device_.replayed.size(), 3u);
  runAndCheck(*ex, 0, 4);  // the flag is zeroed again
  EXPECT_EQ(device_.replayed.size(), 3u);
}

}  // namespace
