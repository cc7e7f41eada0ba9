//===- FusedKernels.cpp - parametrised kernels for fused ops -------------===//
//
// Each generator writes a CPU body (row loops under OpenMP) and a CUDA body
// (a warp per row with shuffle reductions, a thread per column for weight
// gradients, tiled shared-memory attention) from the op's static shapes.
// Accumulation is always f32; bf16 tensors are converted on load and store.
//
//===----------------------------------------------------------------------===//
#include "compiler/Codegen/FusedKernels.h"

#include "compiler/Codegen/ExprGen.h"
#include "dialects/tl/IR/TlOps.h"

#include "llvm/ADT/TypeSwitch.h"

namespace mlir::tl::codegen {
namespace {

std::string S(int64_t v) { return std::to_string(v); }
std::string F(double v) { return floatLiteral(v); }

ArrayRef<int64_t> shapeOf(Value v) { return cast<RankedTensorType>(v.getType()).getShape(); }
int64_t numel(Value v) { return cast<RankedTensorType>(v.getType()).getNumElements(); }
bool isBf16(Value v) { return cast<RankedTensorType>(v.getType()).getElementType().isBF16(); }

/// Loads and stores of one tensor: bf16 converts, f32 reads directly.
struct Tensor {
  std::string name;
  bool bf16;
  std::string ld(const std::string &k) const {
    return bf16 ? "bf2f(" + name + "[" + k + "])" : name + "[" + k + "]";
  }
  std::string st(const std::string &k, const std::string &v) const {
    return name + "[" + k + "] = " + (bf16 ? "f2bf(" + v + ")" : v) + ";";
  }
};

struct Builder {
  KernelSpec k;
  std::vector<Operand> operands;

  explicit Builder(const std::string &name) { k.name = name; }
  Tensor param(const std::string &name, Value v, bool out) {
    k.params.push_back({name, *storageType(cast<RankedTensorType>(v.getType()).getElementType()),
                        !out});
    operands.push_back({v});
    return {name, isBf16(v)};
  }
  Tensor scratch(const std::string &name, int index, bool out) {
    k.params.push_back({name, "float", !out});
    operands.push_back({Value(), index});
    return {name, false};
  }
  void ids(const std::string &name, Value v) {
    k.params.push_back({name, "int32_t", true});
    operands.push_back({v});
  }
  /// One work item per `n`, the same body on both targets.
  LoweredStep elementwise(int64_t n, const std::string &body) {
    k.workItems = n;
    k.body = body;
    k.finalizeLaunch();
    return {false, k, operands};
  }
  /// A row kernel: CPU loops rows; CUDA runs a warp per row, eight a block.
  /// `rowBody(cuda)` sees `row`, and on CUDA `lane`.
  template <typename F> LoweredStep rows(int64_t count, F rowBody) {
    k.cpuBody = "#pragma omp parallel for schedule(static)\n  for (int64_t row = 0; row < " +
                S(count) + "; ++row) {\n" + rowBody(false) + "  }\n";
    k.cudaBody = "  const int64_t row = (int64_t)blockIdx.x * 8 + threadIdx.x / 32;\n"
                 "  const int lane = threadIdx.x % 32;\n  if (row >= " + S(count) +
                 ") return;\n" + rowBody(true);
    k.block = 256;
    k.grid = (count + 7) / 8;
    return {false, k, operands};
  }
  LoweredStep custom(const std::string &cpu, const std::string &cuda, int64_t grid, int64_t block,
                     int64_t shared = 0) {
    k.cpuBody = cpu;
    k.cudaBody = cuda;
    k.grid = grid;
    k.block = block;
    k.sharedBytes = shared;
    return {false, k, operands};
  }
};

/// `for (j over the row)`: the lane-strided loop on CUDA, a plain loop on CPU.
std::string rowLoop(bool cuda, int64_t d, const std::string &body) {
  return std::string(cuda ? "    for (int64_t j = lane; j < " : "    for (int64_t j = 0; j < ") + S(d) +
         (cuda ? "; j += 32) {\n" : "; ++j) {\n") + body + "    }\n";
}
std::string sum(bool cuda, const std::string &var) {
  return cuda ? "    " + var + " = warpSum(" + var + ");\n" : "";
}
std::string once(bool cuda, const std::string &stmt) {
  return cuda ? "    if (lane == 0) " + stmt + "\n" : "    " + stmt + "\n";
}

//===----------------------------------------------------------------------===//
// RMSNorm, add + RMSNorm, LayerNorm and their backward ops.
//===----------------------------------------------------------------------===//

LoweredOp rmsnorm(Operation *op, const std::string &name, Value sumOut, Value y, Value rstd,
                  Value a, Value b, Value w, double eps) {
  int64_t d = shapeOf(y).back(), r = numel(y) / d;
  Builder k(name);
  Tensor ts = sumOut ? k.param("sum", sumOut, true) : Tensor{};
  Tensor ty = k.param("y", y, true), tr = k.param("rstd", rstd, true);
  Tensor ta = k.param("a", a, false), tb = b ? k.param("b", b, false) : Tensor{};
  Tensor tw = k.param("w", w, false);
  std::string v = "      const float v = " + ta.ld("base + j") + (b ? " + " + tb.ld("base + j") : "") + ";\n";
  LoweredOp out;
  out.steps.push_back(k.rows(r, [&](bool cuda) {
    return "    const int64_t base = row * " + S(d) + ";\n    float ss = 0.0f;\n" +
           rowLoop(cuda, d, v + (sumOut ? "      " + ts.st("base + j", "v") + "\n" : "") +
                                "      ss += v * v;\n") +
           sum(cuda, "ss") + "    const float s = 1.0f / sqrtf(ss / " + S(d) + ".0f + " + F(eps) +
           ");\n" + once(cuda, tr.st("row", "s")) +
           rowLoop(cuda, d, v + "      " + ty.st("base + j", "v * s * " + tw.ld("j")) + "\n");
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
    return "    const int64_t base = row * " + S(d) + ";\n    const float s = " + rs.ld("row") +
           ";\n    float dot = 0.0f;\n" +
           rowLoop(cuda, d, "      dot += " + g.ld("base + j") + " * " + w.ld("j") + " * " +
                                x.ld("base + j") + ";\n") +
           sum(cuda, "dot") + "    dot /= " + S(d) + ".0f;\n" +
           rowLoop(cuda, d, "      " + dx.st("base + j", "s * (" + g.ld("base + j") + " * " + w.ld("j") +
                                                    " - " + x.ld("base + j") + " * s * s * dot)") + "\n");
  }));
  Builder c(name + "_dw");
  Tensor dw = c.param("dw", op.getWeightGrad(), true), g2 = c.param("g", op.getGrad(), false),
         x2 = c.param("x", op.getInput(), false), rs2 = c.param("rstd", op.getRstd(), false);
  out.steps.push_back(c.elementwise(
      d, "    float acc = 0.0f;\n    for (int64_t r = 0; r < " + S(r) + "; ++r)\n      acc += " +
             g2.ld("r * " + S(d) + " + i") + " * " + x2.ld("r * " + S(d) + " + i") + " * " +
             rs2.ld("r") + ";\n    " + dw.st("i", "acc") + "\n"));
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
  out.steps.push_back(k.elementwise(
      numel(x), "    const int64_t j = i % " + S(d) + ";\n    const int64_t c = (" + S(offset) +
                    " + (i / " + S(d) + ") % " + S(t) + ") * " + S(d) + ";\n    if (j < " + S(h) +
                    ") " + lo + "\n    else " + hi + "\n"));
  return out;
}

//===----------------------------------------------------------------------===//
// Attention: FlashAttention-style forward (online softmax, K/V tiles in
// shared memory on CUDA, scores never stored) and a recomputing backward.
//===----------------------------------------------------------------------===//

struct AttentionShape {
  int64_t b, h, t, d, kv, s, g;
  double scale;
  bool causal;
  AttentionShape(Value q, Value k, double scale, bool causal)
      : b(shapeOf(q)[0]), h(shapeOf(q)[1]), t(shapeOf(q)[2]), d(shapeOf(q)[3]),
        kv(shapeOf(k)[1]), s(shapeOf(k)[2]), g(h / kv), scale(scale), causal(causal) {}
  std::string keys(const std::string &i) const { return causal ? "(" + i + " + 1)" : S(s); }
};

std::string dotLoop(int64_t d, const std::string &acc, const std::string &a, const std::string &b) {
  return "      for (int64_t d = 0; d < " + S(d) + "; ++d) " + acc + " += " + a + " * " + b + ";\n";
}

/// A CPU loop running `body` (which reads `i`) for every i in [0, n).
std::string perItem(int64_t n, const std::string &body) {
  return "#pragma omp parallel for schedule(dynamic, 16)\n  for (int64_t i = 0; i < " + S(n) +
         "; ++i) {\n" + body + "  }\n";
}

/// CUDA: loops over tiles of keys staged in shared memory (`kt`, `vt`) for
/// the block's 64 query rows; the body runs per key `jj` of the tile that
/// query `i` may see. Leaves two braces open.
std::string tileLoop(const AttentionShape &a, int64_t tile, const Tensor &k, const Tensor &v,
                     const std::string &i) {
  const std::string D = S(a.d), T = S(tile);
  std::string lastKey = a.causal ? "(qt * 64 + 64 < " + S(a.s) + " ? qt * 64 + 64 : " + S(a.s) + ")" : S(a.s);
  return "  const int64_t lastKey = " + lastKey + ";\n  for (int64_t j0 = 0; j0 < lastKey; j0 += " + T +
         ") {\n    __syncthreads();\n    for (int64_t e = threadIdx.x; e < " + S(tile * a.d) +
         "; e += blockDim.x) {\n      const int64_t j = j0 + e / " + D + ", d = e % " + D +
         ";\n      kt[e] = j < " + S(a.s) + " ? " + k.ld("kvBase + j * " + D + " + d") +
         " : 0.0f;\n      vt[e] = j < " + S(a.s) + " ? " + v.ld("kvBase + j * " + D + " + d") +
         " : 0.0f;\n    }\n    __syncthreads();\n    if (!active) continue;\n    const int64_t keys = " +
         a.keys(i) + " - j0;\n    for (int64_t jj = 0; jj < (keys < " + T + " ? keys : " + T + "); ++jj) {\n";
}

/// Keys (or queries) per shared-memory tile: two tiles of D floats fit 32 KB.
int64_t attentionTile(int64_t d) { return std::max<int64_t>(8, std::min<int64_t>(64, 4096 / d)); }

LoweredOp attention(AttentionOp op, const std::string &name) {
  AttentionShape a(op.getQuery(), op.getKey(), op.getScale().convertToDouble(), op.getCausal());
  Builder k(name);
  Tensor o = k.param("o", op.getResult(), true), lse = k.param("lse", op.getLse(), true),
         q = k.param("q", op.getQuery(), false), kk = k.param("k", op.getKey(), false),
         v = k.param("v", op.getValue(), false);
  const std::string D = S(a.d);
  // The online-softmax update for one key whose K and V rows `kj`, `vj`.
  auto update = [&](const std::string &kj, const std::string &vj) {
    return "      float sc = 0.0f;\n" + dotLoop(a.d, "sc", "qv[d]", kj) + "      sc *= " + F(a.scale) +
           ";\n      const float mn = fmaxf(m, sc), corr = expf(m - mn), p = expf(sc - mn);\n"
           "      l = l * corr + p;\n      for (int64_t d = 0; d < " + D +
           "; ++d) acc[d] = acc[d] * corr + p * " + vj + ";\n      m = mn;\n";
  };
  std::string cpu = "#pragma omp parallel for schedule(dynamic, 16)\n  for (int64_t row = 0; row < " +
                    S(a.b * a.h * a.t) + "; ++row) {\n    const int64_t i = row % " + S(a.t) +
                    ", hh = (row / " + S(a.t) + ") % " + S(a.h) + ", bb = row / " + S(a.t * a.h) +
                    ";\n    const int64_t kvBase = (bb * " + S(a.kv) + " + hh / " + S(a.g) + ") * " +
                    S(a.s * a.d) + ";\n    float qv[" + D + "], acc[" + D +
                    "], m = -TL_INF, l = 0.0f;\n    for (int64_t d = 0; d < " + D + "; ++d) { qv[d] = " +
                    q.ld("row * " + D + " + d") + "; acc[d] = 0.0f; }\n    for (int64_t j = 0; j < " +
                    a.keys("i") + "; ++j) {\n" +
                    update(kk.ld("kvBase + j * " + D + " + d"), v.ld("kvBase + j * " + D + " + d")) +
                    "    }\n    for (int64_t d = 0; d < " + D + "; ++d) " +
                    o.st("row * " + D + " + d", "acc[d] / l") + "\n    " + lse.st("row", "m + logf(l)") +
                    "\n  }\n";
  // CUDA: a block of 64 query rows of one (batch, head); tiles of keys.
  const int64_t rowsPerBlock = 64, tile = attentionTile(a.d);
  const int64_t qTiles = (a.t + rowsPerBlock - 1) / rowsPerBlock;
  std::string cuda =
      "  extern __shared__ float tiles[];\n  float *kt = tiles, *vt = tiles + " + S(tile * a.d) +
      ";\n  const int64_t bh = blockIdx.x / " + S(qTiles) + ", qt = blockIdx.x % " + S(qTiles) +
      ";\n  const int64_t hh = bh % " + S(a.h) + ", bb = bh / " + S(a.h) +
      ";\n  const int64_t i = qt * 64 + threadIdx.x;\n  const bool active = i < " + S(a.t) +
      ";\n  const int64_t row = bh * " + S(a.t) + " + (active ? i : 0);\n"
      "  const int64_t kvBase = (bb * " + S(a.kv) + " + hh / " + S(a.g) + ") * " + S(a.s * a.d) +
      ";\n  float qv[" + D + "], acc[" + D + "], m = -TL_INF, l = 0.0f;\n  for (int64_t d = 0; d < " + D +
      "; ++d) { qv[d] = active ? " + q.ld("row * " + D + " + d") + " : 0.0f; acc[d] = 0.0f; }\n" +
      tileLoop(a, tile, kk, v, "i") + update("kt[jj * " + D + " + d]", "vt[jj * " + D + " + d]") +
      "    }\n  }\n  if (!active) return;\n  for (int64_t d = 0; d < " + D + "; ++d) " +
      o.st("row * " + D + " + d", "acc[d] / l") + "\n  " + lse.st("row", "m + logf(l)") + "\n";
  LoweredOp out;
  out.steps.push_back(k.custom(cpu, cuda, a.b * a.h * qTiles, rowsPerBlock, 2 * tile * a.d * 4));
  return out;
}

LoweredOp attentionGrad(AttentionGradOp op, const std::string &name) {
  AttentionShape a(op.getQuery(), op.getKey(), op.getScale().convertToDouble(), op.getCausal());
  const std::string D = S(a.d);
  const int64_t tile = attentionTile(a.d);
  LoweredOp out;
  out.scratchBytes.push_back(a.b * a.h * a.t * 4);  // delta = rowsum(dO * O)
  {
    Builder k(name + "_delta");
    Tensor delta = k.scratch("delta", 0, true), dout = k.param("dout", op.getGrad(), false),
           o = k.param("o", op.getOutput(), false);
    out.steps.push_back(k.elementwise(
        a.b * a.h * a.t, "    float acc = 0.0f;\n" + dotLoop(a.d, "acc", dout.ld("i * " + D + " + d"),
                                                             o.ld("i * " + D + " + d")) +
                             "    delta[i] = acc;\n"));
  }
  {  // dQ: a work item per query row, looping over its keys.
    Builder k(name + "_dq");
    Tensor dq = k.param("dq", op.getQueryGrad(), true), dout = k.param("dout", op.getGrad(), false),
           q = k.param("q", op.getQuery(), false), kk = k.param("k", op.getKey(), false),
           v = k.param("v", op.getValue(), false), lse = k.param("lse", op.getLse(), false),
           delta = k.scratch("delta", 0, false);
    const std::string perRow =
        "    const int64_t qi = i % " + S(a.t) + ", hh = (i / " + S(a.t) + ") % " + S(a.h) +
            ", bb = i / " + S(a.t * a.h) + ";\n    const int64_t kvBase = (bb * " + S(a.kv) +
            " + hh / " + S(a.g) + ") * " + S(a.s * a.d) + ";\n    float qv[" + D + "], dov[" + D +
            "], acc[" + D + "];\n    for (int64_t d = 0; d < " + D + "; ++d) { qv[d] = " +
            q.ld("i * " + D + " + d") + "; dov[d] = " + dout.ld("i * " + D + " + d") +
            "; acc[d] = 0.0f; }\n    const float L = " + lse.ld("i") +
            ", dl = delta[i];\n    for (int64_t j = 0; j < " + a.keys("qi") +
            "; ++j) {\n      const int64_t kj = kvBase + j * " + D + ";\n      float sc = 0.0f, dp = 0.0f;\n" +
            dotLoop(a.d, "sc", "qv[d]", kk.ld("kj + d")) + dotLoop(a.d, "dp", "dov[d]", v.ld("kj + d")) +
            "      const float p = expf(sc * " + F(a.scale) + " - L), ds = p * (dp - dl);\n"
            "      for (int64_t d = 0; d < " + D + "; ++d) acc[d] += " + F(a.scale) + " * ds * " +
            kk.ld("kj + d") + ";\n    }\n    for (int64_t d = 0; d < " + D + "; ++d) " +
            dq.st("i * " + D + " + d", "acc[d]") + "\n";
    // CUDA: 64 query rows of one (batch, head) a block; K/V tiles in shared memory.
    const int64_t qTiles = (a.t + 63) / 64;
    std::string cuda =
        "  extern __shared__ float tiles[];\n  float *kt = tiles, *vt = tiles + " + S(tile * a.d) +
        ";\n  const int64_t bh = blockIdx.x / " + S(qTiles) + ", qt = blockIdx.x % " + S(qTiles) +
        ";\n  const int64_t hh = bh % " + S(a.h) + ", bb = bh / " + S(a.h) +
        ";\n  const int64_t qi = qt * 64 + threadIdx.x;\n  const bool active = qi < " + S(a.t) +
        ";\n  const int64_t row = bh * " + S(a.t) + " + (active ? qi : 0);\n"
        "  const int64_t kvBase = (bb * " + S(a.kv) + " + hh / " + S(a.g) + ") * " + S(a.s * a.d) +
        ";\n  float qv[" + D + "], dov[" + D + "], acc[" + D + "];\n  for (int64_t d = 0; d < " + D +
        "; ++d) { qv[d] = active ? " + q.ld("row * " + D + " + d") + " : 0.0f; dov[d] = active ? " +
        dout.ld("row * " + D + " + d") + " : 0.0f; acc[d] = 0.0f; }\n  const float L = active ? " +
        lse.ld("row") + " : 0.0f, dl = active ? delta[row] : 0.0f;\n" + tileLoop(a, tile, kk, v, "qi") +
        "      float sc = 0.0f, dp = 0.0f;\n" + dotLoop(a.d, "sc", "qv[d]", "kt[jj * " + D + " + d]") +
        dotLoop(a.d, "dp", "dov[d]", "vt[jj * " + D + " + d]") + "      const float p = expf(sc * " +
        F(a.scale) + " - L), ds = p * (dp - dl);\n      for (int64_t d = 0; d < " + D +
        "; ++d) acc[d] += " + F(a.scale) + " * ds * kt[jj * " + D + " + d];\n    }\n  }\n"
        "  if (!active) return;\n  for (int64_t d = 0; d < " + D + "; ++d) " +
        dq.st("row * " + D + " + d", "acc[d]") + "\n";
    out.steps.push_back(k.custom(perItem(a.b * a.h * a.t, perRow), cuda, a.b * a.h * qTiles, 64,
                                 2 * tile * a.d * 4));
  }
  {  // dK, dV: a work item per key row, over the queries of its head group.
    Builder k(name + "_dkdv");
    Tensor dk = k.param("dk", op.getKeyGrad(), true), dv = k.param("dv", op.getValueGrad(), true),
           dout = k.param("dout", op.getGrad(), false), q = k.param("q", op.getQuery(), false),
           kk = k.param("k", op.getKey(), false), v = k.param("v", op.getValue(), false),
           lse = k.param("lse", op.getLse(), false), delta = k.scratch("delta", 0, false);
    const std::string perRow =
        "    const int64_t j = i % " + S(a.s) + ", kvh = (i / " + S(a.s) + ") % " + S(a.kv) +
            ", bb = i / " + S(a.s * a.kv) + ";\n    float kv[" + D + "], vv[" + D + "], dka[" + D +
            "], dva[" + D + "];\n    for (int64_t d = 0; d < " + D + "; ++d) { kv[d] = " +
            kk.ld("i * " + D + " + d") + "; vv[d] = " + v.ld("i * " + D + " + d") +
            "; dka[d] = 0.0f; dva[d] = 0.0f; }\n    for (int64_t g = 0; g < " + S(a.g) +
            "; ++g) {\n      const int64_t qBase = (bb * " + S(a.h) + " + kvh * " + S(a.g) + " + g) * " +
            S(a.t) + ";\n      for (int64_t qi = " + (a.causal ? "j" : "0") + "; qi < " + S(a.t) +
            "; ++qi) {\n        const int64_t qo = (qBase + qi) * " + D +
            ";\n        float sc = 0.0f, dp = 0.0f;\n  " + dotLoop(a.d, "sc", q.ld("qo + d"), "kv[d]") +
            "  " + dotLoop(a.d, "dp", dout.ld("qo + d"), "vv[d]") +
            "        const float p = expf(sc * " + F(a.scale) + " - " + lse.ld("qBase + qi") +
            "), ds = p * (dp - delta[qBase + qi]);\n        for (int64_t d = 0; d < " + D +
            "; ++d) {\n          dva[d] += p * " + dout.ld("qo + d") + ";\n          dka[d] += " +
            F(a.scale) + " * ds * " + q.ld("qo + d") + ";\n        }\n      }\n    }\n"
            "    for (int64_t d = 0; d < " + D + "; ++d) { " + dk.st("i * " + D + " + d", "dka[d]") +
            " " + dv.st("i * " + D + " + d", "dva[d]") + " }\n";
    // CUDA: 64 key rows of one (batch, KV head) a block; per query head of
    // its group, tiles of Q, dO, lse and delta in shared memory.
    const int64_t kTiles = (a.s + 63) / 64;
    const std::string T = S(tile);
    std::string cuda =
        "  extern __shared__ float tiles[];\n  float *qs = tiles, *dos = tiles + " + S(tile * a.d) +
        ", *ls = tiles + " + S(2 * tile * a.d) + ", *dls = tiles + " + S(2 * tile * a.d + tile) +
        ";\n  const int64_t bk = blockIdx.x / " + S(kTiles) + ", kt = blockIdx.x % " + S(kTiles) +
        ";\n  const int64_t kvh = bk % " + S(a.kv) + ", bb = bk / " + S(a.kv) +
        ";\n  const int64_t j = kt * 64 + threadIdx.x;\n  const bool active = j < " + S(a.s) +
        ";\n  const int64_t row = bk * " + S(a.s) + " + (active ? j : 0);\n  float kv[" + D + "], vv[" + D +
        "], dka[" + D + "], dva[" + D + "];\n  for (int64_t d = 0; d < " + D + "; ++d) { kv[d] = active ? " +
        kk.ld("row * " + D + " + d") + " : 0.0f; vv[d] = active ? " + v.ld("row * " + D + " + d") +
        " : 0.0f; dka[d] = 0.0f; dva[d] = 0.0f; }\n  for (int64_t g = 0; g < " + S(a.g) +
        "; ++g) {\n    const int64_t qBase = (bb * " + S(a.h) + " + kvh * " + S(a.g) + " + g) * " + S(a.t) +
        ";\n    for (int64_t i0 = " + (a.causal ? "kt * 64" : "0") + "; i0 < " + S(a.t) + "; i0 += " + T +
        ") {\n      __syncthreads();\n      for (int64_t e = threadIdx.x; e < " + S(tile * a.d) +
        "; e += blockDim.x) {\n        const int64_t qi = i0 + e / " + D + ", d = e % " + D +
        ";\n        qs[e] = qi < " + S(a.t) + " ? " + q.ld("(qBase + qi) * " + D + " + d") +
        " : 0.0f;\n        dos[e] = qi < " + S(a.t) + " ? " + dout.ld("(qBase + qi) * " + D + " + d") +
        " : 0.0f;\n      }\n      for (int64_t e = threadIdx.x; e < " + T +
        "; e += blockDim.x) {\n        ls[e] = i0 + e < " + S(a.t) + " ? " + lse.ld("qBase + i0 + e") +
        " : 0.0f;\n        dls[e] = i0 + e < " + S(a.t) + " ? delta[qBase + i0 + e] : 0.0f;\n      }\n"
        "      __syncthreads();\n      if (!active) continue;\n      for (int64_t ii = 0; ii < " + T +
        " && i0 + ii < " + S(a.t) + "; ++ii) {\n" + (a.causal ? "        if (i0 + ii < j) continue;\n" : "") +
        "        float sc = 0.0f, dp = 0.0f;\n  " + dotLoop(a.d, "sc", "qs[ii * " + D + " + d]", "kv[d]") +
        "  " + dotLoop(a.d, "dp", "dos[ii * " + D + " + d]", "vv[d]") + "        const float p = expf(sc * " +
        F(a.scale) + " - ls[ii]), ds = p * (dp - dls[ii]);\n        for (int64_t d = 0; d < " + D +
        "; ++d) {\n          dva[d] += p * dos[ii * " + D + " + d];\n          dka[d] += " + F(a.scale) +
        " * ds * qs[ii * " + D + " + d];\n        }\n      }\n    }\n  }\n  if (!active) return;\n"
        "  for (int64_t d = 0; d < " + D + "; ++d) { " + dk.st("row * " + D + " + d", "dka[d]") + " " +
        dv.st("row * " + D + " + d", "dva[d]") + " }\n";
    out.steps.push_back(k.custom(perItem(a.b * a.kv * a.s, perRow), cuda, a.b * a.kv * kTiles, 64,
                                 (2 * tile * a.d + 2 * tile) * 4));
  }
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
             rowLoop(cuda, vocab, "      m = fmaxf(m, " + logits.ld("base + j") + ");\n") +
             (cuda ? "    m = warpMax(m);\n" : "") +
             rowLoop(cuda, vocab, "      z += expf(" + logits.ld("base + j") + " - m);\n") + sum(cuda, "z") +
             "    const float l = m + logf(z);\n    const int64_t t = targets[row];\n" +
             (cuda ? "    if (lane != 0) return;\n" : "") + "    " + lse.st("row", "l") +
             "\n    if (" + ignored + ") { rowloss[row] = 0.0f; counted[row] = 0.0f; }\n"
             "    else if (t < 0 || t >= " + V + ") { TL_FAIL(" + S(errorCode) +
             "); rowloss[row] = 0.0f; counted[row] = 0.0f; }\n    else { rowloss[row] = l - " +
             logits.ld("base + t") + "; counted[row] = 1.0f; }\n";
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
  out.steps.push_back(k.elementwise(
      n * vocab, "    const int64_t row = i / " + V + ", col = i % " + V +
                     ";\n    const int64_t t = targets[row];\n    if (" +
                     (ignore ? "t == " + S(*ignore) : std::string("false")) + ") { " + d.st("i", "0.0f") +
                     " }\n    else " +
                     d.st("i", g.ld("0") + " / " + count + " * (expf(" + logits.ld("i") + " - " +
                                   lse.ld("row") + ") - (col == t ? 1.0f : 0.0f))") + "\n"));
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
  out.steps.push_back(k.elementwise(
      numel(op.getResult()), "    const int64_t r = ids[i / " + S(width) + "];\n    if (r < 0 || r >= " +
                                 S(rows) + ") { TL_FAIL(" + S(errorCode) +
                                 "); out[i] = 0; }\n    else out[i] = table[r * " + S(width) + " + i % " +
                                 S(width) + "];\n"));
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
  std::string W = S(width), check = "if (r < 0 || r >= " + S(rows) + ") { TL_FAIL(" + S(errorCode) + ");";
  // CPU: columns in parallel, rows in order: deterministic, no atomics.
  std::string cpu = "#pragma omp parallel for schedule(static)\n  for (int64_t c = 0; c < " + W +
                    "; ++c)\n    for (int64_t n = 0; n < " + S(n) +
                    "; ++n) {\n      const int64_t r = ids[n];\n      " + check + " continue; }\n      " +
                    o.st("r * " + W + " + c", o.ld("r * " + W + " + c") + " + " + u.ld("n * " + W + " + c")) +
                    "\n    }\n";
  std::string add = o.bf16 ? "atomicAddBf16(&out[r * " + W + " + i % " + W + "], " + u.ld("i") + ");"
                           : "atomicAdd(&out[r * " + W + " + i % " + W + "], " + u.ld("i") + ");";
  std::string cuda = "  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;\n  if (i >= " +
                     S(n * width) + ") return;\n  const int64_t r = ids[i / " + W + "];\n  " + check +
                     " return; }\n  " + add + "\n";
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
        return rmsnorm(op, name, Value(), n.getResult(), n.getRstd(), n.getInput(), Value(),
                       n.getWeight(), n.getEps().convertToDouble());
      })
      .Case([&](AddRmsNormOp n) {
        return rmsnorm(op, name, n.getSum(), n.getResult(), n.getRstd(), n.getLhs(), n.getRhs(),
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
