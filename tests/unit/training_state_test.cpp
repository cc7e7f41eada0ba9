// The training engine: the flat layout, gradient accumulation over
// micro-batches, the forward-only loss, AdamW against PyTorch's
// torch.optim.AdamW, the gradient sum of squares against a host sum in
// double, and the optimizer kernels on the CUDA emulator (bf16 training:
// training_state_bf16_test.cpp).
#include "compiler/Driver/Compile.h"
#include "models/tinyllama.h"
#include "formats/artifact.h"
#include "runtime/cuda/nvrtc.h"
#include "runtime/train/training_state.h"
#include "formats/half.h"

#include "mlir/IR/BuiltinOps.h"

#include "CudaEmulator.h"
#include "CompiledModelTest.h"
#include "TrainingStateTest.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>

using namespace mlir;

namespace {

TEST_F(TrainingStateTest, FlatLayoutIsOrderedAlignedAndHashed) {
  tlc::artifact::Artifact a = compile();
  auto device = tlc::makeCpuDevice();
  TrainingState e(a, *device);
  ASSERT_FALSE(a.params.empty());
  EXPECT_EQ(a.params.front().name, "model.embed_tokens.weight");
  int64_t end = 0;
  for (size_t i = 0; i < a.params.size(); ++i) {
    Range r = e.rangeOf(i);
    EXPECT_EQ(r.begin % tlc::kFlatAlignment, 0) << a.params[i].name;
    EXPECT_GE(r.begin, end);
    EXPECT_LT(r.begin - end, tlc::kFlatAlignment);  // no more padding than alignment needs
    EXPECT_EQ(r.size(), a.params[i].numel());
    end = r.end;
  }
  EXPECT_EQ(e.flatElements() % tlc::kFlatAlignment, 0);
  EXPECT_GE(e.flatElements(), end);
  EXPECT_LT(e.flatElements() - end, tlc::kFlatAlignment);
  EXPECT_TRUE(e.hasEvalLoss());
  EXPECT_EQ(e.batchSize(), 2);
  EXPECT_EQ(e.seqLen(), 8);

  // The identity survives a round trip and changes with any shape.
  std::string path = ::testing::TempDir() + "engine-layout.tlx";
  tlc::artifact::write(path, a);
  EXPECT_EQ(tlc::artifact::read(path).layoutHash(), e.layoutHash());
  EXPECT_EQ(compile().layoutHash(), e.layoutHash());
  EXPECT_NE(compile("layers=2,dim=24,heads=2,kv_heads=1,ffn=48,vocab=61,seq=8,micro_batch=2").layoutHash(),
            e.layoutHash());

  // Manifests whose layout or kernels are inconsistent are refused.
  auto readError = [&](const tlc::artifact::Artifact &bad) -> std::string {
    tlc::artifact::write(path, bad);
    try {
      tlc::artifact::read(path);
    } catch (const tlc::artifact::Error &err) {
      return err.what();
    }
    return "";
  };
  tlc::artifact::Artifact bad = a;
  bad.params[1].offset += 1;
  EXPECT_NE(readError(bad).find("'" + a.params[1].name + "' is misplaced in the flat layout"), std::string::npos);
  bad = a;
  bad.params[2].offset = bad.params[1].offset;
  EXPECT_NE(readError(bad).find("misplaced"), std::string::npos);
  bad = a;
  bad.kernels.push_back(bad.kernels.front());
  EXPECT_NE(readError(bad).find("two kernels are named '" + a.kernels.front().name + "'"), std::string::npos);
  tlc::artifact::write(path, a);

  // An artifact of the first format is refused with what to do.
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  bytes[4] = 1;
  std::ofstream(path, std::ios::binary) << bytes;
  try {
    tlc::artifact::read(path);
    FAIL() << "a version 1 artifact was read";
  } catch (const tlc::artifact::Error &err) {
    EXPECT_NE(std::string(err.what()).find("artifact version 1, this tlrun reads " + std::to_string(tlc::artifact::kVersion) + ": recompile with tlc compile"),
              std::string::npos)
        << err.what();
  }
}

TEST_F(TrainingStateTest, MicroBatchesAccumulateTheirGradients) {
  tlc::artifact::Artifact a = compile();
  auto device = tlc::makeCpuDevice();
  TrainingState e(a, *device);
  setRandomParams(e);
  auto [g1, g2, both, loss1, loss2, again1, again2] = twoMicroBatches(e);
  EXPECT_EQ(again1, loss1);
  EXPECT_EQ(again2, loss2);

  std::vector<float> sum(g1.size());
  for (size_t i = 0; i < sum.size(); ++i) sum[i] = g1[i] + g2[i];
  EXPECT_LE(relativeError(both, sum), 1e-6);
  // Every parameter got a gradient; the padding between them stayed zero.
  std::vector<bool> inside(both.size(), false);
  for (size_t i = 0; i < a.params.size(); ++i) {
    Range r = e.rangeOf(i);
    double norm = 0;
    for (int64_t k = r.begin; k < r.end; ++k) {
      inside[k] = true;
      norm += std::fabs(both[k]);
    }
    EXPECT_GT(norm, 0) << a.params[i].name;
  }
  for (size_t k = 0; k < both.size(); ++k)
    if (!inside[k]) ASSERT_EQ(both[k], 0.0f) << "padding element " << k;
}

// One artifact runs any micro-batch up to the compiled one: its row counts
// are run-time kernel arguments. B=2 on the artifact compiled for B=4 is
// the artifact compiled for B=2: the same loss, gradients and forward-only
// loss, on the CPU and on the CUDA kernels (emulated).
TEST_F(TrainingStateTest, ASmallerMicroBatchRunsOnTheSameKernels) {
  const std::string small = "layers=2,dim=24,heads=2,kv_heads=1,ffn=40,vocab=61,seq=8,micro_batch=";
  tlc::artifact::Artifact a4 = compile(small + "4"), a2 = compile(small + "2");
  ASSERT_EQ(a4.entry("train_step")->batch, 4);
  ASSERT_EQ(a4.layoutHash(), a2.layoutHash());
  for (bool cuda : {false, true}) {
    SCOPED_TRACE(cuda ? "emulated cuda" : "cpu");
    auto d4 = cuda ? tlc::testing::makeEmulatedCudaDevice() : tlc::makeCpuDevice();
    auto d2 = cuda ? tlc::testing::makeEmulatedCudaDevice() : tlc::makeCpuDevice();
    TrainingState e4(a4, *d4), e2(a2, *d2);
    e4.setMicroBatch(2);
    EXPECT_EQ(e4.batchSize(), 2);
    for (size_t i = 0; i < a4.params.size(); ++i) {
      std::vector<float> v = random(a4.params[i].numel(), 0.2);
      if (a4.params[i].shape.size() == 1)
        for (float &x : v) x += 1.0f;
      e4.setParam(i, v.data());
      e2.setParam(i, v.data());
    }
    auto [tokens, targets] = batch(e2);
    e4.zeroGrads();
    e2.zeroGrads();
    float loss4 = e4.trainMicroBatch(tokens.data(), targets.data());
    float loss2 = e2.trainMicroBatch(tokens.data(), targets.data());
    EXPECT_NEAR(loss4, loss2, 1e-5 * std::fabs(loss2));
    EXPECT_LE(relativeError(download(e4, FlatBuffer::Grads, all(e4)), download(e2, FlatBuffer::Grads, all(e2))),
              1e-5);
    EXPECT_NEAR(e4.evalLoss(tokens.data(), targets.data()), e2.evalLoss(tokens.data(), targets.data()),
                1e-5 * std::fabs(loss2));
  }
  auto device = tlc::makeCpuDevice();
  TrainingState e(a4, *device);
  EXPECT_THROW(e.setMicroBatch(5), tlc::artifact::Error);
  EXPECT_THROW(e.setMicroBatch(-1), tlc::artifact::Error);
  // The decode step keeps its compiled shapes.
  EXPECT_EQ(a4.entry("decode_step")->batch, 0);
}

TEST_F(TrainingStateTest, EvalLossIsTheTrainingStepsLossWithoutGradients) {
  tlc::artifact::Artifact a = compile();
  auto device = tlc::makeCpuDevice();
  TrainingState e(a, *device);
  setRandomParams(e);
  auto [tokens, targets] = batch(e);
  e.zeroGrads();
  float train = e.trainMicroBatch(tokens.data(), targets.data());
  std::vector<float> grads = download(e, FlatBuffer::Grads, all(e));
  float eval = e.evalLoss(tokens.data(), targets.data());
  EXPECT_EQ(eval, train);  // the same forward kernels: bitwise
  EXPECT_GT(train, 0.5 * std::log(61.0));
  EXPECT_EQ(download(e, FlatBuffer::Grads, all(e)), grads);  // untouched
  // The forward-only function computes less than the training step.
  EXPECT_LT(a.entry("eval_loss")->steps.size(), a.entry("train_step")->steps.size() / 2);

  // Ids beyond the vocabulary are reported by both entry points.
  tokens[3] = 1000;
  EXPECT_THROW(e.evalLoss(tokens.data(), targets.data()), tlc::DeviceError);
  EXPECT_THROW(e.trainMicroBatch(tokens.data(), targets.data()), tlc::DeviceError);
}

// torch's recipe for Llama (and TinyLlama's): decay every 2-D weight, the
// embedding and the LM head included, never a norm's gain. The model states
// it (tl.decay), the artifact records it, and AdamW applies exactly that:
// with zero gradients an update is w *= 1 - lr * wd where decayed, else none.
TEST_F(TrainingStateTest, WeightDecayFollowsTheModelsPolicy) {
  tlc::artifact::Artifact a = compile();
  int decayed = 0;
  for (const auto &p : a.params) {
    bool norm = p.name.find("norm") != std::string::npos;
    EXPECT_EQ(p.decay, p.shape.size() == 2) << p.name;
    EXPECT_EQ(p.decay, !norm) << p.name;
    EXPECT_EQ(p.init.value("kind", ""), norm ? "ones" : "normal") << p.name;
    decayed += p.decay;
  }
  auto decays = [&](const std::string &name) {
    for (const auto &p : a.params) if (p.name == name) return p.decay;
    ADD_FAILURE() << name << " missing";
    return false;
  };
  EXPECT_TRUE(decays("model.embed_tokens.weight"));
  EXPECT_TRUE(decays("lm_head.weight"));
  EXPECT_FALSE(decays("model.norm.weight"));
  EXPECT_EQ(decayed, 2 + 7 * 2);  // kSmall: 2 layers of 7 matrices

  auto device = tlc::makeCpuDevice();
  TrainingState e(a, *device);
  setRandomParams(e);
  std::vector<float> before = download(e, FlatBuffer::Master, all(e));
  e.zeroGrads();
  tlc::AdamWHyper h;
  h.lr = 0.5;
  h.weightDecay = 0.1;
  e.adamw(all(e), h);
  std::vector<float> after = download(e, FlatBuffer::Master, all(e));
  for (size_t i = 0; i < a.params.size(); ++i) {
    Range r = e.rangeOf(i);
    float factor = a.params[i].decay ? 1.0f - 0.5f * 0.1f : 1.0f;
    for (int64_t k = r.begin; k < r.end; ++k)
      ASSERT_NEAR(after[k], before[k] * factor, 1e-6f * std::fabs(before[k])) << a.params[i].name << " " << k;
  }
}

TEST_F(TrainingStateTest, AdamWMatchesPyTorch) {
  tlc::artifact::Artifact a = compile();
  auto device = tlc::makeCpuDevice();
  TrainingState e(a, *device);
  setRandomParams(e);
  const int steps = 3;
  const double lrs[steps] = {1e-3, 3e-3, 2e-4}, scales[steps] = {1.0, 0.5, 0.25};
  std::string dir = ::testing::TempDir() + "engine-adamw";
  std::system(("mkdir -p " + dir).c_str());
  auto writeParams = [&](const std::string &file, FlatBuffer which) {
    std::ofstream out(dir + "/" + file, std::ios::binary);
    for (size_t i = 0; i < a.params.size(); ++i) {
      std::vector<float> v = download(e, which, e.rangeOf(i));
      out.write(reinterpret_cast<const char *>(v.data()), v.size() * 4);
    }
  };
  writeParams("params.bin", FlatBuffer::Master);
  tlc::AdamWHyper h;
  h.beta1 = 0.9;
  h.beta2 = 0.95;
  h.eps = 1e-8;
  h.weightDecay = 0.1;
  for (int s = 0; s < steps; ++s) {
    // Fresh random gradients, zero in the padding as the training step leaves it.
    std::vector<float> grads(e.flatElements(), 0.0f);
    for (size_t i = 0; i < a.params.size(); ++i) {
      Range r = e.rangeOf(i);
      std::vector<float> g = random(r.size(), 0.01);
      std::copy(g.begin(), g.end(), grads.begin() + r.begin);
    }
    e.upload(FlatBuffer::Grads, all(e), grads.data());
    writeParams("grads" + std::to_string(s) + ".bin", FlatBuffer::Grads);
    h.lr = lrs[s];
    h.step = s + 1;
    h.gradScale = scales[s];
    e.adamw(all(e), h);
  }
  writeParams("ours_params.bin", FlatBuffer::Master);
  writeParams("ours_m.bin", FlatBuffer::M);
  writeParams("ours_v.bin", FlatBuffer::V);

  nlohmann::json spec = {{"beta1", h.beta1}, {"beta2", h.beta2}, {"eps", h.eps}, {"weight_decay", h.weightDecay},
                         {"lrs", std::vector<double>(lrs, lrs + steps)}, {"scales", std::vector<double>(scales, scales + steps)}};
  for (const auto &p : a.params) spec["shapes"].push_back(p.shape);
  std::ofstream(dir + "/spec.json") << spec.dump();
  std::ofstream(dir + "/adamw.py") << R"(
import json, sys
import numpy as np
import torch
d = sys.argv[1]
spec = json.load(open(d + "/spec.json"))
def split(name):
    flat = np.fromfile(d + "/" + name, dtype=np.float32)
    out, at = [], 0
    for shape in spec["shapes"]:
        n = int(np.prod(shape))
        out.append(torch.from_numpy(flat[at:at + n].reshape(shape).copy()))
        at += n
    return out
params = [t.requires_grad_() for t in split("params.bin")]
groups = [{"params": [p for p in params if p.dim() == 2], "weight_decay": spec["weight_decay"]},
          {"params": [p for p in params if p.dim() != 2], "weight_decay": 0.0}]
opt = torch.optim.AdamW(groups, lr=spec["lrs"][0], betas=(spec["beta1"], spec["beta2"]), eps=spec["eps"],
                        foreach=False)
for s, (lr, scale) in enumerate(zip(spec["lrs"], spec["scales"])):
    for p, g in zip(params, split("grads%d.bin" % s)):
        p.grad = g * scale
    for group in opt.param_groups:
        group["lr"] = lr
    opt.step()
def save(name, tensors):
    np.concatenate([t.detach().numpy().ravel() for t in tensors]).astype(np.float32).tofile(d + "/" + name)
save("torch_params.bin", params)
save("torch_m.bin", [opt.state[p]["exp_avg"] for p in params])
save("torch_v.bin", [opt.state[p]["exp_avg_sq"] for p in params])
)";
  ASSERT_EQ(std::system(("/usr/bin/python3 " + dir + "/adamw.py " + dir).c_str()), 0);
  auto load = [&](const std::string &file) {
    std::ifstream in(dir + "/" + file, std::ios::binary);
    std::vector<float> v;
    float x;
    while (in.read(reinterpret_cast<char *>(&x), 4)) v.push_back(x);
    return v;
  };
  for (const char *what : {"params", "m", "v"}) {
    std::vector<float> ours = load(std::string("ours_") + what + ".bin"), torch = load(std::string("torch_") + what + ".bin");
    ASSERT_EQ(ours.size(), torch.size());
    double worst = 0;
    for (size_t i = 0; i < ours.size(); ++i)
      worst = std::max(worst, std::fabs(double(ours[i]) - torch[i]) / std::max(std::fabs(double(torch[i])), 1e-3));
    EXPECT_LE(worst, 1e-5) << what;
  }
  // Params follow the master weights; the padding stayed zero.
  std::vector<float> params = download(e, FlatBuffer::Params, all(e)),
                     master = download(e, FlatBuffer::Master, all(e));
  EXPECT_EQ(params, master);
  std::vector<bool> inside(params.size(), false);
  for (size_t i = 0; i < a.params.size(); ++i)
    for (int64_t k = e.rangeOf(i).begin; k < e.rangeOf(i).end; ++k) inside[k] = true;
  for (size_t k = 0; k < params.size(); ++k)
    if (!inside[k]) ASSERT_EQ(params[k], 0.0f);
}

TEST_F(TrainingStateTest, AdamWOverRangesAndShardsIsTheSameUpdate) {
  tlc::artifact::Artifact a = compile();
  auto device = tlc::makeCpuDevice();
  TrainingState whole(a, *device);
  setRandomParams(whole);
  std::vector<float> params = download(whole, FlatBuffer::Master, all(whole));
  std::vector<float> grads = random(whole.flatElements(), 0.01);
  whole.upload(FlatBuffer::Grads, all(whole), grads.data());
  tlc::AdamWHyper h;
  h.lr = 1e-3;
  whole.adamw(all(whole), h);

  // A shard owning an odd range, updated in two pieces.
  Range shard = {whole.flatElements() / 3 + 5, 2 * whole.flatElements() / 3 + 1};
  TrainingState part(a, *device, shard);
  EXPECT_EQ(part.optimizerRange().begin, shard.begin);
  for (size_t i = 0; i < a.params.size(); ++i)
    part.setParam(i, params.data() + part.rangeOf(i).begin);
  part.upload(FlatBuffer::Grads, all(part), grads.data());
  int64_t mid = shard.begin + 1000;
  part.adamw({shard.begin, mid}, h);
  part.adamw({mid, shard.end}, h);
  std::vector<float> want = download(whole, FlatBuffer::Master, shard);
  EXPECT_EQ(download(part, FlatBuffer::Master, shard), want);
  EXPECT_EQ(download(part, FlatBuffer::Params, shard), want);
  EXPECT_EQ(download(part, FlatBuffer::V, shard), download(whole, FlatBuffer::V, shard));
  // Outside its range a shard neither updates nor holds optimizer state.
  EXPECT_EQ(download(part, FlatBuffer::Params, {0, shard.begin}),
            std::vector<float>(params.begin(), params.begin() + shard.begin));
  EXPECT_THROW(part.adamw({0, 10}, h), std::out_of_range);
  EXPECT_THROW(part.download(FlatBuffer::M, {0, 10}, grads.data()), std::out_of_range);
}

TEST_F(TrainingStateTest, GradSquaredNormIsAHostSumInDouble) {
  tlc::artifact::Artifact a = compile();
  auto device = tlc::makeCpuDevice();
  TrainingState e(a, *device);
  std::vector<float> grads = random(e.flatElements(), 3.0);
  e.upload(FlatBuffer::Grads, all(e), grads.data());
  for (Range r : {all(e), Range{17, 17 + 1000}, Range{e.flatElements() - 3, e.flatElements()}, Range{5, 5}}) {
    double want = 0;
    for (int64_t i = r.begin; i < r.end; ++i) want += static_cast<double>(grads[i]) * grads[i];
    double got = e.gradSquaredNorm(r);
    EXPECT_NEAR(got, want, 1e-12 * want) << r.begin << ".." << r.end;
    EXPECT_EQ(e.gradSquaredNorm(r), got);  // bitwise reproducible
  }
}

TEST_F(TrainingStateTest, OptimizerKernelsOnEmulatedCudaMatchTheCpu) {
  const std::string small = "layers=1,dim=16,heads=2,kv_heads=1,ffn=24,vocab=50,seq=4,micro_batch=2";
  // f32: gradients from the training step; bf16: the same uploaded
  // gradients on both devices, so AdamW's bf16 stores are compared exactly.
  for (bool bf16 : {false, true}) {
    tlc::artifact::Artifact a = compile(small, bf16);
    std::vector<std::vector<float>> master, params;
    std::vector<double> norms;
    for (bool cuda : {false, true}) {
      rng.seed(11);
      auto device = cuda ? tlc::testing::makeEmulatedCudaDevice() : tlc::makeCpuDevice();
      TrainingState e(a, *device);
      setRandomParams(e);
      e.zeroGrads();
      if (bf16) {
        std::vector<float> grads = random(e.flatElements(), 0.01);
        e.upload(FlatBuffer::Grads, all(e), grads.data());
      } else {
        auto [tokens, targets] = batch(e);
        e.trainMicroBatch(tokens.data(), targets.data());
        e.trainMicroBatch(targets.data(), tokens.data());
      }
      norms.push_back(e.gradSquaredNorm(all(e)));
      tlc::AdamWHyper h;
      h.lr = 1e-3;
      h.gradScale = 0.5;
      e.adamw(all(e), h);
      h.step = 2;
      e.adamw({3, e.flatElements() - 70}, h);
      master.push_back(download(e, FlatBuffer::Master, all(e)));
      params.push_back(download(e, FlatBuffer::Params, all(e)));
    }
    std::string what = bf16 ? "bf16" : "f32";
    EXPECT_NEAR(norms[1], norms[0], (bf16 ? 1e-12 : 1e-5) * norms[0]) << what;
    EXPECT_LE(relativeError(master[1], master[0]), bf16 ? 1e-6 : 1e-5) << what;
    size_t differ = 0;
    for (size_t i = 0; i < params[0].size(); ++i) {
      EXPECT_EQ(params[1][i], bf16 ? tlc::roundToBf16(master[1][i]) : master[1][i]) << what << " " << i;
      differ += params[1][i] != params[0][i];
    }
    if (bf16) EXPECT_LE(differ, params[0].size() / 1000) << "bf16 params that differ between the devices";
  }
}

TEST_F(TrainingStateTest, ArtifactsWithoutALossFunctionHaveNoEvalLoss) {
  auto config = tlc::models::preset("tiny");
  ASSERT_TRUE(config && !tlc::models::applyOverrides(*config, kSmall));
  OwningOpRef<ModuleOp> m = tlc::models::buildTinyLlama(context, *config, Builder(&context).getF32Type());
  tl::codegen::LoweringStats stats;
  // Compiled from an already-differentiated step: one entry point.
  auto func = *m->getOps<func::FuncOp>().begin();
  auto full = tl::compileModel(*m, func, true, false, /*verifyFusion=*/false, stats);
  ASSERT_TRUE(succeeded(full));
  auto step = tl::codegen::lowerToArtifact(func, stats);  // func is now the training step
  ASSERT_TRUE(succeeded(step)) << diagnostics;
  EXPECT_EQ(step->entries.size(), 1u);
  EXPECT_EQ(step->layoutHash(), full->layoutHash());
  auto device = tlc::makeCpuDevice();
  TrainingState e(*step, *device);
  EXPECT_FALSE(e.hasEvalLoss());
  std::vector<int32_t> tokens(e.batchSize() * e.seqLen(), 1);
  try {
    e.evalLoss(tokens.data(), tokens.data());
    FAIL() << "evalLoss ran without an eval_loss entry point";
  } catch (const tlc::artifact::Error &err) {
    EXPECT_NE(std::string(err.what()).find("no eval_loss entry point"), std::string::npos);
  }
}

}  // namespace
