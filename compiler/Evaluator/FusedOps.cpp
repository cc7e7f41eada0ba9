//===- FusedOps.cpp - reference semantics of the fused tl ops ------------===//
//
// Straight loops over rows, written from the formulas in TlFusedOps.td. The
// equivalence tests hold these against the primitive graphs the fusion passes
// replace, and the gradient tests against finite differences.
//
//===----------------------------------------------------------------------===//
#include "compiler/Evaluator/FusedOps.h"

#include "dialects/tl/IR/TlOps.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::tl;
using ::tlc::HostTensor;

namespace {

using Results = FailureOr<std::vector<HostTensor>>;
using Operands = ArrayRef<const HostTensor *>;

std::vector<int64_t> dropLast(const std::vector<int64_t> &s) {
  return {s.begin(), s.end() - 1};
}

/// Rows of a tensor normalised over its last axis.
struct Rows {
  int64_t width, count;
  explicit Rows(const HostTensor &t)
      : width(t.shape.back()), count(t.numel() / t.shape.back()) {}
};

Results rmsnorm(const HostTensor &x, const HostTensor &w, double eps) {
  Rows r(x);
  HostTensor y(x.shape), rstd(dropLast(x.shape));
  for (int64_t i = 0; i < r.count; ++i) {
    const double *xi = &x.data[i * r.width];
    double ss = 0;
    for (int64_t j = 0; j < r.width; ++j) ss += xi[j] * xi[j];
    double s = 1.0 / std::sqrt(ss / r.width + eps);
    rstd.data[i] = s;
    for (int64_t j = 0; j < r.width; ++j) y.data[i * r.width + j] = xi[j] * s * w.data[j];
  }
  return std::vector<HostTensor>{y, rstd};
}

Results rmsnormGrad(const HostTensor &g, const HostTensor &x, const HostTensor &w,
                    const HostTensor &rstd) {
  Rows r(x);
  HostTensor dx(x.shape), dw(w.shape);
  for (int64_t i = 0; i < r.count; ++i) {
    const double *gi = &g.data[i * r.width], *xi = &x.data[i * r.width];
    double s = rstd.data[i], dot = 0;
    for (int64_t j = 0; j < r.width; ++j) dot += gi[j] * w.data[j] * xi[j];
    dot /= r.width;
    for (int64_t j = 0; j < r.width; ++j) {
      dx.data[i * r.width + j] = s * (gi[j] * w.data[j] - xi[j] * s * s * dot);
      dw.data[j] += gi[j] * xi[j] * s;
    }
  }
  return std::vector<HostTensor>{dx, dw};
}

Results layernorm(const HostTensor &x, const HostTensor &w, const HostTensor &b,
                  double eps) {
  Rows r(x);
  HostTensor y(x.shape), mean(dropLast(x.shape)), rstd(dropLast(x.shape));
  for (int64_t i = 0; i < r.count; ++i) {
    const double *xi = &x.data[i * r.width];
    double m = 0, v = 0;
    for (int64_t j = 0; j < r.width; ++j) m += xi[j];
    m /= r.width;
    for (int64_t j = 0; j < r.width; ++j) v += (xi[j] - m) * (xi[j] - m);
    double s = 1.0 / std::sqrt(v / r.width + eps);
    mean.data[i] = m;
    rstd.data[i] = s;
    for (int64_t j = 0; j < r.width; ++j)
      y.data[i * r.width + j] = (xi[j] - m) * s * w.data[j] + b.data[j];
  }
  return std::vector<HostTensor>{y, mean, rstd};
}

Results layernormGrad(const HostTensor &g, const HostTensor &x, const HostTensor &w,
                      const HostTensor &mean, const HostTensor &rstd) {
  Rows r(x);
  HostTensor dx(x.shape), dw(w.shape), db(w.shape);
  std::vector<double> xhat(r.width);
  for (int64_t i = 0; i < r.count; ++i) {
    const double *gi = &g.data[i * r.width], *xi = &x.data[i * r.width];
    double s = rstd.data[i], meanGw = 0, meanGwX = 0;
    for (int64_t j = 0; j < r.width; ++j) {
      xhat[j] = (xi[j] - mean.data[i]) * s;
      meanGw += gi[j] * w.data[j];
      meanGwX += gi[j] * w.data[j] * xhat[j];
    }
    meanGw /= r.width;
    meanGwX /= r.width;
    for (int64_t j = 0; j < r.width; ++j) {
      dx.data[i * r.width + j] = s * (gi[j] * w.data[j] - meanGw - xhat[j] * meanGwX);
      dw.data[j] += gi[j] * xhat[j];
      db.data[j] += gi[j];
    }
  }
  return std::vector<HostTensor>{dx, dw, db};
}

/// rope (transpose = false) and its transpose rope_grad (transpose = true);
/// x [..., T, D], or [..., T, H, D] with `bthd`.
Results rope(const HostTensor &x, const HostTensor &cos, const HostTensor &sin,
             int64_t offset, bool transpose, bool bthd) {
  int64_t d = x.shape.back(), t = x.shape[x.rank() - (bthd ? 3 : 2)], half = d / 2;
  int64_t heads = bthd ? x.shape[x.rank() - 2] : 1;
  HostTensor y(x.shape);
  for (int64_t row = 0; row < x.numel() / d; ++row) {
    int64_t pos = offset + row / heads % t;
    const double *xi = &x.data[row * d], *c = &cos.data[pos * d], *s = &sin.data[pos * d];
    double *yi = &y.data[row * d];
    for (int64_t j = 0; j < half; ++j) {
      if (!transpose) {  // rotate_half(x) = (-x2, x1)
        yi[j] = xi[j] * c[j] - xi[j + half] * s[j];
        yi[j + half] = xi[j + half] * c[j + half] + xi[j] * s[j + half];
      } else {           // rotate_half^T(z) = (z2, -z1), z = x * s
        yi[j] = xi[j] * c[j] + xi[j + half] * s[j + half];
        yi[j + half] = xi[j + half] * c[j + half] - xi[j] * s[j];
      }
    }
  }
  return std::vector<HostTensor>{y};
}

/// Shapes and indexing shared by attention forward and backward: q [B, H,
/// T, D] and k, v [B, KV, S, D], or with `bthd` [B, T, H, D] and [B, S, KV, D].
struct AttentionShape {
  int64_t b, heads, t, d, kvHeads, s;
  bool bthd;
  AttentionShape(const HostTensor &q, const HostTensor &k, bool bthd)
      : b(q.shape[0]), heads(q.shape[bthd ? 2 : 1]), t(q.shape[bthd ? 1 : 2]), d(q.shape[3]),
        kvHeads(k.shape[bthd ? 2 : 1]), s(k.shape[bthd ? 1 : 2]), bthd(bthd) {}
  int64_t q(int64_t bi, int64_t h, int64_t i) const {
    return (bthd ? (bi * t + i) * heads + h : (bi * heads + h) * t + i) * d;
  }
  int64_t kv(int64_t bi, int64_t h, int64_t j) const {
    int64_t kh = h / (heads / kvHeads);
    return (bthd ? (bi * s + j) * kvHeads + kh : (bi * kvHeads + kh) * s + j) * d;
  }
  int64_t keys(int64_t i, bool causal) const { return causal ? i + 1 : s; }
};

double dot(const double *a, const double *b, int64_t n) {
  double acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

Results attention(const HostTensor &q, const HostTensor &k, const HostTensor &v,
                  double scale, bool causal, bool bthd) {
  AttentionShape a(q, k, bthd);
  HostTensor o(q.shape), lse(std::vector<int64_t>{a.b, a.heads, a.t});
  std::vector<double> scores(a.s);
  for (int64_t bi = 0; bi < a.b; ++bi)
    for (int64_t h = 0; h < a.heads; ++h)
      for (int64_t i = 0; i < a.t; ++i) {
        const double *qi = &q.data[a.q(bi, h, i)];
        int64_t n = a.keys(i, causal);
        double m = -std::numeric_limits<double>::infinity(), l = 0;
        for (int64_t j = 0; j < n; ++j) {
          scores[j] = scale * dot(qi, &k.data[a.kv(bi, h, j)], a.d);
          m = std::max(m, scores[j]);
        }
        for (int64_t j = 0; j < n; ++j) l += std::exp(scores[j] - m);
        double rowLse = m + std::log(l);
        lse.data[(bi * a.heads + h) * a.t + i] = rowLse;
        double *oi = &o.data[a.q(bi, h, i)];
        for (int64_t j = 0; j < n; ++j) {
          double p = std::exp(scores[j] - rowLse);
          const double *vj = &v.data[a.kv(bi, h, j)];
          for (int64_t c = 0; c < a.d; ++c) oi[c] += p * vj[c];
        }
      }
  return std::vector<HostTensor>{o, lse};
}

Results attentionGrad(const HostTensor &dout, const HostTensor &q, const HostTensor &k,
                      const HostTensor &v, const HostTensor &o, const HostTensor &lse,
                      double scale, bool causal, bool bthd) {
  AttentionShape a(q, k, bthd);
  HostTensor dq(q.shape), dk(k.shape), dv(v.shape);
  for (int64_t bi = 0; bi < a.b; ++bi)
    for (int64_t h = 0; h < a.heads; ++h)
      for (int64_t i = 0; i < a.t; ++i) {
        int64_t qi = a.q(bi, h, i);
        double delta = dot(&dout.data[qi], &o.data[qi], a.d);
        double rowLse = lse.data[(bi * a.heads + h) * a.t + i];
        for (int64_t j = 0; j < a.keys(i, causal); ++j) {
          int64_t kj = a.kv(bi, h, j);
          double p = std::exp(scale * dot(&q.data[qi], &k.data[kj], a.d) - rowLse);
          double ds = p * (dot(&dout.data[qi], &v.data[kj], a.d) - delta);
          for (int64_t c = 0; c < a.d; ++c) {
            dv.data[kj + c] += p * dout.data[qi + c];
            dq.data[qi + c] += scale * ds * k.data[kj + c];
            dk.data[kj + c] += scale * ds * q.data[qi + c];
          }
        }
      }
  return std::vector<HostTensor>{dq, dk, dv};
}

/// Rows counted by the mean: those whose target is not `ignore`.
Results crossEntropy(Operation *op, const HostTensor &logits, const HostTensor &targets,
                     std::optional<int64_t> ignore) {
  int64_t n = logits.shape[0], vocab = logits.shape[1];
  HostTensor loss(std::vector<int64_t>{}), lse(std::vector<int64_t>{n});
  int64_t counted = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double *li = &logits.data[i * vocab];
    double m = -std::numeric_limits<double>::infinity(), l = 0;
    for (int64_t j = 0; j < vocab; ++j) m = std::max(m, li[j]);
    for (int64_t j = 0; j < vocab; ++j) l += std::exp(li[j] - m);
    lse.data[i] = m + std::log(l);
    auto t = static_cast<int64_t>(targets.data[i]);
    if (ignore && t == *ignore) continue;
    if (t < 0 || t >= vocab)
      return op->emitError() << "evaluator: target " << t << " at row " << i
                             << " is outside the vocabulary of " << vocab;
    loss.data[0] += lse.data[i] - li[t];
    ++counted;
  }
  loss.data[0] /= static_cast<double>(counted);  // NaN when every row is ignored
  return std::vector<HostTensor>{loss, lse};
}

Results crossEntropyGrad(const HostTensor &g, const HostTensor &logits,
                         const HostTensor &targets, const HostTensor &lse,
                         std::optional<int64_t> ignore) {
  int64_t n = logits.shape[0], vocab = logits.shape[1], counted = 0;
  for (int64_t i = 0; i < n; ++i)
    counted += !(ignore && static_cast<int64_t>(targets.data[i]) == *ignore);
  HostTensor d(logits.shape);
  double scale = g.data[0] / static_cast<double>(counted);
  for (int64_t i = 0; i < n; ++i) {
    auto t = static_cast<int64_t>(targets.data[i]);
    if (ignore && t == *ignore) continue;
    for (int64_t j = 0; j < vocab; ++j)
      d.data[i * vocab + j] =
          scale * (std::exp(logits.data[i * vocab + j] - lse.data[i]) - (j == t ? 1.0 : 0.0));
  }
  return std::vector<HostTensor>{d};
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

Results swiglu(const HostTensor &gate, const HostTensor &up) {
  HostTensor y(gate.shape);
  for (int64_t i = 0; i < y.numel(); ++i)
    y.data[i] = gate.data[i] * sigmoid(gate.data[i]) * up.data[i];
  return std::vector<HostTensor>{y};
}

Results swigluGrad(const HostTensor &g, const HostTensor &gate, const HostTensor &up) {
  HostTensor dgate(gate.shape), dup(gate.shape);
  for (int64_t i = 0; i < g.numel(); ++i) {
    double x = gate.data[i], s = sigmoid(x);
    dgate.data[i] = g.data[i] * up.data[i] * s * (1 + x * (1 - s));
    dup.data[i] = g.data[i] * x * s;
  }
  return std::vector<HostTensor>{dgate, dup};
}

std::optional<int64_t> ignoreIndex(std::optional<uint64_t> attr) {
  if (!attr) return std::nullopt;
  return static_cast<int64_t>(*attr);
}

//===----------------------------------------------------------------------===//
// The models: each op's operands handed to its function above.
//===----------------------------------------------------------------------===//

Results evalRmsNorm(RmsNormOp n, Operands in) { return rmsnorm(*in[0], *in[1], n.getEps().convertToDouble()); }

Results evalAddRmsNorm(AddRmsNormOp n, Operands in) {
  HostTensor sum = *in[0];
  for (int64_t i = 0; i < sum.numel(); ++i) sum.data[i] += in[1]->data[i];
  Results r = rmsnorm(sum, *in[2], n.getEps().convertToDouble());
  return std::vector<HostTensor>{sum, (*r)[0], (*r)[1]};
}

Results evalRmsNormGrad(RmsNormGradOp, Operands in) {
  Results r = rmsnormGrad(*in[0], *in[1], *in[2], *in[3]);
  if (in.size() > 4)  // plus the residual's gradient
    for (size_t i = 0; i < in[4]->data.size(); ++i) (*r)[0].data[i] += in[4]->data[i];
  return r;
}

Results evalLayerNorm(LayerNormOp n, Operands in) {
  return layernorm(*in[0], *in[1], *in[2], n.getEps().convertToDouble());
}

Results evalLayerNormGrad(LayerNormGradOp, Operands in) {
  return layernormGrad(*in[0], *in[1], *in[2], *in[3], *in[4]);
}

Results evalRope(RopeOp r, Operands in) {
  return rope(*in[0], *in[1], *in[2], r.getOffset(), false, r.getBthd());
}
Results evalRopeGrad(RopeGradOp r, Operands in) {
  return rope(*in[0], *in[1], *in[2], r.getOffset(), true, r.getBthd());
}

Results evalAttention(AttentionOp a, Operands in) {
  return attention(*in[0], *in[1], *in[2], a.getScale().convertToDouble(), a.getCausal(), a.getBthd());
}

Results evalAttentionGrad(AttentionGradOp a, Operands in) {
  return attentionGrad(*in[0], *in[1], *in[2], *in[3], *in[4], *in[5], a.getScale().convertToDouble(),
                       a.getCausal(), a.getBthd());
}

Results evalCrossEntropy(CrossEntropyOp c, Operands in) {
  return crossEntropy(c, *in[0], *in[1], ignoreIndex(c.getIgnoreIndex()));
}

Results evalCrossEntropyGrad(CrossEntropyGradOp c, Operands in) {
  return crossEntropyGrad(*in[0], *in[1], *in[2], *in[3], ignoreIndex(c.getIgnoreIndex()));
}

Results evalSwiGlu(SwiGluOp, Operands in) { return swiglu(*in[0], *in[1]); }
Results evalSwiGluGrad(SwiGluGradOp, Operands in) { return swigluGrad(*in[0], *in[1], *in[2]); }

template <typename OpT, Results (*Run)(OpT, Operands)>
struct Semantics : ReferenceSemanticsOpInterface::ExternalModel<Semantics<OpT, Run>, OpT> {
  Results evaluate(Operation *op, Operands in) const { return Run(cast<OpT>(op), in); }
};

template <typename OpT, Results (*Run)(OpT, Operands)> void attach(MLIRContext &context) {
  OpT::template attachInterface<Semantics<OpT, Run>>(context);
}

} // namespace

#include "compiler/Evaluator/ReferenceSemanticsInterface.cpp.inc"

void mlir::tl::attachReferenceSemantics(MLIRContext &context) {
  context.getOrLoadDialect<TLDialect>();
  // A repeated attachment is a no-op in MLIR, so every evaluation may call this.
  attach<RmsNormOp, evalRmsNorm>(context);
  attach<AddRmsNormOp, evalAddRmsNorm>(context);
  attach<RmsNormGradOp, evalRmsNormGrad>(context);
  attach<LayerNormOp, evalLayerNorm>(context);
  attach<LayerNormGradOp, evalLayerNormGrad>(context);
  attach<RopeOp, evalRope>(context);
  attach<RopeGradOp, evalRopeGrad>(context);
  attach<AttentionOp, evalAttention>(context);
  attach<AttentionGradOp, evalAttentionGrad>(context);
  attach<CrossEntropyOp, evalCrossEntropy>(context);
  attach<CrossEntropyGradOp, evalCrossEntropyGrad>(context);
  attach<SwiGluOp, evalSwiGlu>(context);
  attach<SwiGluGradOp, evalSwiGluGrad>(context);
}
