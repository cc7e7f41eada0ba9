//===- FusedKernels.cpp - parametrised kernels for fused ops -------------===//
//
// Each generator writes a CPU body (row loops under OpenMP) and a CUDA body
// (a warp per row with shuffle reductions, a thread per column for weight
// gradients, tiled shared-memory attention) from the op's static shapes.
// Accumulation is always f32; bf16 tensors are converted on load and store.
//
//===----------------------------------------------------------------------===//
#include "compiler/Codegen/FusedKernels.h"

#include "compiler/Codegen/GeneratorSupport.h"

#include "llvm/ADT/TypeSwitch.h"

#include <fmt/format.h>

namespace mlir::tl::codegen {
namespace {

using namespace detail;
using fmt::arg;

//===----------------------------------------------------------------------===//
// RMSNorm, add + RMSNorm, LayerNorm and their backward ops.
//===----------------------------------------------------------------------===//

LoweredOp rmsnorm(const std::string &name, Value sumOut, Value y, Value rstd,
                  Value a, Value b, Value w, double eps) {
  int64_t d = shapeOf(y).back(), r = numel(y) / d;
  Builder k(name);
  Tensor ts = sumOut ? k.param("sum", sumOut, true) : Tensor{};
  Tensor ty = k.param("y", y, true), tr = k.param("rstd", rstd, true);
  Tensor ta = k.param("a", a, false), tb = b ? k.param("b", b, false) : Tensor{};
  Tensor tw = k.param("w", w, false);
  std::string v = "      const float v = " + ta.ld("base + j") + (b ? " + " + tb.ld("base + j") : "") + ";\n";
  LoweredOp out;
  std::string storeSum = sumOut ? "      " + ts.st("base + j", "v") + "\n" : "";
  out.steps.push_back(k.rows(r, [&](bool cuda) {
    return fmt::format(R"(    const int64_t base = row * {d};
    float ss = 0.0f;
{squares}{sum}    const float s = 1.0f / sqrtf(ss / {d}.0f + {eps});
{storeRstd}{scale})", arg("d", d), arg("squares", rowLoop(cuda, d, v + storeSum + "      ss += v * v;\n", "+ : ss")),
                       arg("sum", sum(cuda, "ss")), arg("eps", F(eps)), arg("storeRstd", once(cuda, tr.st("row", "s"))),
                       arg("scale", rowLoop(cuda, d, v + "      " + ty.st("base + j", "v * s * " + tw.ld("j")) + "\n")));
  }));
  return out;
}

LoweredOp rmsnormGrad(RmsNormGradOp op, const std::string &name) {
  int64_t d = shapeOf(op.getInput()).back(), r = numel(op.getInput()) / d;
  LoweredOp out;
  Builder k(name + "_dx");
  Tensor dx = k.param("dx", op.getInputGrad(), true), g = k.param("g", op.getGrad(), false),
         x = k.param("x", op.getInput(), false), w = k.param("w", op.getWeight(), false),
         rs = k.param("rstd", op.getRstd(), false);
  out.steps.push_back(k.rows(r, [&](bool cuda) {
    return fmt::format(R"(    const int64_t base = row * {d};
    const float s = {rstd};
    float dot = 0.0f;
{dots}{sum}    dot /= {d}.0f;
{storeDx})", arg("d", d), arg("rstd", rs.ld("row")),
                       arg("dots", rowLoop(cuda, d, "      dot += " + g.ld("base + j") + " * " + w.ld("j") + " * " +
                                                        x.ld("base + j") + ";\n", "+ : dot")),
                       arg("sum", sum(cuda, "dot")),
                       arg("storeDx", rowLoop(cuda, d, "      " + dx.st("base + j", "s * (" + g.ld("base + j") + " * " +
                                                                          w.ld("j") + " - " + x.ld("base + j") +
                                                                          " * s * s * dot)") + "\n")));
  }));
  Builder c(name + "_dw");
  Tensor dw = c.param("dw", op.getWeightGrad(), true), g2 = c.param("g", op.getGrad(), false),
         x2 = c.param("x", op.getInput(), false), rs2 = c.param("rstd", op.getRstd(), false);
  // CUDA: a block per 32 columns; its 8 warps walk every 8th row (a warp
  // reads 32 adjacent columns) and the 8 partial sums are added in a fixed
  // order: deterministic, with 8 times the threads of a thread per column
  // (a thread per column left 8 blocks for TinyLlama's 2048 columns).
  const std::string column = "r * " + S(d) + " + i";
  std::string cuda = fmt::format(R"(  extern __shared__ float tiles[];
  const int64_t i = (int64_t)blockIdx.x * 32 + threadIdx.x % 32;
  const int64_t group = threadIdx.x / 32;
  float acc = 0.0f;
  if (i < {d})
    for (int64_t r = group; r < {rows}; r += 8)
      acc += {g} * {x} * {rstd};
  tiles[threadIdx.x] = acc;
  __syncthreads();
  if (group == 0 && i < {d}) {{
    float total = 0.0f;
    for (int k = 0; k < 8; ++k) total += tiles[k * 32 + threadIdx.x];
    {store}
  }}
)", arg("d", d), arg("rows", r), arg("g", g2.ld(column)), arg("x", x2.ld(column)), arg("rstd", rs2.ld("r")),
                                 arg("store", dw.st("i", "total")));
  // CPU: a column sum walked row by row (contiguous, vectorised) in a fixed
  // number of row chunks, summed in order: deterministic for any thread count.
  const int64_t chunks = std::min<int64_t>(16, r);
  const std::string at = "r * " + S(d) + " + j";
  std::string cpu = fmt::format(R"(  float *part = (float *)malloc(sizeof(float) * {partSize});
{parallel}  for (int64_t c = 0; c < {chunks}; ++c) {{
    float *p = part + c * {d};
    for (int64_t j = 0; j < {d}; ++j) p[j] = 0.0f;
    for (int64_t r = c * {rows} / {chunks}; r < (c + 1) * {rows} / {chunks}; ++r) {{
      const float s = {rstd};
      for (int64_t j = 0; j < {d}; ++j) p[j] += {g} * {x} * s;
    }}
  }}
  for (int64_t j = 0; j < {d}; ++j) {{
    float acc = 0.0f;
    for (int64_t c = 0; c < {chunks}; ++c) acc += part[c * {d} + j];
    {store}
  }}
  free(part);
)", arg("partSize", chunks * d), arg("parallel", cpuParallelFor(r * d)), arg("chunks", chunks), arg("d", d),
      arg("rows", r), arg("rstd", rs2.ld("r")), arg("g", g2.ld(at)), arg("x", x2.ld(at)), arg("store", dw.st("j", "acc")));
  out.steps.push_back(c.custom(cpu, cuda, (d + 31) / 32, 256, 256 * sizeof(float)));
  return out;
}

LoweredOp layernorm(LayerNormOp op, const std::string &name) {
  int64_t d = shapeOf(op.getInput()).back(), r = numel(op.getInput()) / d;
  Builder k(name);
  Tensor y = k.param("y", op.getResult(), true), mean = k.param("mean", op.getMean(), true),
         rs = k.param("rstd", op.getRstd(), true), x = k.param("x", op.getInput(), false),
         w = k.param("w", op.getWeight(), false), b = k.param("b", op.getBias(), false);
  LoweredOp out;
  out.steps.push_back(k.rows(r, [&](bool cuda) {
    return "    const int64_t base = row * " + S(d) + ";\n    float m = 0.0f, var = 0.0f;\n" +
           rowLoop(cuda, d, "      m += " + x.ld("base + j") + ";\n") + sum(cuda, "m") +
           "    m /= " + S(d) + ".0f;\n" +
           rowLoop(cuda, d, "      const float c = " + x.ld("base + j") + " - m;\n      var += c * c;\n") +
           sum(cuda, "var") + "    const float s = 1.0f / sqrtf(var / " + S(d) + ".0f + " +
           F(op.getEps().convertToDouble()) + ");\n" + once(cuda, mean.st("row", "m")) +
           once(cuda, rs.st("row", "s")) +
           rowLoop(cuda, d, "      " + y.st("base + j", "(" + x.ld("base + j") + " - m) * s * " +
                                                  w.ld("j") + " + " + b.ld("j")) + "\n");
  }));
  return out;
}

LoweredOp layernormGrad(LayerNormGradOp op, const std::string &name) {
  int64_t d = shapeOf(op.getInput()).back(), r = numel(op.getInput()) / d;
  LoweredOp out;
  Builder k(name + "_dx");
  Tensor dx = k.param("dx", op.getInputGrad(), true), g = k.param("g", op.getGrad(), false),
         x = k.param("x", op.getInput(), false), w = k.param("w", op.getWeight(), false),
         mean = k.param("mean", op.getMean(), false), rs = k.param("rstd", op.getRstd(), false);
  std::string xhat = "(" + x.ld("base + j") + " - m) * s";
  out.steps.push_back(k.rows(r, [&](bool cuda) {
    return "    const int64_t base = row * " + S(d) + ";\n    const float m = " + mean.ld("row") +
           ", s = " + rs.ld("row") + ";\n    float mgw = 0.0f, mgwx = 0.0f;\n" +
           rowLoop(cuda, d, "      const float gw = " + g.ld("base + j") + " * " + w.ld("j") +
                                ";\n      mgw += gw;\n      mgwx += gw * " + xhat + ";\n") +
           sum(cuda, "mgw") + sum(cuda, "mgwx") + "    mgw /= " + S(d) + ".0f;\n    mgwx /= " +
           S(d) + ".0f;\n" +
           rowLoop(cuda, d, "      " + dx.st("base + j", "s * (" + g.ld("base + j") + " * " + w.ld("j") +
                                                    " - mgw - " + xhat + " * mgwx)") + "\n");
  }));
  Builder c(name + "_dwdb");
  Tensor dw = c.param("dw", op.getWeightGrad(), true), db = c.param("db", op.getBiasGrad(), true),
         g2 = c.param("g", op.getGrad(), false), x2 = c.param("x", op.getInput(), false),
         m2 = c.param("mean", op.getMean(), false), r2 = c.param("rstd", op.getRstd(), false);
  std::string at = "r * " + S(d) + " + i";
  out.steps.push_back(c.elementwise(
      d, "    float aw = 0.0f, ab = 0.0f;\n    for (int64_t r = 0; r < " + S(r) + "; ++r) {\n" +
             "      const float gv = " + g2.ld(at) + ";\n      aw += gv * (" + x2.ld(at) + " - " +
             m2.ld("r") + ") * " + r2.ld("r") + ";\n      ab += gv;\n    }\n    " + dw.st("i", "aw") +
             "\n    " + db.st("i", "ab") + "\n"));
  return out;
}

//===----------------------------------------------------------------------===//
// Rotary embedding: elementwise, forward and transpose.
//===----------------------------------------------------------------------===//

LoweredOp rope(Value y, Value x, Value cos, Value sin, int64_t offset, bool transpose,
               const std::string &name) {
  ArrayRef<int64_t> s = shapeOf(x);
  int64_t d = s.back(), t = s[s.size() - 2], h = d / 2;
  Builder k(name);
  Tensor ty = k.param("y", y, true), tx = k.param("x", x, false), tc = k.param("cos", cos, false),
         tsn = k.param("sin", sin, false);
  std::string lo = transpose ? ty.st("i", tx.ld("i") + " * " + tc.ld("c + j") + " + " +
                                              tx.ld("i + " + S(h)) + " * " + tsn.ld("c + j + " + S(h)))
                             : ty.st("i", tx.ld("i") + " * " + tc.ld("c + j") + " - " +
                                              tx.ld("i + " + S(h)) + " * " + tsn.ld("c + j"));
  std::string hi = transpose ? ty.st("i", tx.ld("i") + " * " + tc.ld("c + j") + " - " +
                                              tx.ld("i - " + S(h)) + " * " + tsn.ld("c + j - " + S(h)))
                             : ty.st("i", tx.ld("i") + " * " + tc.ld("c + j") + " + " +
                                              tx.ld("i - " + S(h)) + " * " + tsn.ld("c + j"));
  LoweredOp out;
  LoweredStep step = k.elementwise(numel(x), fmt::format(R"(    const int64_t j = i % {d};
    const int64_t c = ({offset} + (i / {d}) % {t}) * {d};
    if (j < {h}) {lo}
    else {hi}
)", arg("d", d), arg("offset", offset), arg("t", t), arg("h", h), arg("lo", lo), arg("hi", hi)));
  // CPU: a row at a time, each half in its own branch-free loop.
  step.kernel.cpuLoop = fmt::format(R"({parallel}  for (int64_t row = 0; row < {rows}; ++row) {{
    const int64_t c = ({offset} + row % {t}) * {d};
    for (int64_t j = 0; j < {h}; ++j) {{
      const int64_t i = row * {d} + j;
      {lo}
    }}
    for (int64_t j = {h}; j < {d}; ++j) {{
      const int64_t i = row * {d} + j;
      {hi}
    }}
  }}
)", arg("parallel", cpuParallelFor(numel(x))), arg("rows", numel(x) / d), arg("offset", offset), arg("t", t),
                                    arg("d", d), arg("h", h), arg("lo", lo), arg("hi", hi));
  out.steps.push_back(step);
  return out;
}

//===----------------------------------------------------------------------===//
// Cross-entropy: per-row log-sum-exp and loss terms, then their mean.
//===----------------------------------------------------------------------===//

LoweredOp crossEntropy(CrossEntropyOp op, const std::string &name, int errorCode) {
  int64_t n = shapeOf(op.getLogits())[0], vocab = shapeOf(op.getLogits())[1];
  std::optional<int64_t> ignore;
  if (auto attr = op.getIgnoreIndex()) ignore = static_cast<int64_t>(*attr);
  LoweredOp out;
  out.scratchBytes = {n * 4, n * 4};  // per-row loss, counted flag
  {
    Builder k(name + "_rows");
    k.k.checksErrors = true;
    Tensor lse = k.param("lse", op.getLse(), true), logits = k.param("logits", op.getLogits(), false);
    k.ids("targets", op.getTargets());
    Tensor rowLoss = k.scratch("rowloss", 0, true), counted = k.scratch("counted", 1, true);
    std::string V = S(vocab);
    out.steps.push_back(k.rows(n, [&](bool cuda) {
      std::string ignored = ignore ? "t == " + S(*ignore) : "false";
      return "    const int64_t base = row * " + V + ";\n    float m = -TL_INF, z = 0.0f;\n" +
             (cuda ? rowLoop(cuda, vocab, "      m = fmaxf(m, " + logits.ld("base + j") + ");\n") +
                         "    m = warpMax(m);\n"
                   : rowLoop(cuda, vocab, "      const float x = " + logits.ld("base + j") + ";\n      m = x > m ? x : m;\n",
                             "max : m")) +
             rowLoop(cuda, vocab, "      z += expf(" + logits.ld("base + j") + " - m);\n", "+ : z") + sum(cuda, "z") +
             fmt::format(R"(    const float l = m + logf(z);
    const int64_t t = targets[row];
{laneZero}    {storeLse}
    if ({ignored}) {{ rowloss[row] = 0.0f; counted[row] = 0.0f; }}
    else if (t < 0 || t >= {vocab}) {{ TL_FAIL({errorCode}); rowloss[row] = 0.0f; counted[row] = 0.0f; }}
    else {{ rowloss[row] = l - {logit}; counted[row] = 1.0f; }}
)", arg("laneZero", cuda ? "    if (lane != 0) return;\n" : ""), arg("storeLse", lse.st("row", "l")),
                         arg("ignored", ignored), arg("vocab", vocab), arg("errorCode", errorCode),
                         arg("logit", logits.ld("base + t")));
    }));
  }
  {
    Builder k(name + "_mean");
    Tensor loss = k.param("loss", op.getLoss(), true);
    Tensor rowLoss = k.scratch("rowloss", 0, false), counted = k.scratch("counted", 1, false);
    std::string body = "  double s = 0.0, c = 0.0;\n  for (int64_t r = 0; r < " + S(n) +
                       "; ++r) { s += rowloss[r]; c += counted[r]; }\n  " +
                       loss.st("0", "(float)(s / c)") + "\n";
    out.steps.push_back(k.custom(body, body, 1, 1));
  }
  return out;
}

LoweredOp crossEntropyGrad(CrossEntropyGradOp op, const std::string &name) {
  int64_t n = shapeOf(op.getLogits())[0], vocab = shapeOf(op.getLogits())[1];
  std::optional<int64_t> ignore;
  if (auto attr = op.getIgnoreIndex()) ignore = static_cast<int64_t>(*attr);
  LoweredOp out;
  std::string count = S(n) + ".0f";
  if (ignore) {
    out.scratchBytes.push_back(4);
    Builder c(name + "_count");
    c.ids("targets", op.getTargets());
    Tensor cnt = c.scratch("count", 0, true);
    std::string body = "  float c = 0.0f;\n  for (int64_t r = 0; r < " + S(n) + "; ++r) c += targets[r] != " +
                       S(*ignore) + ";\n  count[0] = c;\n";
    out.steps.push_back(c.custom(body, body, 1, 1));
    count = "count[0]";
  }
  Builder k(name);
  Tensor d = k.param("dlogits", op.getResult(), true), g = k.param("g", op.getGrad(), false),
         logits = k.param("logits", op.getLogits(), false);
  k.ids("targets", op.getTargets());
  Tensor lse = k.param("lse", op.getLse(), false);
  if (ignore) k.scratch("count", 0, false);
  std::string V = S(vocab);
  LoweredStep step = k.elementwise(
      n * vocab, "    const int64_t row = i / " + V + ", col = i % " + V +
                     ";\n    const int64_t t = targets[row];\n    if (" +
                     (ignore ? "t == " + S(*ignore) : std::string("false")) + ") { " + d.st("i", "0.0f") +
                     " }\n    else " +
                     d.st("i", g.ld("0") + " / " + count + " * (expf(" + logits.ld("i") + " - " +
                                   lse.ld("row") + ") - (col == t ? 1.0f : 0.0f))") + "\n");
  // CPU: per row, the target, scale and log-sum-exp once, then a
  // vectorised pass over the vocabulary.
  step.kernel.cpuLoop = fmt::format(R"({parallel}  for (int64_t row = 0; row < {rows}; ++row) {{
    const int64_t t = targets[row], base = row * {vocab};
    const float scale = {ignored}{g} / {count}, l = {lse};
    for (int64_t col = 0; col < {vocab}; ++col) {store}
  }}
)", arg("parallel", cpuParallelFor(n * vocab)), arg("rows", n), arg("vocab", vocab),
      arg("ignored", ignore ? "t == " + S(*ignore) + " ? 0.0f : " : std::string()), arg("g", g.ld("0")),
      arg("count", count), arg("lse", lse.ld("row")),
      arg("store", d.st("base + col", "scale * (expf(" + logits.ld("base + col") + " - l) - (col == t ? 1.0f : 0.0f))")));
  out.steps.push_back(step);
  return out;
}

//===----------------------------------------------------------------------===//
// Embedding rows: gather and its transpose.
//===----------------------------------------------------------------------===//

LoweredOp gather(GatherOp op, const std::string &name, int errorCode) {
  int64_t rows = shapeOf(op.getTable())[0], width = shapeOf(op.getTable())[1];
  Builder k(name);
  k.k.checksErrors = true;
  k.param("out", op.getResult(), true);
  k.param("table", op.getTable(), false);
  k.ids("ids", op.getIds());
  LoweredOp out;
  out.steps.push_back(k.elementwise(numel(op.getResult()), fmt::format(R"(    const int64_t r = ids[i / {width}];
    if (r < 0 || r >= {rows}) {{ TL_FAIL({errorCode}); out[i] = 0; }}
    else out[i] = table[r * {width} + i % {width}];
)", arg("width", width), arg("rows", rows), arg("errorCode", errorCode))));
  return out;
}

LoweredOp scatterAdd(ScatterAddOp op, const std::string &name, int errorCode) {
  int64_t rows = shapeOf(op.getResult())[0], width = shapeOf(op.getResult())[1];
  int64_t n = numel(op.getIds());
  LoweredOp out;
  LoweredStep zero;
  zero.zero = true;
  zero.operands.push_back({op.getResult()});
  out.steps.push_back(zero);
  Builder k(name);
  k.k.checksErrors = true;
  Tensor o = k.param("out", op.getResult(), true), u = k.param("upd", op.getUpdates(), false);
  k.ids("ids", op.getIds());
  std::string W = S(width);
  // CPU: columns in parallel, rows in order: deterministic, no atomics.
  std::string cpu = fmt::format(R"(#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < {width}; ++c)
    for (int64_t n = 0; n < {n}; ++n) {{
      const int64_t r = ids[n];
      if (r < 0 || r >= {rows}) {{ TL_FAIL({errorCode}); continue; }}
      {store}
    }}
)", arg("width", width), arg("n", n), arg("rows", rows), arg("errorCode", errorCode),
      arg("store", o.st("r * " + W + " + c", o.ld("r * " + W + " + c") + " + " + u.ld("n * " + W + " + c"))));
  std::string cuda = fmt::format(R"(  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= {count}) return;
  const int64_t r = ids[i / {width}];
  if (r < 0 || r >= {rows}) {{ TL_FAIL({errorCode}); return; }}
  {atomicAdd}(&out[r * {width} + i % {width}], {update});
)", arg("count", n * width), arg("width", width), arg("rows", rows), arg("errorCode", errorCode),
      arg("atomicAdd", o.bf16 ? "atomicAddBf16" : "atomicAdd"), arg("update", u.ld("i")));
  out.steps.push_back(k.custom(cpu, cuda, (n * width + 255) / 256, 256));
  return out;
}

} // namespace

bool hasKernelGenerator(Operation *op) {
  return isa<RmsNormOp, AddRmsNormOp, RmsNormGradOp, LayerNormOp, LayerNormGradOp, RopeOp,
             RopeGradOp, AttentionOp, AttentionGradOp, CrossEntropyOp, CrossEntropyGradOp,
             GatherOp, ScatterAddOp>(op);
}

FailureOr<LoweredOp> generateKernels(Operation *op, const std::string &name, int errorCode) {
  SmallVector<Value> values(op->getOperands());
  values.append(op->result_begin(), op->result_end());
  for (Value v : values) {
    Type t = cast<RankedTensorType>(v.getType()).getElementType();
    if (failed(storageType(t)))
      return op->emitError() << "code generation: unsupported element type " << t
                             << " (kernels store f32, bf16, i32 and i1)";
  }
  return llvm::TypeSwitch<Operation *, FailureOr<LoweredOp>>(op)
      .Case([&](RmsNormOp n) {
        return rmsnorm(name, Value(), n.getResult(), n.getRstd(), n.getInput(), Value(),
                       n.getWeight(), n.getEps().convertToDouble());
      })
      .Case([&](AddRmsNormOp n) {
        return rmsnorm(name, n.getSum(), n.getResult(), n.getRstd(), n.getLhs(), n.getRhs(),
                       n.getWeight(), n.getEps().convertToDouble());
      })
      .Case([&](RmsNormGradOp n) { return rmsnormGrad(n, name); })
      .Case([&](LayerNormOp n) { return layernorm(n, name); })
      .Case([&](LayerNormGradOp n) { return layernormGrad(n, name); })
      .Case([&](RopeOp r) {
        return rope(r.getResult(), r.getInput(), r.getCos(), r.getSin(), r.getOffset(), false, name);
      })
      .Case([&](RopeGradOp r) {
        return rope(r.getResult(), r.getGrad(), r.getCos(), r.getSin(), r.getOffset(), true, name);
      })
      .Case([&](AttentionOp a) { return attention(a, name); })
      .Case([&](AttentionGradOp a) { return attentionGrad(a, name); })
      .Case([&](CrossEntropyOp c) { return crossEntropy(c, name, errorCode); })
      .Case([&](CrossEntropyGradOp c) { return crossEntropyGrad(c, name); })
      .Case([&](GatherOp g) { return gather(g, name, errorCode); })
      .Case([&](ScatterAddOp s) { return scatterAdd(s, name, errorCode); })
      .Default([&](Operation *) -> FailureOr<LoweredOp> {
        return op->emitError("code generation: no kernel generator for this op");
      });
}

} // namespace mlir::tl::codegen