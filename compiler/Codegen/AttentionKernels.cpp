//===- AttentionKernels.cpp - attention forward and backward kernels -----===//
//
// FlashAttention-style: online softmax over key tiles staged in shared
// memory on CUDA, the T x T scores never stored; the backward recomputes
// probabilities from the saved log-sum-exp, one kernel for dQ (query rows)
// and one for dK/dV (key rows over their head group), without atomics.
// The CUDA bodies are generated here; the CPU bodies call the tiled C++
// templates of CpuLibrary.cpp with the op's shapes.
//
//===----------------------------------------------------------------------===//
#include "compiler/Codegen/GeneratorSupport.h"

namespace mlir::tl::codegen::detail {
namespace {

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
  /// The CPU library's tiled kernels for this shape (CpuLibrary.cpp).
  std::string cpuTemplate() const {
    return "TlAttention<" + S(b) + ", " + S(h) + ", " + S(kv) + ", " + S(t) + ", " + S(s) + ", " + S(d) +
           ", " + (causal ? "true" : "false") + ">";
  }
};

std::string dotLoop(int64_t d, const std::string &acc, const std::string &a, const std::string &b) {
  return "      for (int64_t d = 0; d < " + S(d) + "; ++d) " + acc + " += " + a + " * " + b + ";\n";
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

/// CUDA prologue of kernels run by blocks of 64 query rows of one (batch,
/// head): the K/V tile pointers, `bh`, `qt`, `hh`, `bb`, the query index
/// (named `i`), `active`, its `row` and the `kvBase` of its KV head.
std::string queryBlock(const AttentionShape &a, int64_t tile, const std::string &i) {
  const int64_t qTiles = (a.t + 63) / 64;
  return "  extern __shared__ float tiles[];\n  float *kt = tiles, *vt = tiles + " + S(tile * a.d) +
         ";\n  const int64_t bh = blockIdx.x / " + S(qTiles) + ", qt = blockIdx.x % " + S(qTiles) +
         ";\n  const int64_t hh = bh % " + S(a.h) + ", bb = bh / " + S(a.h) + ";\n  const int64_t " + i +
         " = qt * 64 + threadIdx.x;\n  const bool active = " + i + " < " + S(a.t) +
         ";\n  const int64_t row = bh * " + S(a.t) + " + (active ? " + i + " : 0);\n"
         "  const int64_t kvBase = (bb * " + S(a.kv) + " + hh / " + S(a.g) + ") * " + S(a.s * a.d) + ";\n";
}

} // namespace

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
  const std::string cpu = "  " + a.cpuTemplate() + "::forward(o, lse, q, k, v, " + F(a.scale) + ");\n";
  // CUDA: a block of 64 query rows of one (batch, head); tiles of keys.
  const int64_t tile = attentionTile(a.d), qTiles = (a.t + 63) / 64;
  std::string cuda =
      queryBlock(a, tile, "i") + "  float qv[" + D + "], acc[" + D + "], m = -TL_INF, l = 0.0f;\n  for (int64_t d = 0; d < " + D +
      "; ++d) { qv[d] = active ? " + q.ld("row * " + D + " + d") + " : 0.0f; acc[d] = 0.0f; }\n" +
      tileLoop(a, tile, kk, v, "i") + update("kt[jj * " + D + " + d]", "vt[jj * " + D + " + d]") +
      "    }\n  }\n  if (!active) return;\n  for (int64_t d = 0; d < " + D + "; ++d) " +
      o.st("row * " + D + " + d", "acc[d] / l") + "\n  " + lse.st("row", "m + logf(l)") + "\n";
  LoweredOp out;
  out.steps.push_back(k.custom(cpu, cuda, a.b * a.h * qTiles, 64, 2 * tile * a.d * 4));
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
  {  // dQ: query rows, looping over their keys.
    Builder k(name + "_dq");
    Tensor dq = k.param("dq", op.getQueryGrad(), true), dout = k.param("dout", op.getGrad(), false),
           q = k.param("q", op.getQuery(), false), kk = k.param("k", op.getKey(), false),
           v = k.param("v", op.getValue(), false), lse = k.param("lse", op.getLse(), false),
           delta = k.scratch("delta", 0, false);
    // CUDA: 64 query rows of one (batch, head) a block; K/V tiles in shared memory.
    const int64_t qTiles = (a.t + 63) / 64;
    std::string cuda =
        queryBlock(a, tile, "qi") + "  float qv[" + D + "], dov[" + D + "], acc[" + D + "];\n  for (int64_t d = 0; d < " + D +
        "; ++d) { qv[d] = active ? " + q.ld("row * " + D + " + d") + " : 0.0f; dov[d] = active ? " +
        dout.ld("row * " + D + " + d") + " : 0.0f; acc[d] = 0.0f; }\n  const float L = active ? " +
        lse.ld("row") + " : 0.0f, dl = active ? delta[row] : 0.0f;\n" + tileLoop(a, tile, kk, v, "qi") +
        "      float sc = 0.0f, dp = 0.0f;\n" + dotLoop(a.d, "sc", "qv[d]", "kt[jj * " + D + " + d]") +
        dotLoop(a.d, "dp", "dov[d]", "vt[jj * " + D + " + d]") + "      const float p = expf(sc * " +
        F(a.scale) + " - L), ds = p * (dp - dl);\n      for (int64_t d = 0; d < " + D +
        "; ++d) acc[d] += " + F(a.scale) + " * ds * kt[jj * " + D + " + d];\n    }\n  }\n"
        "  if (!active) return;\n  for (int64_t d = 0; d < " + D + "; ++d) " +
        dq.st("row * " + D + " + d", "acc[d]") + "\n";
    out.steps.push_back(k.custom("  " + a.cpuTemplate() + "::gradQuery(dq, dout, q, k, v, lse, delta, " +
                                     F(a.scale) + ");\n",
                                 cuda, a.b * a.h * qTiles, 64,
                                 2 * tile * a.d * 4));
  }
  {  // dK, dV: key rows, over the queries of their head group.
    Builder k(name + "_dkdv");
    Tensor dk = k.param("dk", op.getKeyGrad(), true), dv = k.param("dv", op.getValueGrad(), true),
           dout = k.param("dout", op.getGrad(), false), q = k.param("q", op.getQuery(), false),
           kk = k.param("k", op.getKey(), false), v = k.param("v", op.getValue(), false),
           lse = k.param("lse", op.getLse(), false), delta = k.scratch("delta", 0, false);
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
    out.steps.push_back(k.custom("  " + a.cpuTemplate() + "::gradKeyValue(dk, dv, dout, q, k, v, lse, delta, " +
                                     F(a.scale) + ");\n",
                                 cuda, a.b * a.kv * kTiles, 64,
                                 (2 * tile * a.d + 2 * tile) * 4));
  }
  return out;
}

} // namespace mlir::tl::codegen::detail
