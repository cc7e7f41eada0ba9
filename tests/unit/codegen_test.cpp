// Generated kernels: every generator run on the CPU device against the
// reference evaluator (f32) on random inputs with ragged sizes (rows not a
// multiple of 8, widths not of 32, sequences not of the attention tile),
// the artifact format, and NVRTC compiles of the CUDA kernels of TinyLlama.
#include "compiler/Codegen/Kernel.h"
#include "compiler/Codegen/Lowering.h"
#include "compiler/Evaluator/ReferenceEvaluator.h"
#include "compiler/Passes/Passes.h"
#include "models/tinyllama.h"
#include "formats/artifact.h"
#include "runtime/cuda/nvrtc.h"
#include "runtime/exec/device.h"
#include "runtime/exec/kernel_cache.h"
#include "runtime/exec/executor.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include "CudaEmulator.h"
#include "PtxasUsage.h"
#include "TestSupport.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

using namespace mlir;
using tlc::HostTensor;

namespace {

class CodegenTest : public TlContextTest {
protected:
  static void SetUpTestSuite() {
    std::string dir = ::testing::TempDir() + "tlc-kernel-cache";
    setenv("TLC_CACHE_DIR", dir.c_str(), 1);
  }

  /// Runs `src` (one function; i32 arguments get ids in [0, idRange)) on the
  /// CPU device and with the evaluator; every output must agree.
  void check(const std::string &src, int64_t idRange = 5, double tolerance = 2e-5) {
    OwningOpRef<ModuleOp> m = parseSourceString<ModuleOp>(src, &context);
    ASSERT_TRUE(m) << diagnostics;
    auto func = *m->getOps<func::FuncOp>().begin();
    tl::codegen::LoweringStats stats;
    auto artifact = tl::codegen::lowerToArtifact(func, stats);
    ASSERT_TRUE(succeeded(artifact)) << diagnostics;

    std::vector<HostTensor> args;
    for (BlockArgument a : func.getArguments()) {
      auto t = cast<RankedTensorType>(a.getType());
      HostTensor h({t.getShape().begin(), t.getShape().end()});
      for (double &x : h.data)
        x = t.getElementType().isInteger(32) ? static_cast<double>(rng() % idRange)
                                             : static_cast<float>(uniform(rng));
      args.push_back(h);
    }
    auto expect = tl::evaluate(func, args, tl::Precision::F32);
    ASSERT_TRUE(succeeded(expect)) << diagnostics;

    // The CPU kernels, and the CUDA kernels under the CPU emulation of CUDA.
    for (bool cuda : {false, true}) {
    auto device = cuda ? tlc::testing::makeEmulatedCudaDevice() : tlc::makeCpuDevice();
    tlc::Executor ex(*artifact, *device);
    const tlc::artifact::EntryPoint &entry = artifact->entries[0];
    for (size_t i = 0; i < entry.inputs.size(); ++i) {
      const HostTensor &h = args[i];
      if (entry.inputs[i].dtype == tlc::artifact::DType::I32) {
        std::vector<int32_t> v(h.data.begin(), h.data.end());
        ex.setInput(0, i, v.data());
      } else {
        std::vector<float> v(h.data.begin(), h.data.end());
        ex.setInput(0, i, v.data());
      }
    }
    ex.run(0);
    for (size_t o = 0; o < entry.outputs.size(); ++o) {
      std::vector<float> got((*expect)[o].numel());
      ex.getOutput(0, o, got.data());
      double diff = 0, norm = 0;
      for (size_t k = 0; k < got.size(); ++k) {
        diff += std::pow(got[k] - (*expect)[o].data[k], 2);
        norm += std::pow((*expect)[o].data[k], 2);
      }
      EXPECT_LE(std::sqrt(diff), tolerance * std::sqrt(norm) + 1e-6)
          << (cuda ? "emulated CUDA" : "CPU") << " output #" << o << "\n" << src;
    }
    }
  }

  /// TinyLlama (`preset` with `overrides`) through the default pipeline,
  /// lowered to an artifact.
  FailureOr<tlc::artifact::Artifact> compiledStep(const std::string &preset,
                                                  const std::string &overrides = "", bool bf16 = false) {
    auto config = tlc::models::preset(preset);
    if (!config || tlc::models::applyOverrides(*config, overrides)) return failure();
    Builder b(&context);
    OwningOpRef<ModuleOp> m = tlc::models::buildTinyLlama(context, *config, bf16 ? Type(b.getBF16Type()) : b.getF32Type());
    PassManager pm(&context);
    tl::buildTrainPipeline(pm);
    if (failed(pm.run(*m))) return failure();
    tl::codegen::LoweringStats stats;
    return tl::codegen::lowerToArtifact(*m->getOps<func::FuncOp>().begin(), stats);
  }

  std::mt19937 rng{99};
  std::uniform_real_distribution<double> uniform{-2.0, 2.0};
};

TEST_F(CodegenTest, NormsAndTheirGradients) {
  check(R"(func.func @f(%x: tensor<3x5x37xf32>, %w: tensor<37xf32>) -> (tensor<3x5x37xf32>, tensor<3x5xf32>) {
    %y, %r = tl.rmsnorm %x, %w eps = 1.0e-5 : tensor<3x5x37xf32>, tensor<37xf32> -> tensor<3x5xf32>
    return %y, %r : tensor<3x5x37xf32>, tensor<3x5xf32> })");
  check(R"(func.func @f(%a: tensor<13x37xf32>, %b: tensor<13x37xf32>, %w: tensor<37xf32>) -> (tensor<13x37xf32>, tensor<13x37xf32>) {
    %s, %y, %r = tl.add_rmsnorm %a, %b, %w eps = 1.0e-5 : tensor<13x37xf32>, tensor<37xf32> -> tensor<13xf32>
    return %s, %y : tensor<13x37xf32>, tensor<13x37xf32> })");
  check(R"(func.func @f(%g: tensor<13x37xf32>, %x: tensor<13x37xf32>, %w: tensor<37xf32>) -> (tensor<13x37xf32>, tensor<37xf32>) {
    %y, %r = tl.rmsnorm %x, %w eps = 1.0e-5 : tensor<13x37xf32>, tensor<37xf32> -> tensor<13xf32>
    %dx, %dw = tl.rmsnorm_grad %g, %x, %w, %r : tensor<13x37xf32>, tensor<37xf32>, tensor<13xf32>
    return %dx, %dw : tensor<13x37xf32>, tensor<37xf32> })");
  check(R"(func.func @f(%g: tensor<9x33xf32>, %x: tensor<9x33xf32>, %w: tensor<33xf32>, %b: tensor<33xf32>) -> (tensor<9x33xf32>, tensor<9x33xf32>, tensor<33xf32>, tensor<33xf32>) {
    %y, %m, %r = tl.layernorm %x, %w, %b eps = 1.0e-5 : tensor<9x33xf32>, tensor<33xf32> -> tensor<9xf32>, tensor<9xf32>
    %dx, %dw, %db = tl.layernorm_grad %g, %x, %w, %m, %r : tensor<9x33xf32>, tensor<33xf32>, tensor<9xf32>
    return %y, %dx, %dw, %db : tensor<9x33xf32>, tensor<9x33xf32>, tensor<33xf32>, tensor<33xf32> })");
}

TEST_F(CodegenTest, RopeWithOffsetAndItsTranspose) {
  check(R"(func.func @f(%x: tensor<2x3x13x6xf32>, %c: tensor<17x6xf32>, %s: tensor<17x6xf32>) -> (tensor<2x3x13x6xf32>, tensor<2x3x13x6xf32>) {
    %y = tl.rope %x, %c, %s offset = 2 : tensor<2x3x13x6xf32>, tensor<17x6xf32>
    %d = tl.rope_grad %x, %c, %s offset = 3 : tensor<2x3x13x6xf32>, tensor<17x6xf32>
    return %y, %d : tensor<2x3x13x6xf32>, tensor<2x3x13x6xf32> })");
}

TEST_F(CodegenTest, AttentionForwardAndBackward) {
  // Causal GQA, T = 13 (not a multiple of the tile), head size 8.
  check(R"(func.func @f(%q: tensor<2x4x13x8xf32>, %k: tensor<2x2x13x8xf32>, %v: tensor<2x2x13x8xf32>, %g: tensor<2x4x13x8xf32>)
        -> (tensor<2x4x13x8xf32>, tensor<2x4x13xf32>, tensor<2x4x13x8xf32>, tensor<2x2x13x8xf32>, tensor<2x2x13x8xf32>) {
    %o, %l = tl.attention %q, %k, %v scale = 0.35 causal : tensor<2x4x13x8xf32>, tensor<2x2x13x8xf32> -> tensor<2x4x13xf32>
    %dq, %dk, %dv = tl.attention_grad %g, %q, %k, %v, %o, %l scale = 0.35 causal : tensor<2x4x13x8xf32>, tensor<2x2x13x8xf32>, tensor<2x4x13xf32>
    return %o, %l, %dq, %dk, %dv : tensor<2x4x13x8xf32>, tensor<2x4x13xf32>, tensor<2x4x13x8xf32>, tensor<2x2x13x8xf32>, tensor<2x2x13x8xf32> })");
  // Not causal, more keys than queries, one KV head for three query heads.
  check(R"(func.func @f(%q: tensor<1x3x5x4xf32>, %k: tensor<1x1x7x4xf32>, %v: tensor<1x1x7x4xf32>, %g: tensor<1x3x5x4xf32>)
        -> (tensor<1x3x5x4xf32>, tensor<1x3x5x4xf32>, tensor<1x1x7x4xf32>, tensor<1x1x7x4xf32>) {
    %o, %l = tl.attention %q, %k, %v scale = 0.5 : tensor<1x3x5x4xf32>, tensor<1x1x7x4xf32> -> tensor<1x3x5xf32>
    %dq, %dk, %dv = tl.attention_grad %g, %q, %k, %v, %o, %l scale = 0.5 : tensor<1x3x5x4xf32>, tensor<1x1x7x4xf32>, tensor<1x3x5xf32>
    return %o, %dq, %dk, %dv : tensor<1x3x5x4xf32>, tensor<1x3x5x4xf32>, tensor<1x1x7x4xf32>, tensor<1x1x7x4xf32> })");
}

TEST_F(CodegenTest, AttentionOverSeveralTiles) {
  // The CPU kernels tile 32 queries by 64 keys: T = 100 gives ragged query
  // and key tiles, a diagonal tile under the causal mask and skipped ones.
  check(R"(func.func @f(%q: tensor<1x4x100x16xf32>, %k: tensor<1x2x100x16xf32>, %v: tensor<1x2x100x16xf32>, %g: tensor<1x4x100x16xf32>)
        -> (tensor<1x4x100x16xf32>, tensor<1x4x100xf32>, tensor<1x4x100x16xf32>, tensor<1x2x100x16xf32>, tensor<1x2x100x16xf32>) {
    %o, %l = tl.attention %q, %k, %v scale = 0.25 causal : tensor<1x4x100x16xf32>, tensor<1x2x100x16xf32> -> tensor<1x4x100xf32>
    %dq, %dk, %dv = tl.attention_grad %g, %q, %k, %v, %o, %l scale = 0.25 causal : tensor<1x4x100x16xf32>, tensor<1x2x100x16xf32>, tensor<1x4x100xf32>
    return %o, %l, %dq, %dk, %dv : tensor<1x4x100x16xf32>, tensor<1x4x100xf32>, tensor<1x4x100x16xf32>, tensor<1x2x100x16xf32>, tensor<1x2x100x16xf32> })");
  // Not causal: 70 keys (two key tiles) for 40 queries.
  check(R"(func.func @f(%q: tensor<2x2x40x8xf32>, %k: tensor<2x1x70x8xf32>, %v: tensor<2x1x70x8xf32>, %g: tensor<2x2x40x8xf32>)
        -> (tensor<2x2x40x8xf32>, tensor<2x2x40x8xf32>, tensor<2x1x70x8xf32>, tensor<2x1x70x8xf32>) {
    %o, %l = tl.attention %q, %k, %v scale = 0.4 : tensor<2x2x40x8xf32>, tensor<2x1x70x8xf32> -> tensor<2x2x40xf32>
    %dq, %dk, %dv = tl.attention_grad %g, %q, %k, %v, %o, %l scale = 0.4 : tensor<2x2x40x8xf32>, tensor<2x1x70x8xf32>, tensor<2x2x40xf32>
    return %o, %dq, %dk, %dv : tensor<2x2x40x8xf32>, tensor<2x2x40x8xf32>, tensor<2x1x70x8xf32>, tensor<2x1x70x8xf32> })");
}

TEST_F(CodegenTest, CrossEntropyWithAndWithoutIgnoredRows) {
  for (const char *ignore : {"", "ignore_index = 3"}) {
    std::string src = std::string(R"(func.func @f(%l: tensor<11x37xf32>, %t: tensor<11xi32>, %g: tensor<f32>) -> (tensor<f32>, tensor<11xf32>, tensor<11x37xf32>) {
      %loss, %lse = tl.cross_entropy %l, %t )") + ignore + R"( : tensor<11x37xf32>, tensor<11xi32> -> tensor<f32>, tensor<11xf32>
      %d = tl.cross_entropy_grad %g, %l, %t, %lse )" + ignore + R"( : tensor<f32>, tensor<11x37xf32>, tensor<11xi32>, tensor<11xf32>
      return %loss, %lse, %d : tensor<f32>, tensor<11xf32>, tensor<11x37xf32> })";
    check(src, /*idRange=*/6);
  }
}

TEST_F(CodegenTest, GatherAndScatterWithRepeatedIds) {
  check(R"(func.func @f(%t: tensor<7x5xf32>, %ids: tensor<3x4xi32>, %u: tensor<3x4x5xf32>) -> (tensor<3x4x5xf32>, tensor<7x5xf32>) {
    %g = tl.gather %t[%ids] : tensor<7x5xf32>, tensor<3x4xi32> -> tensor<3x4x5xf32>
    %s = tl.scatter_add %u[%ids] : tensor<3x4x5xf32>, tensor<3x4xi32> -> tensor<7x5xf32>
    return %g, %s : tensor<3x4x5xf32>, tensor<7x5xf32> })", /*idRange=*/4);
}

TEST_F(CodegenTest, ElementwiseGroupsWithMovementAndReductions) {
  check(R"(func.func @f(%x: tensor<3x5x6xf32>, %y: tensor<6x5xf32>) -> (tensor<3x5x6xf32>, tensor<5x3xf32>) {
    %r = tl.fusion(%x, %y) : (tensor<3x5x6xf32>, tensor<6x5xf32>) -> tensor<3x5x6xf32> {
    ^bb0(%a: tensor<3x5x6xf32>, %b: tensor<6x5xf32>):
      %bt = tl.transpose %b, perm = [1, 0] : tensor<6x5xf32> -> tensor<5x6xf32>
      %bb = tl.broadcast %bt, dims = [1, 2] : tensor<5x6xf32> -> tensor<3x5x6xf32>
      %m = tl.reduce_max %a, axis = 2 : tensor<3x5x6xf32> -> tensor<3x5xf32>
      %mb = tl.broadcast %m, dims = [0, 1] : tensor<3x5xf32> -> tensor<3x5x6xf32>
      %e = tl.exp %a : tensor<3x5x6xf32>
      %s = tl.sub %e, %mb : tensor<3x5x6xf32>
      %lo = tl.slice %s, axis = 2, start = 0, size = 2 : tensor<3x5x6xf32> -> tensor<3x5x2xf32>
      %hi = tl.slice %s, axis = 2, start = 2, size = 4 : tensor<3x5x6xf32> -> tensor<3x5x4xf32>
      %n = tl.neg %lo : tensor<3x5x2xf32>
      %c = tl.concat %hi, %n axis = 2 : tensor<3x5x4xf32>, tensor<3x5x2xf32> -> tensor<3x5x6xf32>
      %i = tl.iota axis = 1 : tensor<3x5x6xf32>
      %k = tl.constant dense<[1.0, -1.0, 0.5, 2.0, 0.25, 3.0]> : tensor<6xf32>
      %kb = tl.broadcast %k, dims = [2] : tensor<6xf32> -> tensor<3x5x6xf32>
      %p = tl.mul %c, %kb : tensor<3x5x6xf32>
      %q = tl.add %p, %i : tensor<3x5x6xf32>
      %z = tl.mul %q, %bb : tensor<3x5x6xf32>
      tl.yield %z : tensor<3x5x6xf32>
    }
    %sum = tl.reduce_mean %x, axis = 2 : tensor<3x5x6xf32> -> tensor<3x5xf32>
    %t = tl.transpose %sum, perm = [1, 0] : tensor<3x5xf32> -> tensor<5x3xf32>
    return %r, %t : tensor<3x5x6xf32>, tensor<5x3xf32> })");
}

TEST_F(CodegenTest, MatmulsWithTransposesAndSharedWeights) {
  check(R"(func.func @f(%x: tensor<2x3x5xf32>, %w: tensor<7x5xf32>, %a: tensor<2x5x3xf32>, %b: tensor<2x4x5xf32>) -> (tensor<2x3x7xf32>, tensor<2x3x4xf32>) {
    %y = tl.matmul %x, %w {transpose_rhs} : tensor<2x3x5xf32>, tensor<7x5xf32> -> tensor<2x3x7xf32>
    %z = tl.matmul %a, %b {transpose_lhs, transpose_rhs} : tensor<2x5x3xf32>, tensor<2x4x5xf32> -> tensor<2x3x4xf32>
    return %y, %z : tensor<2x3x7xf32>, tensor<2x3x4xf32> })");
  // Transposes of the last two dimensions fold into the GEMMs' flags (one
  // also feeds a return, so its kernel stays).
  const char *folded = R"(func.func @f(%a: tensor<2x5x3xf32>, %b: tensor<2x4x5xf32>, %w: tensor<5x7xf32>) -> (tensor<2x3x4xf32>, tensor<2x3x7xf32>, tensor<2x3x5xf32>) {
    %at = tl.transpose %a, perm = [0, 2, 1] : tensor<2x5x3xf32> -> tensor<2x3x5xf32>
    %bt = tl.transpose %b, perm = [0, 2, 1] : tensor<2x4x5xf32> -> tensor<2x5x4xf32>
    %wt = tl.transpose %w, perm = [1, 0] : tensor<5x7xf32> -> tensor<7x5xf32>
    %z = tl.matmul %at, %bt : tensor<2x3x5xf32>, tensor<2x5x4xf32> -> tensor<2x3x4xf32>
    %y = tl.matmul %at, %wt {transpose_rhs} : tensor<2x3x5xf32>, tensor<7x5xf32> -> tensor<2x3x7xf32>
    return %z, %y, %at : tensor<2x3x4xf32>, tensor<2x3x7xf32>, tensor<2x3x5xf32> })";
  check(folded);
  OwningOpRef<ModuleOp> m = parseSourceString<ModuleOp>(folded, &context);
  ASSERT_TRUE(m) << diagnostics;
  tl::codegen::LoweringStats stats;
  auto artifact = tl::codegen::lowerToArtifact(*m->getOps<func::FuncOp>().begin(), stats);
  ASSERT_TRUE(succeeded(artifact)) << diagnostics;
  std::string names;  // the step's kernels (not the optimizer's, opt_*)
  int stepKernels = 0;
  for (const auto &k : artifact->kernels)
    if (k.name.rfind("opt_", 0) != 0) names += k.name + " ", ++stepKernels;
  EXPECT_EQ(stepKernels, 1) << names;  // only the returned transpose
  EXPECT_EQ(stats.gemms, 2);
}

// A whole fused TinyLlama step: the CUDA kernels (emulated) and the CPU
// kernels agree on the loss and every gradient.
TEST_F(CodegenTest, WholeStepOnEmulatedCudaMatchesCpu) {
  auto artifact = compiledStep("tiny", "layers=2,dim=32,heads=4,kv_heads=2,ffn=48,vocab=64,seq=16,micro_batch=2");
  ASSERT_TRUE(succeeded(artifact)) << diagnostics;
  std::vector<std::vector<float>> params;
  for (const auto &p : artifact->params) {
    std::vector<float> v(p.numel());
    for (float &x : v) x = p.shape.size() == 1 ? 1.0f + 0.2f * uniform(rng) : 0.2f * uniform(rng);
    params.push_back(v);
  }
  std::vector<std::vector<int32_t>> inputs;
  const tlc::artifact::EntryPoint &entry = artifact->entries[0];
  for (const auto &in : entry.inputs) {
    std::vector<int32_t> v(in.numel());
    for (int32_t &x : v) x = static_cast<int32_t>(rng() % 64);
    inputs.push_back(v);
  }
  // The loss, then the flat gradient buffer.
  std::vector<std::vector<std::vector<float>>> outputs;
  for (bool cuda : {false, true}) {
    auto device = cuda ? tlc::testing::makeEmulatedCudaDevice() : tlc::makeCpuDevice();
    tlc::Executor ex(*artifact, *device);
    for (size_t i = 0; i < params.size(); ++i) ex.setParam(i, params[i].data());
    for (size_t i = 0; i < inputs.size(); ++i) ex.setInput(0, i, inputs[i].data());
    ex.run(0);
    outputs.emplace_back();
    for (size_t o = 0; o < entry.outputs.size(); ++o) {
      outputs.back().emplace_back(entry.outputs[o].numel());
      ex.getOutput(0, o, outputs.back().back().data());
    }
    outputs.back().emplace_back(artifact->flatElements);
    device->download(outputs.back().back().data(), ex.flatGrads(), artifact->flatElements * sizeof(float));
  }
  for (size_t o = 0; o < outputs[0].size(); ++o) {
    double diff = 0, norm = 0;
    for (size_t k = 0; k < outputs[0][o].size(); ++k) {
      diff += std::pow(outputs[1][o][k] - outputs[0][o][k], 2);
      norm += std::pow(outputs[0][o][k], 2);
    }
    EXPECT_LE(std::sqrt(diff), 1e-5 * std::sqrt(norm)) << (o < entry.outputs.size() ? entry.outputs[o].name : "grads");
  }
}

TEST_F(CodegenTest, OutOfRangeIdsAreReportedWithTheirOp) {
  OwningOpRef<ModuleOp> m = parseSourceString<ModuleOp>(R"(
    func.func @f(%t: tensor<4x2xf32>, %ids: tensor<3xi32>) -> tensor<3x2xf32> {
      %g = tl.gather %t[%ids] : tensor<4x2xf32>, tensor<3xi32> -> tensor<3x2xf32> loc("model.embed")
      return %g : tensor<3x2xf32> })", &context);
  ASSERT_TRUE(m);
  tl::codegen::LoweringStats stats;
  auto artifact = tl::codegen::lowerToArtifact(*m->getOps<func::FuncOp>().begin(), stats);
  ASSERT_TRUE(succeeded(artifact));
  auto device = tlc::makeCpuDevice();
  tlc::Executor ex(*artifact, *device);
  std::vector<int32_t> ids = {0, 9, 1};
  ex.setInput(0, 1, ids.data());
  try {
    ex.run(0);
    FAIL() << "an id beyond the table was not reported";
  } catch (const tlc::DeviceError &e) {
    EXPECT_NE(std::string(e.what()).find("model.embed"), std::string::npos) << e.what();
  }
}

// A kernel cache shared by machines with different CPUs (a home directory
// on a cluster) must hold one library per CPU: the key holds the target that
// -march=native resolves to, not the flag. A compiler wrapper that reports
// another CPU stands in for the second machine.
TEST_F(CodegenTest, CpuKernelCacheKeyHoldsTheResolvedTarget) {
  std::string own = tlc::resolvedCpuTarget("c++");
  EXPECT_NE(own.find("-march="), std::string::npos) << own;
  EXPECT_EQ(own.find("-march=native"), std::string::npos) << own;
  EXPECT_EQ(own, tlc::resolvedCpuTarget("c++")) << "the key must be stable";

  std::string dir = ::testing::TempDir() + "tlc-cache-per-cpu-" + std::to_string(getpid());
  std::string wrapper = dir + "-other-cpu.sh";
  {
    std::ofstream w(wrapper);
    w << "#!/bin/sh\ncase \"$*\" in *-###*) c++ \"$@\" 2>&1 | sed 's/-march=[a-z0-9_-]*/-march=othercpu/g' >&2;;"
         " *) exec c++ \"$@\";; esac\n";
  }
  chmod(wrapper.c_str(), 0755);
  EXPECT_NE(tlc::resolvedCpuTarget(wrapper), own);

  OwningOpRef<ModuleOp> m = parseSourceString<ModuleOp>(R"(
    func.func @f(%x: tensor<8xf32>) -> tensor<8xf32> {
      %y = tl.exp %x : tensor<8xf32>
      return %y : tensor<8xf32> })", &context);
  ASSERT_TRUE(m);
  tl::codegen::LoweringStats stats;
  auto artifact = tl::codegen::lowerToArtifact(*m->getOps<func::FuncOp>().begin(), stats);
  ASSERT_TRUE(succeeded(artifact));
  std::string saved = std::getenv("TLC_CACHE_DIR");
  setenv("TLC_CACHE_DIR", dir.c_str(), 1);
  auto libraries = [&] {
    int n = 0;
    for (const auto &e : std::filesystem::directory_iterator(dir)) n += e.path().extension() == ".so";
    return n;
  };
  tlc::makeCpuDevice()->loadKernels(*artifact);
  EXPECT_EQ(libraries(), 1);
  tlc::makeCpuDevice()->loadKernels(*artifact);
  EXPECT_EQ(libraries(), 1) << "the same CPU reuses its library";
  setenv("CXX", wrapper.c_str(), 1);
  tlc::makeCpuDevice()->loadKernels(*artifact);
  unsetenv("CXX");
  setenv("TLC_CACHE_DIR", saved.c_str(), 1);
  EXPECT_EQ(libraries(), 2) << "another CPU gets its own library";
  std::filesystem::remove_all(dir);
  std::filesystem::remove(wrapper);
}

TEST_F(CodegenTest, ArtifactRoundTripAndCorruption) {
  tlc::artifact::Artifact a;
  a.config = {{"dim", 8}};
  a.buffers = {{16, tlc::artifact::BufferKind::Input, 0}, {64, tlc::artifact::BufferKind::Arena, 0}};
  a.arenaBytes = 64;
  a.kernels = {{"k0", 1, 256, 0, false}};
  a.entries.push_back({"train_step", {{"x", tlc::artifact::DType::F32, {4}, 0, nullptr}}, {}, {}, 64, 64});
  a.entries[0].steps.push_back({tlc::artifact::Step::Kernel, "k0", {1, 0}, {}, "loc"});
  a.cpuSource = "cpu";
  a.cudaSource = "cuda";
  a.cubins = {{"sm_90", std::string("\0\x7f binary", 9)}};
  std::string path = ::testing::TempDir() + "a.tlx";
  tlc::artifact::write(path, a);
  tlc::artifact::Artifact b = tlc::artifact::read(path);
  ASSERT_EQ(b.entries.size(), 1u);
  EXPECT_EQ(b.entries[0].steps.size(), 1u);
  EXPECT_EQ(b.cudaSource, "cuda");
  EXPECT_EQ(b.config["dim"], 8);
  ASSERT_EQ(b.cubins.size(), 1u);
  EXPECT_EQ(b.cubins[0].first, "sm_90");
  EXPECT_EQ(b.cubins[0].second, a.cubins[0].second);

  auto errorOf = [&](const std::string &bytes) -> std::string {
    std::ofstream(path, std::ios::binary) << bytes;
    try {
      tlc::artifact::read(path);
    } catch (const tlc::artifact::Error &e) {
      return e.what();
    }
    return "";
  };
  tlc::artifact::write(path, a);
  std::ifstream in(path, std::ios::binary);
  std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The trailer is FNV-1a over everything before it with the format's own
  // basis 1469598103934665603 (not the standard 14695981039346656037):
  // artifacts written earlier carry it, so it must never change.
  uint64_t h = 1469598103934665603ull, stored = 0;
  for (size_t i = 0; i + 8 < good.size(); ++i) h = (h ^ static_cast<unsigned char>(good[i])) * 1099511628211ull;
  std::memcpy(&stored, good.data() + good.size() - 8, 8);
  EXPECT_EQ(stored, h);
  std::string flipped = good;
  flipped[good.size() / 2] ^= 1;
  EXPECT_NE(errorOf(flipped).find("checksum mismatch"), std::string::npos);
  EXPECT_NE(errorOf(good.substr(0, good.size() - 20)).find("checksum"), std::string::npos);
  EXPECT_NE(errorOf("not an artifact at all").find("bad magic"), std::string::npos);
  std::string future = good;
  future[4] = 9;
  EXPECT_NE(errorOf(future).find("artifact version 9, this tlrun reads " + std::to_string(tlc::artifact::kVersion) + ": recompile with tlc compile"),
            std::string::npos);
}

/// Every CUDA kernel of TinyLlama's fused training step compiles with NVRTC
/// for Ampere and Hopper without a warning.
class NvrtcTest : public CodegenTest, public ::testing::WithParamInterface<const char *> {};

TEST_P(NvrtcTest, AllKernelsCompileWithoutWarnings) {
  std::string why;
  if (!tlc::cuda::nvrtcAvailable(&why)) GTEST_SKIP() << why;
  auto artifact = compiledStep(GetParam());
  ASSERT_TRUE(succeeded(artifact)) << diagnostics;
  EXPECT_LT(artifact->arenaBytes, artifact->entries[0].unplannedBytes);
  for (const char *arch : {"sm_80", "sm_90"}) {
    tlc::cuda::Compiled c = tlc::cuda::compileWithNvrtc(artifact->cudaSource, arch);
    EXPECT_TRUE(c.ok) << arch << ":\n" << c.log;
    EXPECT_EQ(c.log.find("warning"), std::string::npos) << arch << ":\n" << c.log;
    EXPECT_GT(c.cubin.size(), 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Presets, NvrtcTest, ::testing::Values("tiny", "1.1b"));

/// bf16 TinyLlama 1.1B: attention and its gradient on the tensor-core
/// kernels (Library/cuda_attention.cuh), compiled for Hopper without a
/// warning or a spill; f32 keeps the scalar kernels.
TEST_F(CodegenTest, Bf16TinyLlamaAttentionRunsOnTensorCores) {
  auto f32 = compiledStep("1.1b");
  ASSERT_TRUE(succeeded(f32)) << diagnostics;
  EXPECT_EQ(f32->cudaSource.find("TlFlashAttention<32"), std::string::npos);
  auto artifact = compiledStep("1.1b", "", /*bf16=*/true);
  ASSERT_TRUE(succeeded(artifact)) << diagnostics;
  const std::string shape = "TlFlashAttention<32, 4, 2048, 2048, 64, true, true>::";  // causal, bthd
  std::vector<std::string> kernels;
  for (const char *entry : {"forward(", "gradKeyValueQuery("}) {
    const size_t at = artifact->cudaSource.find(shape + entry);
    ASSERT_NE(at, std::string::npos) << entry;
    const size_t name = artifact->cudaSource.rfind("__global__ void ", at) + 16;
    kernels.push_back(artifact->cudaSource.substr(name, artifact->cudaSource.find('(', name) - name));
  }
  std::string why;
  if (!tlc::cuda::nvrtcAvailable(&why)) GTEST_SKIP() << why;
  tlc::cuda::Compiled c = tlc::cuda::compileWithNvrtc(artifact->cudaSource, "sm_90", {"--ptxas-options=-v"});
  ASSERT_TRUE(c.ok) << c.log;
  EXPECT_EQ(c.log.find("warning"), std::string::npos) << c.log;
  for (const std::string &k : kernels) {
    const size_t at = c.log.find("entry function '" + k + "'");
    ASSERT_NE(at, std::string::npos) << k;
    const std::string report = c.log.substr(at, c.log.find("Used", at) - at);
    EXPECT_NE(report.find("0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads"), std::string::npos)
        << k << ":\n" << report;
  }
}

/// Every kernel of the bf16 1.1B step compiles for Hopper without a spill,
/// and the elementwise ones take several elements a thread (loads in flight).
TEST_F(CodegenTest, Bf16TinyLlamaKernelsCompileWithoutSpills) {
  auto artifact = compiledStep("1.1b", "", /*bf16=*/true);
  ASSERT_TRUE(succeeded(artifact)) << diagnostics;
  EXPECT_NE(artifact->cudaSource.find("#pragma unroll " + std::to_string(tl::codegen::kElementsPerThread) +
                                      "\n  for (int tl_e = 0;"),
            std::string::npos);
  std::string why;
  if (!tlc::cuda::nvrtcAvailable(&why)) GTEST_SKIP() << why;
  tlc::cuda::Compiled c = tlc::cuda::compileWithNvrtc(artifact->cudaSource, "sm_90", {"--ptxas-options=-v"});
  ASSERT_TRUE(c.ok) << c.log;
  // A stack frame is allowed: sinf/cosf's slow argument reduction (the rope
  // tables) keeps its table there.
  auto usage = tlc::testing::ptxasUsage(c.log);
  for (const auto &[name, u] : usage) EXPECT_EQ(u.spillStores + u.spillLoads, 0) << name;
  EXPECT_EQ(usage.size(), artifact->kernels.size());
}

/// The CUDA prelude (compiler/Codegen/Library/cuda_prelude.cuh) on its own,
/// with a kernel that uses every helper, compiles without a warning.
TEST_F(CodegenTest, CudaPreludeCompilesOnItsOwn) {
  std::string why;
  if (!tlc::cuda::nvrtcAvailable(&why)) GTEST_SKIP() << why;
  // The tensor-core files after it are compiled with kernels that use them
  // in TensorCoreTest.CompilesWithNvrtcForAmpereAndHopperWithoutSpills.
  std::ifstream file(TL_KERNEL_LIBRARY_DIR "/cuda_prelude.cuh");
  ASSERT_TRUE(file) << TL_KERNEL_LIBRARY_DIR;
  std::string prelude((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  std::string source = prelude + R"(
extern "C" __global__ void uses_prelude(uint16_t *h, float *f, int *err) {
  const float v = warpSum(bf2f(h[threadIdx.x])) + warpMax(f[threadIdx.x]);
  atomicAddBf16(&h[0], bfround(v));
  f[threadIdx.x] = v > TL_INF ? 0.0f : v;
  if (v != v) TL_FAIL(3);
}
)";
  for (const char *arch : {"sm_80", "sm_90"}) {
    tlc::cuda::Compiled c = tlc::cuda::compileWithNvrtc(source, arch);
    EXPECT_TRUE(c.ok) << arch << ":\n" << c.log;
    EXPECT_EQ(c.log.find("warning"), std::string::npos) << arch << ":\n" << c.log;
  }
}

}  // namespace
