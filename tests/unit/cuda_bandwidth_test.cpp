// The memory-bound CUDA kernels of the training step (RMSNorm, add +
// RMSNorm and their gradients, cross-entropy and its gradient): a block per
// row, 16-byte accesses where rows are aligned, block reductions. Each op is
// run in f32 and bf16 on the CPU device and the CUDA emulator and held to
// the f64 reference evaluator, twice with fresh random inputs (an output
// the kernel forgot to write keeps the first run's values), at widths that
// take the vector path, several vectors a thread, and the scalar path
// (widths not a multiple of the vector), with odd row counts. Then a small
// TinyLlama step at a run-time micro-batch below the compiled one, and
// NVRTC for sm_80 / sm_90: no spills, 16-byte loads and stores in the PTX.
#include "compiler/Codegen/Lowering.h"
#include "compiler/Evaluator/ReferenceEvaluator.h"
#include "formats/artifact.h"
#include "formats/half.h"
#include "runtime/cuda/nvrtc.h"
#include "runtime/exec/device.h"
#include "runtime/exec/executor.h"
#include "runtime/train/training_state.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Parser/Parser.h"

#include "CompiledModelTest.h"
#include "CudaEmulator.h"
#include "PtxasUsage.h"

#include <dlfcn.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>

using namespace mlir;
using tlc::HostTensor;
namespace art = tlc::artifact;

namespace {

std::string replaceAll(std::string s, const std::string &from, const std::string &to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
  return s;
}

class CudaBandwidthTest : public CompiledModelTest {
protected:
  /// `src` with DT as the activation type, in f32 and in bf16.
  void checkBoth(const std::string &src, int64_t idRange = 5) {
    for (const char *dt : {"f32", "bf16"}) {
      SCOPED_TRACE(dt);
      check(replaceAll(src, "DT", dt), idRange);
    }
  }

  /// Outputs of bf16 storage within 1e-2 relative L2 of the f64 reference
  /// (unit roundoff 2^-9, and bf16 intermediates such as add_rmsnorm's sum);
  /// f32 outputs within 2e-5.
  void check(const std::string &src, int64_t idRange) {
    OwningOpRef<ModuleOp> m = parseSourceString<ModuleOp>(src, &context);
    ASSERT_TRUE(m) << diagnostics;
    OwningOpRef<ModuleOp> ref = parseSourceString<ModuleOp>(std::regex_replace(src, std::regex("bf16|f32"), "f64"), &context);
    ASSERT_TRUE(ref) << diagnostics;
    auto func = *m->getOps<func::FuncOp>().begin();
    tl::codegen::LoweringStats stats;
    auto artifact = tl::codegen::lowerToArtifact(func, stats);
    ASSERT_TRUE(succeeded(artifact)) << diagnostics;
    const art::EntryPoint &entry = artifact->entries[0];
    for (bool cuda : {false, true}) {
      auto device = cuda ? tlc::testing::makeEmulatedCudaDevice() : tlc::makeCpuDevice();
      tlc::Executor ex(*artifact, *device);
      for (int run = 0; run < 2; ++run) {
        std::vector<HostTensor> args = roundedRandomArguments(func, rng, uniform, idRange);
        auto expect = tl::evaluate(*ref->getOps<func::FuncOp>().begin(), args, tl::Precision::F64);
        ASSERT_TRUE(succeeded(expect)) << diagnostics;
        std::vector<std::vector<uint8_t>> bytes;
        for (size_t i = 0; i < entry.inputs.size(); ++i) {
          const HostTensor &h = args[i];
          bytes.emplace_back();
          for (double x : h.data) {
            if (entry.inputs[i].dtype == art::DType::I32) push(bytes.back(), static_cast<int32_t>(x));
            else if (entry.inputs[i].dtype == art::DType::BF16) push(bytes.back(), tlc::floatToBf16(static_cast<float>(x)));
            else push(bytes.back(), static_cast<float>(x));
          }
          ex.setInput(0, i, bytes.back().data());
        }
        ex.run(0);
        for (size_t o = 0; o < entry.outputs.size(); ++o) {
          const HostTensor &want = (*expect)[o];
          const bool narrow = entry.outputs[o].dtype == art::DType::BF16;
          std::vector<double> got(want.numel());
          if (narrow) {
            std::vector<uint16_t> raw(got.size());
            ex.getOutput(0, o, raw.data());
            for (size_t k = 0; k < got.size(); ++k) got[k] = tlc::bf16ToFloat(raw[k]);
          } else {
            std::vector<float> raw(got.size());
            ex.getOutput(0, o, raw.data());
            for (size_t k = 0; k < got.size(); ++k) got[k] = raw[k];
          }
          double diff = 0, norm = 0;
          for (size_t k = 0; k < got.size(); ++k) {
            diff += std::pow(got[k] - want.data[k], 2);
            norm += std::pow(want.data[k], 2);
          }
          ASSERT_FALSE(std::isnan(diff)) << (cuda ? "emulated CUDA" : "CPU") << " output #" << o;
          EXPECT_LE(std::sqrt(diff), (narrow ? 1e-2 : 2e-5) * std::sqrt(norm) + 1e-7)
              << (cuda ? "emulated CUDA" : "CPU") << " run " << run << " output #" << o << "\n" << src;
        }
      }
    }
  }

  template <typename T> static void push(std::vector<uint8_t> &v, T x) {
    const auto *p = reinterpret_cast<const uint8_t *>(&x);
    v.insert(v.end(), p, p + sizeof x);
  }

  std::mt19937 rng{std::random_device{}()};
  std::uniform_real_distribution<double> uniform{-2.0, 2.0};
};

std::string norms(int64_t rows, int64_t d) {
  return replaceAll(replaceAll(R"(func.func @f(%a: tensor<RxDxDT>, %b: tensor<RxDxDT>, %w: tensor<DxDT>, %g: tensor<RxDxDT>)
      -> (tensor<RxDxDT>, tensor<RxDxDT>, tensor<Rxf32>, tensor<RxDxDT>, tensor<DxDT>, tensor<RxDxDT>, tensor<Rxf32>) {
    %s, %y, %r = tl.add_rmsnorm %a, %b, %w eps = 1.0e-5 : tensor<RxDxDT>, tensor<DxDT> -> tensor<Rxf32>
    %dx, %dw = tl.rmsnorm_grad %g, %s, %w, %r : tensor<RxDxDT>, tensor<DxDT>, tensor<Rxf32>
    %y2, %r2 = tl.rmsnorm %a, %w eps = 1.0e-5 : tensor<RxDxDT>, tensor<DxDT> -> tensor<Rxf32>
    return %s, %y, %r, %dx, %dw, %y2, %r2 : tensor<RxDxDT>, tensor<RxDxDT>, tensor<Rxf32>, tensor<RxDxDT>, tensor<DxDT>, tensor<RxDxDT>, tensor<Rxf32> })",
                               "Rx", std::to_string(rows) + "x"),
                    "Dx", std::to_string(d) + "x");
}

// 48: one vector a thread (bf16 8, f32 4 elements); 2400: several vectors a
// thread held in registers, two column blocks for the weight gradient;
// 1030 and 45: not a multiple of either vector, the scalar path; 301 rows
// of 24: several rows per weight-gradient chunk.
TEST_F(CudaBandwidthTest, RmsNormsAndGradientsOnVectorAndScalarRows) {
  checkBoth(norms(5, 48));
  checkBoth(norms(3, 2400));
  checkBoth(norms(7, 1030));
  checkBoth(norms(1, 45));
  checkBoth(norms(301, 24));
}

std::string crossEntropy(int64_t rows, int64_t vocab, const std::string &ignore) {
  std::string src = R"(func.func @f(%l: tensor<RxVxDT>, %t: tensor<Rxi32>, %g: tensor<DT>) -> (tensor<DT>, tensor<Rxf32>, tensor<RxVxDT>) {
    %loss, %lse = tl.cross_entropy %l, %t IGNORE : tensor<RxVxDT>, tensor<Rxi32> -> tensor<DT>, tensor<Rxf32>
    %d = tl.cross_entropy_grad %g, %l, %t, %lse IGNORE : tensor<DT>, tensor<RxVxDT>, tensor<Rxi32>, tensor<Rxf32>
    return %loss, %lse, %d : tensor<DT>, tensor<Rxf32>, tensor<RxVxDT> })";
  return replaceAll(replaceAll(replaceAll(src, "Rx", std::to_string(rows) + "x"), "Vx", std::to_string(vocab) + "x"),
                    "IGNORE", ignore);
}

// 1000: vectors (bf16 125 a row, f32 250); 997: scalar. Targets are drawn
// below 6 so that ignore_index = 3 drops about a sixth of the rows.
TEST_F(CudaBandwidthTest, CrossEntropyRowsInParallelWithAndWithoutIgnoredRows) {
  for (const char *ignore : {"", "ignore_index = 3"}) {
    checkBoth(crossEntropy(9, 1000, ignore), 6);
    checkBoth(crossEntropy(5, 997, ignore), 6);
    checkBoth(crossEntropy(300, 40, ignore), 6);  // more rows than a block's threads
  }
}

// A TinyLlama step compiled for micro-batch 3 and run for 3 and for 1 (the
// row counts are run-time arguments, the grids shrink): the emulated CUDA
// kernels and the CPU kernels agree on the loss and every gradient.
TEST_F(CudaBandwidthTest, StepAtARunTimeMicroBatchMatchesTheCpu) {
  for (bool bf16 : {false, true}) {
    SCOPED_TRACE(bf16 ? "bf16" : "f32");
    art::Artifact a = compileTinyLlama("tiny", "layers=1,dim=48,heads=4,kv_heads=2,ffn=40,vocab=96,seq=8,micro_batch=3", bf16);
    std::vector<std::vector<float>> params = randomParams(a, rng);
    const size_t entry = 0;
    const art::EntryPoint &e = a.entries[entry];
    ASSERT_EQ(e.name, "train_step");
    std::vector<std::vector<int32_t>> inputs;
    for (const auto &in : e.inputs) {
      std::vector<int32_t> v(in.numel());
      for (int32_t &x : v) x = static_cast<int32_t>(rng() % 96);
      inputs.push_back(v);
    }
    for (int64_t batch : {3, 1}) {
      std::vector<std::vector<float>> results;
      for (bool cuda : {false, true}) {
        auto device = cuda ? tlc::testing::makeEmulatedCudaDevice() : tlc::makeCpuDevice();
        tlc::Executor ex(a, *device);
        for (size_t i = 0; i < params.size(); ++i) {
          std::vector<uint16_t> narrow;
          for (float x : params[i]) narrow.push_back(tlc::floatToBf16(x));
          ex.setParam(i, bf16 ? static_cast<const void *>(narrow.data()) : params[i].data());
        }
        for (size_t i = 0; i < inputs.size(); ++i) ex.setInput(entry, i, inputs[i].data(), batch);
        ex.run(entry, batch);
        std::vector<float> out(a.flatElements + 1);
        if (e.outputs[0].dtype == art::DType::BF16) {
          uint16_t loss;
          ex.getOutput(entry, 0, &loss);
          out[0] = tlc::bf16ToFloat(loss);
        } else {
          ex.getOutput(entry, 0, out.data());
        }
        device->download(out.data() + 1, ex.flatGrads(), a.flatElements * sizeof(float));
        results.push_back(out);
      }
      double diff = 0, norm = 0;
      for (size_t k = 0; k < results[0].size(); ++k) {
        diff += std::pow(results[1][k] - results[0][k], 2);
        norm += std::pow(results[0][k], 2);
      }
      ASSERT_GT(norm, 0.0);
      // bf16: the two targets round intermediates at different points of
      // differently ordered sums.
      EXPECT_LE(std::sqrt(diff), (bf16 ? 2e-2 : 1e-5) * std::sqrt(norm)) << "micro-batch " << batch;
    }
  }
}

// AdamW and the gradient norm over ranges of the flat buffers, on the
// emulator and the CPU: an aligned range whose length is not a multiple of
// four (16-byte groups and a scalar tail), and ranges starting off the
// 16-byte grid (a ZeRO shard's), all one at a time. The norm is held to a
// host sum in double of the uploaded gradients, AdamW's state to the CPU
// kernel's.
TEST_F(CudaBandwidthTest, OptimizerKernelsOverAlignedAndUnalignedRanges) {
  std::normal_distribution<double> normal(0.0, 1.0);
  for (bool bf16 : {false, true}) {
    SCOPED_TRACE(bf16 ? "bf16" : "f32");
    art::Artifact a = compileTinyLlama("tiny", "layers=1,dim=24,heads=2,kv_heads=1,ffn=40,vocab=61,seq=4,micro_batch=1", bf16);
    const int64_t n = a.flatElements;
    std::vector<float> params(n), grads(n);
    for (float &x : params) x = static_cast<float>(0.2 * normal(rng));
    for (float &x : grads) x = static_cast<float>(0.01 * normal(rng));
    const std::vector<tlc::Range> ranges = {{0, n - 3}, {5, n - 1}, {3, n - 70}};
    std::vector<std::vector<std::vector<float>>> state;  // per device: master, m, v, params
    for (bool cuda : {false, true}) {
      auto device = cuda ? tlc::testing::makeEmulatedCudaDevice() : tlc::makeCpuDevice();
      tlc::TrainingState e(a, *device);
      const tlc::Range all{0, n};
      e.upload(tlc::FlatBuffer::Params, all, params.data());
      e.upload(tlc::FlatBuffer::Master, all, params.data());
      e.upload(tlc::FlatBuffer::Grads, all, grads.data());
      for (const tlc::Range &r : ranges) {
        double want = 0;
        for (int64_t i = r.begin; i < r.end; ++i) want += static_cast<double>(grads[i]) * grads[i];
        EXPECT_NEAR(e.gradSquaredNorm(r), want, 1e-12 * want) << (cuda ? "emulated CUDA" : "CPU") << " " << r.begin;
      }
      tlc::AdamWHyper h;
      h.lr = 1e-3;
      h.gradScale = 0.5;
      for (const tlc::Range &r : ranges) {
        e.adamw(r, h);
        ++h.step;
      }
      state.emplace_back();
      for (tlc::FlatBuffer b : {tlc::FlatBuffer::Master, tlc::FlatBuffer::M, tlc::FlatBuffer::V, tlc::FlatBuffer::Params}) {
        state.back().emplace_back(n);
        e.download(b, all, state.back().back().data());
      }
    }
    for (size_t b = 0; b < 4; ++b) {
      double diff = 0, norm = 0;
      for (int64_t i = 0; i < n; ++i) {
        diff += std::pow(state[1][b][i] - state[0][b][i], 2);
        norm += std::pow(state[0][b][i], 2);
      }
      EXPECT_LE(std::sqrt(diff), (b == 3 && bf16 ? 1e-3 : 1e-6) * std::sqrt(norm)) << "buffer " << b;
    }
    for (int64_t i = 0; i < n; ++i)  // params are the master weights, rounded when bf16
      ASSERT_EQ(state[1][3][i], bf16 ? tlc::roundToBf16(state[1][0][i]) : state[1][0][i]) << i;
  }
}

/// PTX of `source` for `arch` from NVRTC itself (the runtime's wrapper
/// gives cubins only), or "" when it cannot be loaded.
std::string ptxOf(const std::string &source, const std::string &arch) {
  void *lib = dlopen("libnvrtc.so.13", RTLD_NOW);
  if (!lib) lib = dlopen("libnvrtc.so", RTLD_NOW);
  if (!lib) return "";
  using Create = int (*)(void **, const char *, const char *, int, const char *const *, const char *const *);
  using Compile = int (*)(void *, int, const char *const *);
  using Size = int (*)(void *, size_t *);
  using Get = int (*)(void *, char *);
  auto create = reinterpret_cast<Create>(dlsym(lib, "nvrtcCreateProgram"));
  auto compile = reinterpret_cast<Compile>(dlsym(lib, "nvrtcCompileProgram"));
  auto size = reinterpret_cast<Size>(dlsym(lib, "nvrtcGetPTXSize"));
  auto get = reinterpret_cast<Get>(dlsym(lib, "nvrtcGetPTX"));
  void *prog = nullptr;
  const std::string archOption = "--gpu-architecture=compute_" + arch.substr(3);
  const char *options[] = {archOption.c_str(), "--std=c++17", "-default-device"};
  if (create(&prog, source.c_str(), "kernels.cu", 0, nullptr, nullptr) || compile(prog, 3, options)) return "";
  size_t n = 0;
  size(prog, &n);
  std::string ptx(n, '\0');
  get(prog, ptx.data());
  return ptx;
}

using tlc::testing::ptxasUsage;

// The kernels at TinyLlama 1.1B's widths (2048, vocabulary 32000), bf16 and
// f32: ptxas reports no stack and no spills, and the row kernels move their
// rows with 16-byte loads and stores.
TEST_F(CudaBandwidthTest, CompilesWithNvrtcWithoutSpillsAndWithSixteenByteAccesses) {
  std::string why;
  if (!tlc::cuda::nvrtcAvailable(&why)) GTEST_SKIP() << why;
  // (what, CUDA source): the row kernels at 1.1B's widths, and a model
  // artifact for the optimizer kernels (their text does not depend on shapes).
  std::vector<std::pair<std::string, std::string>> sources;
  for (const char *dt : {"bf16", "f32"}) {
    std::string src = replaceAll(norms(16, 2048) + "\n" + crossEntropy(16, 32000, "").replace(0, 12, "func.func @c"), "DT", dt);
    OwningOpRef<ModuleOp> m = parseSourceString<ModuleOp>(src, &context);
    ASSERT_TRUE(m) << diagnostics << src;
    for (auto func : m->getOps<func::FuncOp>()) {
      tl::codegen::LoweringStats stats;
      auto artifact = tl::codegen::lowerToArtifact(func, stats);
      ASSERT_TRUE(succeeded(artifact)) << diagnostics;
      sources.emplace_back(dt, artifact->cudaSource);
    }
    art::Artifact model = compileTinyLlama("tiny", "layers=1,dim=64,heads=2,kv_heads=1,ffn=64,vocab=64,seq=8,micro_batch=1",
                                           std::string(dt) == "bf16");
    sources.emplace_back(dt, model.cudaSource);
  }
  std::set<std::string> seen;
  for (const auto &[dt, source] : sources) {
    for (const char *arch : {"sm_80", "sm_90"}) {
      tlc::cuda::Compiled c = tlc::cuda::compileWithNvrtc(source, arch, {"--ptxas-options=-v"});
      ASSERT_TRUE(c.ok) << arch << ":\n" << c.log;
      EXPECT_EQ(c.log.find("warning"), std::string::npos) << c.log;
      auto usage = ptxasUsage(c.log);
      const std::string ptx = ptxOf(source, arch);
      for (const auto &[name, u] : usage) {
        if (!std::regex_search(name, std::regex("rmsnorm|cross_entropy|opt_adamw|opt_sumsq"))) continue;
        EXPECT_EQ(u.stack + u.spillStores + u.spillLoads, 0) << arch << " " << name;
        const std::string kernel = std::regex_replace(name, std::regex("^k\\d+_"), "");
        if (seen.insert(dt + arch + kernel).second)
          std::printf("%s %s %s: %d registers, %d bytes stack, %d bytes spilled\n", dt.c_str(), arch, kernel.c_str(),
                      u.registers, u.stack, u.spillStores + u.spillLoads);
        // Every kernel that walks whole rows or ranges moves them 16 bytes at a time.
        if (ptx.empty() || std::regex_search(name, std::regex("_mean$|_sum$|_count$|_final$"))) continue;
        size_t at = ptx.find(".entry " + name + "(");
        ASSERT_NE(at, std::string::npos) << name;
        std::string body = ptx.substr(at, ptx.find("\n}\n", at) - at);
        EXPECT_NE(body.find(".v4.u32"), std::string::npos) << arch << " " << name << ": no 16-byte access";
      }
    }
  }
  EXPECT_EQ(seen.size(), 4u * 11);  // 11 kernels, 2 types, 2 architectures
}

}  // namespace
