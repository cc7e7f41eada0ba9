//===- Attention.cpp - attention forward and backward kernels ------------===//
//
// FlashAttention-style: online softmax over key tiles staged in shared
// memory on CUDA, the T x T scores never stored; the backward recomputes
// probabilities from the saved log-sum-exp, without atomics. The CPU bodies
// call the tiled C++ templates of Library/cpu_library.h with the op's shapes
// (one pass for dQ over query rows, one for dK/dV over key rows). bf16
// attention on CUDA calls the tensor-core templates of
// Library/cuda_attention.cuh (FlashAttention-2; dK, dV and dQ in one pass,
// dQ summed in a fixed order); f32 attention's CUDA bodies (a query or key
// row a thread, dQ and dK/dV apart) are generated here.
//
//===----------------------------------------------------------------------===//
#include "compiler/Codegen/GeneratorSupport.h"

#include <fmt/format.h>

namespace mlir::tl::codegen {
namespace {

using namespace detail;

using fmt::arg;

//===----------------------------------------------------------------------===//
// Attention: FlashAttention-style forward (online softmax, K/V tiles in
// shared memory on CUDA, scores never stored) and a recomputing backward.
//===----------------------------------------------------------------------===//

struct AttentionShape {
  int64_t b, h, t, d, kv, s, g;
  double scale;
  bool causal, bthd;  // bthd: q [B, T, H, D], k, v [B, S, KV, D]
  std::string batch;  // B at run time
  bool batched;
  AttentionShape(Value q, Value k, double scale, bool causal, bool bthd, const KernelContext &ctx)
      : b(shapeOf(q)[0]), h(shapeOf(q)[bthd ? 2 : 1]), t(shapeOf(q)[bthd ? 1 : 2]), d(shapeOf(q)[3]),
        kv(shapeOf(k)[bthd ? 2 : 1]), s(shapeOf(k)[bthd ? 1 : 2]), g(h / kv), scale(scale), causal(causal),
        bthd(bthd), batch(ctx.count(q, b).expr), batched(ctx.batched(q)) {}
  std::string keys(const std::string &i) const { return causal ? "(" + i + " + 1)" : S(s); }
  std::string shapeArgs() const {
    return S(h) + ", " + S(kv) + ", " + S(t) + ", " + S(s) + ", " + S(d) + ", " + (causal ? "true" : "false") +
           (bthd ? ", true" : "");
  }
  /// The scalar kernels' element offsets: row `i` of query head `hh` (key
  /// row `j` of KV head `kvh`) of batch row `bb`, times D.
  std::string queryRow(const std::string &bb, const std::string &hh, const std::string &i) const {
    return bthd ? "((" + bb + ") * " + S(t) + " + " + i + ") * " + S(h) + " + " + hh
                : "((" + bb + ") * " + S(h) + " + " + hh + ") * " + S(t) + " + " + i;
  }
  std::string keyRow(const std::string &bb, const std::string &kvh, const std::string &j) const {
    return bthd ? "((" + bb + ") * " + S(s) + " + " + j + ") * " + S(kv) + " + " + kvh
                : "((" + bb + ") * " + S(kv) + " + " + kvh + ") * " + S(s) + " + " + j;
  }
  /// The CPU library's tiled kernels for this shape (Library/cpu_library.h).
  std::string cpuTemplate() const { return "TlAttention<" + shapeArgs() + ">"; }
  /// Calls of entry `fn` of the CPU templates and of the CUDA tensor-core
  /// ones (Library/cuda_attention.cuh) with the tensors `args`.
  std::string cpuCall(const std::string &fn, const std::string &args) const {
    return "  " + cpuTemplate() + "::" + fn + "(" + batch + ", " + args + ", " + F(scale) + ");\n";
  }
  std::string cudaCall(const std::string &fn, const std::string &args) const {
    return "  TlFlashAttention<" + shapeArgs() + ">::" + fn + "(" + args + ", " + F(scale) + ");\n";
  }
};

/// FlashAttention-2 on tensor cores (Library/cuda_attention.cuh) takes bf16
/// tensors with a head dimension of 16, 32, ... 128; f32 attention (and any
/// other head size) keeps the scalar CUDA kernels below.
bool useTensorCores(const AttentionShape &a, std::initializer_list<Value> tensors) {
  for (Value v : tensors)
    if (!isBf16(v)) return false;
  return a.d % 16 == 0 && a.d <= 128 && a.h % a.kv == 0;
}

/// Blocks of cuda_attention.cuh: 4 warps; 64 rows a tile of stride d + 8.
constexpr int64_t kTensorCoreThreads = 128, kTensorCoreRows = 64;
struct TensorCoreShared {  // bytes of dynamic shared memory, as TlFlashAttention lays them out
  int64_t forward, gradients;
  int64_t queryTile;  // gradKeyValueQuery's query rows a step (its BQ)
  explicit TensorCoreShared(int64_t d) {
    queryTile = d > 64 ? 32 : 64;
    const int64_t tile = kTensorCoreRows * (d + 8), qTile = queryTile * (d + 8);
    forward = 5 * tile * 2;
    gradients = (2 * tile + 4 * qTile + queryTile * (kTensorCoreRows + 8)) * 2 + 4 * queryTile * 4;
  }
};

/// A step on the tensor-core kernels (CUDA body `cuda`, CPU body `cpu`): a
/// block for every 64 `rows` of each of `heads` heads of every batch row.
LoweredStep tensorCoreStep(Builder &k, const AttentionShape &a, const std::string &cpu, const std::string &cuda,
                           int64_t heads, int64_t rows, int64_t shared) {
  return k.custom(cpu, cuda, a.b * heads * ((rows + kTensorCoreRows - 1) / kTensorCoreRows), kTensorCoreThreads,
                  shared, a.batched);
}

std::string dotLoop(int64_t d, const std::string &acc, const std::string &a, const std::string &b) {
  return "      for (int64_t d = 0; d < " + S(d) + "; ++d) " + acc + " += " + a + " * " + b + ";\n";
}

/// CUDA: loops over tiles of keys staged in shared memory (`kt`, `vt`) for
/// the block's 64 query rows; the body runs per key `jj` of the tile that
/// query `i` may see. Leaves two braces open.
std::string tileLoop(const AttentionShape &a, int64_t tile, const Tensor &k, const Tensor &v,
                     const std::string &i) {
  std::string lastKey = a.causal ? "(qt * 64 + 64 < " + S(a.s) + " ? qt * 64 + 64 : " + S(a.s) + ")" : S(a.s);
  const std::string kvAt = "kvBase + j * " + S(a.bthd ? a.kv * a.d : a.d) + " + d";
  return fmt::format(R"(  const int64_t lastKey = {lastKey};
  for (int64_t j0 = 0; j0 < lastKey; j0 += {tile}) {{
    __syncthreads();
    for (int64_t e = threadIdx.x; e < {tileElements}; e += blockDim.x) {{
      const int64_t j = j0 + e / {d}, d = e % {d};
      kt[e] = j < {s} ? {k} : 0.0f;
      vt[e] = j < {s} ? {v} : 0.0f;
    }}
    __syncthreads();
    if (!active) continue;
    const int64_t keys = {keys} - j0;
    for (int64_t jj = 0; jj < (keys < {tile} ? keys : {tile}); ++jj) {{
)", arg("lastKey", lastKey), arg("tile", tile), arg("tileElements", tile * a.d), arg("d", a.d), arg("s", a.s),
                     arg("k", k.ld(kvAt)), arg("v", v.ld(kvAt)), arg("keys", a.keys(i)));
}

/// Keys (or queries) per shared-memory tile: two tiles of D floats fit 32 KB.
int64_t attentionTile(int64_t d) { return std::max<int64_t>(8, std::min<int64_t>(64, 4096 / d)); }

/// CUDA prologue of kernels run by blocks of 64 query rows of one (batch,
/// head): the K/V tile pointers, `bh`, `qt`, `hh`, `bb`, the query index
/// (named `i`), `active`, its `row` (of lse), `qrow` (of q) and the `kvBase`
/// of its KV head (key j at kvBase + j times the key row stride).
std::string queryBlock(const AttentionShape &a, int64_t tile, const std::string &i) {
  const int64_t qTiles = (a.t + 63) / 64;
  return fmt::format(R"(  extern __shared__ float tiles[];
  float *kt = tiles, *vt = tiles + {tileElements};
  const int64_t bh = blockIdx.x / {qTiles}, qt = blockIdx.x % {qTiles};
  const int64_t hh = bh % {h}, bb = bh / {h};
  const int64_t {i} = qt * 64 + threadIdx.x;
  const bool active = {i} < {t};
  const int64_t row = bh * {t} + (active ? {i} : 0);
  const int64_t qrow = {qrow};
  const int64_t kvBase = ({kvRow0}) * {d};
)", arg("tileElements", tile * a.d), arg("qTiles", qTiles), arg("h", a.h), arg("i", i), arg("t", a.t),
                     arg("qrow", a.queryRow("bb", "hh", "(active ? " + i + " : 0)")),
                     arg("kvRow0", a.keyRow("bb", "hh / " + S(a.g), "0")), arg("d", a.d));
}

LoweredOp attention(AttentionOp op, const std::string &name, const KernelContext &ctx) {
  AttentionShape a(op.getQuery(), op.getKey(), op.getScale().convertToDouble(), op.getCausal(), op.getBthd(), ctx);
  Builder k(name);
  Tensor o = k.param("o", op.getResult(), true), lse = k.param("lse", op.getLse(), true),
         q = k.param("q", op.getQuery(), false), kk = k.param("k", op.getKey(), false),
         v = k.param("v", op.getValue(), false);
  const std::string D = S(a.d);
  // The online-softmax update for one key whose K and V rows `kj`, `vj`.
  auto update = [&](const std::string &kj, const std::string &vj) {
    return fmt::format(R"(      float sc = 0.0f;
{dot}      sc *= {scale};
      const float mn = fmaxf(m, sc), corr = expf(m - mn), p = expf(sc - mn);
      l = l * corr + p;
      for (int64_t d = 0; d < {d}; ++d) acc[d] = acc[d] * corr + p * {vj};
      m = mn;
)", arg("dot", dotLoop(a.d, "sc", "qv[d]", kj)), arg("scale", F(a.scale)), arg("d", a.d), arg("vj", vj));
  };
  const std::string args = "o, lse, q, k, v";
  // CUDA: a block of 64 query rows of one (batch, head); tiles of keys.
  const int64_t tile = attentionTile(a.d), qTiles = (a.t + 63) / 64;
  std::string cuda = queryBlock(a, tile, "i") + fmt::format(R"(  float qv[{d}], acc[{d}], m = -TL_INF, l = 0.0f;
  for (int64_t d = 0; d < {d}; ++d) {{ qv[d] = active ? {q} : 0.0f; acc[d] = 0.0f; }}
{tileLoop}{update}    }}
  }}
  if (!active) return;
  for (int64_t d = 0; d < {d}; ++d) {storeO}
  {storeLse}
)", arg("d", a.d), arg("q", q.ld("qrow * " + D + " + d")), arg("tileLoop", tileLoop(a, tile, kk, v, "i")),
      arg("update", update("kt[jj * " + D + " + d]", "vt[jj * " + D + " + d]")),
      arg("storeO", o.st("qrow * " + D + " + d", "acc[d] / l")), arg("storeLse", lse.st("row", "m + logf(l)")));
  LoweredOp out;
  if (useTensorCores(a, {op.getQuery(), op.getKey(), op.getValue(), op.getResult()}))
    out.steps.push_back(tensorCoreStep(k, a, a.cpuCall("forward", args), a.cudaCall("forward", args), a.h, a.t,
                                       TensorCoreShared(a.d).forward));
  else
    out.steps.push_back(k.custom(a.cpuCall("forward", args), cuda, a.b * a.h * qTiles, 64, 2 * tile * a.d * 4,
                                 a.batched));
  return out;
}

LoweredOp attentionGrad(AttentionGradOp op, const std::string &name, const KernelContext &ctx) {
  AttentionShape a(op.getQuery(), op.getKey(), op.getScale().convertToDouble(), op.getCausal(), op.getBthd(), ctx);
  const std::string D = S(a.d);
  const int64_t tile = attentionTile(a.d);
  const bool tensorCores = useTensorCores(a, {op.getGrad(), op.getQuery(), op.getKey(), op.getValue(), op.getOutput(),
                                              op.getQueryGrad(), op.getKeyGrad(), op.getValueGrad()});
  const TensorCoreShared tcShared(a.d);
  LoweredOp out;
  out.scratchBytes.push_back(a.b * a.h * a.t * 4);  // delta = rowsum(dO * O)
  // The tensor-core kernel's f32 dQ sum and its turns (Library/cuda_attention.cuh).
  const int64_t queryTiles = (a.t + tcShared.queryTile - 1) / tcShared.queryTile;
  if (tensorCores) {
    out.scratchBytes.push_back(a.b * a.h * a.t * a.d * 4);
    out.scratchBytes.push_back(a.b * a.h * queryTiles * 4);
  }
  {
    Builder k(name + "_delta");
    Tensor delta = k.scratch("delta", 0, true), dout = k.param("dout", op.getGrad(), false),
           o = k.param("o", op.getOutput(), false);
    // i runs over the rows of lse, [B, H, T]; `r` is the row's place in dO and O.
    const std::string r = a.bthd ? a.queryRow("i / " + S(a.h * a.t), "i / " + S(a.t) + " % " + S(a.h), "i % " + S(a.t))
                                 : "i";
    // The turns start at zero on every launch, whatever a failed run left.
    std::string zeroTurns;
    if (tensorCores) {
      k.scratch("turns", 2, true);
      const std::string bq = S(tcShared.queryTile);
      zeroTurns = "    if (i % " + S(a.t) + " % " + bq + " == 0) ((int *)turns)[i / " + S(a.t) + " * " + S(queryTiles) +
                  " + i % " + S(a.t) + " / " + bq + "] = 0;\n";
    }
    out.steps.push_back(k.elementwise(
        ctx.count(op.getQuery(), a.b * a.h * a.t),
        "    const int64_t r = " + r + ";\n    float acc = 0.0f;\n" +
            dotLoop(a.d, "acc", dout.ld("r * " + D + " + d"), o.ld("r * " + D + " + d")) + "    delta[i] = acc;\n" +
            zeroTurns));
  }
  if (tensorCores) {  // dK, dV and dQ in one pass on CUDA; the CPU library's two.
    Builder k(name + "_dkdvdq");
    k.param("dk", op.getKeyGrad(), true);
    k.param("dv", op.getValueGrad(), true);
    k.param("dq", op.getQueryGrad(), true);
    k.param("dout", op.getGrad(), false);
    k.param("q", op.getQuery(), false);
    k.param("k", op.getKey(), false);
    k.param("v", op.getValue(), false);
    k.param("lse", op.getLse(), false);
    k.scratch("delta", 0, false);
    k.scratch("dqsum", 1, true);
    k.scratch("turns", 2, true);
    out.steps.push_back(tensorCoreStep(
        k, a,
        a.cpuCall("gradQuery", "dq, dout, q, k, v, lse, delta") +
            a.cpuCall("gradKeyValue", "dk, dv, dout, q, k, v, lse, delta"),
        a.cudaCall("gradKeyValueQuery", "dk, dv, dq, dout, q, k, v, lse, delta, dqsum, (int *)turns"), a.kv, a.s,
        tcShared.gradients));
    return out;
  }
  // f32: the scalar kernels, dQ by query rows, dK and dV by key rows.
  {  // dQ: query rows, looping over their keys.
    Builder k(name + "_dq");
    Tensor dq = k.param("dq", op.getQueryGrad(), true), dout = k.param("dout", op.getGrad(), false),
           q = k.param("q", op.getQuery(), false), kk = k.param("k", op.getKey(), false),
           v = k.param("v", op.getValue(), false), lse = k.param("lse", op.getLse(), false),
           delta = k.scratch("delta", 0, false);
    // CUDA: 64 query rows of one (batch, head) a block; K/V tiles in shared memory.
    const int64_t qTiles = (a.t + 63) / 64;
    std::string cuda = queryBlock(a, tile, "qi") + fmt::format(R"(  float qv[{d}], dov[{d}], acc[{d}];
  for (int64_t d = 0; d < {d}; ++d) {{ qv[d] = active ? {q} : 0.0f; dov[d] = active ? {dout} : 0.0f; acc[d] = 0.0f; }}
  const float L = active ? {lse} : 0.0f, dl = active ? delta[row] : 0.0f;
{tileLoop}      float sc = 0.0f, dp = 0.0f;
{dotScore}{dotDp}      const float p = expf(sc * {scale} - L), ds = p * (dp - dl);
      for (int64_t d = 0; d < {d}; ++d) acc[d] += {scale} * ds * kt[jj * {d} + d];
    }}
  }}
  if (!active) return;
  for (int64_t d = 0; d < {d}; ++d) {storeDq}
)", arg("d", a.d), arg("q", q.ld("qrow * " + D + " + d")), arg("dout", dout.ld("qrow * " + D + " + d")),
        arg("lse", lse.ld("row")), arg("tileLoop", tileLoop(a, tile, kk, v, "qi")),
        arg("dotScore", dotLoop(a.d, "sc", "qv[d]", "kt[jj * " + D + " + d]")),
        arg("dotDp", dotLoop(a.d, "dp", "dov[d]", "vt[jj * " + D + " + d]")), arg("scale", F(a.scale)),
        arg("storeDq", dq.st("qrow * " + D + " + d", "acc[d]")));
    out.steps.push_back(k.custom(a.cpuCall("gradQuery", "dq, dout, q, k, v, lse, delta"), cuda, a.b * a.h * qTiles,
                                 64, 2 * tile * a.d * 4, a.batched));
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
    const std::string at = "krow * " + D + " + d",
                      qAt = a.bthd ? "(" + a.queryRow("bb", "kvh * " + S(a.g) + " + g", "qi") + ") * " + D + " + d"
                                   : "(qBase + qi) * " + D + " + d";
    std::string cuda = fmt::format(R"(  extern __shared__ float tiles[];
  float *qs = tiles, *dos = tiles + {tileElements}, *ls = tiles + {twoTiles}, *dls = tiles + {twoTilesAndRow};
  const int64_t bk = blockIdx.x / {kTiles}, kt = blockIdx.x % {kTiles};
  const int64_t kvh = bk % {kv}, bb = bk / {kv};
  const int64_t j = kt * 64 + threadIdx.x;
  const bool active = j < {s};
  const int64_t krow = {krow};
  float kv[{d}], vv[{d}], dka[{d}], dva[{d}];
  for (int64_t d = 0; d < {d}; ++d) {{ kv[d] = active ? {k} : 0.0f; vv[d] = active ? {v} : 0.0f; dka[d] = 0.0f; dva[d] = 0.0f; }}
  for (int64_t g = 0; g < {groups}; ++g) {{
    const int64_t qBase = (bb * {h} + kvh * {groups} + g) * {t};
    for (int64_t i0 = {firstQuery}; i0 < {t}; i0 += {tile}) {{
      __syncthreads();
      for (int64_t e = threadIdx.x; e < {tileElements}; e += blockDim.x) {{
        const int64_t qi = i0 + e / {d}, d = e % {d};
        qs[e] = qi < {t} ? {q} : 0.0f;
        dos[e] = qi < {t} ? {dout} : 0.0f;
      }}
      for (int64_t e = threadIdx.x; e < {tile}; e += blockDim.x) {{
        ls[e] = i0 + e < {t} ? {lse} : 0.0f;
        dls[e] = i0 + e < {t} ? delta[qBase + i0 + e] : 0.0f;
      }}
      __syncthreads();
      if (!active) continue;
      for (int64_t ii = 0; ii < {tile} && i0 + ii < {t}; ++ii) {{
{causalSkip}        float sc = 0.0f, dp = 0.0f;
  {dotScore}  {dotDp}        const float p = expf(sc * {scale} - ls[ii]), ds = p * (dp - dls[ii]);
        for (int64_t d = 0; d < {d}; ++d) {{
          dva[d] += p * dos[ii * {d} + d];
          dka[d] += {scale} * ds * qs[ii * {d} + d];
        }}
      }}
    }}
  }}
  if (!active) return;
  for (int64_t d = 0; d < {d}; ++d) {{ {storeDk} {storeDv} }}
)", arg("tileElements", tile * a.d), arg("twoTiles", 2 * tile * a.d), arg("twoTilesAndRow", 2 * tile * a.d + tile),
        arg("kTiles", kTiles), arg("kv", a.kv), arg("s", a.s), arg("d", a.d), arg("k", kk.ld(at)), arg("v", v.ld(at)),
        arg("krow", a.keyRow("bb", "kvh", "(active ? j : 0)")),
        arg("groups", a.g), arg("h", a.h), arg("t", a.t), arg("firstQuery", a.causal ? "kt * 64" : "0"),
        arg("tile", tile), arg("q", q.ld(qAt)), arg("dout", dout.ld(qAt)), arg("lse", lse.ld("qBase + i0 + e")),
        arg("causalSkip", a.causal ? "        if (i0 + ii < j) continue;\n" : ""),
        arg("dotScore", dotLoop(a.d, "sc", "qs[ii * " + D + " + d]", "kv[d]")),
        arg("dotDp", dotLoop(a.d, "dp", "dos[ii * " + D + " + d]", "vv[d]")), arg("scale", F(a.scale)),
        arg("storeDk", dk.st(at, "dka[d]")), arg("storeDv", dv.st(at, "dva[d]")));
    out.steps.push_back(k.custom(a.cpuCall("gradKeyValue", "dk, dv, dout, q, k, v, lse, delta"), cuda,
                                 a.b * a.kv * kTiles, 64, (2 * tile * a.d + 2 * tile) * 4, a.batched));
  }
  return out;
}

} // namespace

void attachAttentionKernels(MLIRContext &context) {
  attachGenerator<AttentionOp, attention>(context);
  attachGenerator<AttentionGradOp, attentionGrad>(context);
}

} // namespace mlir::tl::codegen
