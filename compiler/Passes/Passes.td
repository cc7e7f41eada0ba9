//===- Passes.td - tlc compiler passes ---------------------*- tablegen -*-===//
#ifndef TL_COMPILER_PASSES_TD
#define TL_COMPILER_PASSES_TD

include "mlir/Pass/PassBase.td"

def TlAutodiff : Pass<"tl-autodiff", "ModuleOp"> {
  let summary = "Turn a loss function into a training step (reverse-mode autodiff)";
  let description = [{
    For every function with `tl.param` arguments that returns one scalar float
    loss, appends the gradient of the loss with respect to every parameter,
    in parameter order, as extra results: `(loss, d loss / d param_0, ...)`.
    The loss result gets `tl.output = "loss"`, each gradient
    `tl.grad = "<parameter name>"`.

    The pass walks the function backwards from the loss, asks each op on a
    path from a parameter to the loss for its derivative rule
    (`DifferentiableOpInterface`), sums the cotangents of values used more
    than once, and deletes whatever no gradient needs. Forward values are
    reused, never recomputed. A parameter the loss does not depend on gets a
    zero gradient. An op without a rule on such a path is an error at its
    location. Functions that already return gradients are left alone.
  }];
  let dependentDialects = ["::mlir::tl::TLDialect"];
}

def TlRecompute : Pass<"tl-recompute", "ModuleOp"> {
  let summary = "Recompute forward values in the backward instead of keeping them";
  let description = [{
    For every training step (a function returning a loss and `tl.grad`
    results, as tl-autodiff makes them), decides which forward values the
    backward recomputes right before it first reads them, instead of keeping
    them alive from the forward, and rewrites the backward to read the
    recomputed copies. The decision uses an estimate of the live bytes at
    every op (reshapes are views) and each op's `RecomputeOpInterface`: its
    FLOPs, whether a result may be recomputed (never attention, never saved
    statistics), and from which values.

    `mode=none` changes nothing; `mode=auto` recomputes the cheap values
    (elementwise ops, norms, rope, copies: at most 8 FLOPs per element)
    whose recomputation lowers the peak, then, with `budget` (bytes of live
    activations), the candidates with the fewest FLOPs per byte saved until
    the estimated peak fits; `mode=full` keeps going while anything lowers
    the peak. Results are unchanged: the recomputation is the same
    computation on the same inputs. Runs after tl-autodiff and before
    tl-fuse-elementwise, which then fuses the recomputed elementwise ops into
    their readers.
  }];
  let options = [
    Option<"mode", "mode", "std::string", /*default=*/"\"auto\"",
           "none, auto or full">,
    Option<"budget", "budget", "int64_t", /*default=*/"0",
           "Estimated live activation bytes to fit (auto), 0 for none">,
    Option<"report", "report", "bool", /*default=*/"false",
           "Emit a remark per recomputed value and a summary">,
  ];
  let dependentDialects = ["::mlir::tl::TLDialect"];
}

// Every fusion pass takes `report`: emit a remark for each fusion and for
// each near-miss with the reason it was refused (`tlc-opt ... --mlir-print...`
// not needed: remarks go to stderr).
class TL_FusionPass<string flag> : Pass<flag, "ModuleOp"> {
  let options = [
    Option<"report", "report", "bool", /*default=*/"false",
           "Emit a remark per fusion and per refused near-miss, with the reason">,
  ];
  let dependentDialects = ["::mlir::tl::TLDialect"];
}

def TlFuseRmsNorm : TL_FusionPass<"tl-fuse-rmsnorm"> {
  let summary = "Fuse RMSNorm (with its residual add) and LayerNorm";
  let description = [{
    Replaces `x * rsqrt(mean(x^2, -1) + eps) * w` (also written with
    `x * x`, `sum / n`, `x / sqrt(...)`, either operand order) by
    `tl.rmsnorm`; when `x` is a residual `a + b`, by `tl.add_rmsnorm`, which
    also yields the sum. `(x - mean(x)) * rsqrt(mean((x - mean)^2) + eps) * w + b`
    becomes `tl.layernorm`. Refuses near-misses: a reduction over another
    axis, eps outside the square root, a mean of another tensor's square.
  }];
}

def TlFuseRope : TL_FusionPass<"tl-fuse-rope"> {
  let summary = "Fuse rotary position embedding (rotate-half layout)";
  let description = [{
    Replaces `x * cos + concat(-x[D/2:], x[:D/2]) * sin` (tables `[T, D]`
    broadcast over the leading axes, either operand order) by `tl.rope`.
    Refuses uneven halves and the opposite rotation `concat(x2, -x1)`.
  }];
}

def TlFuseAttention : TL_FusionPass<"tl-fuse-attention"> {
  let summary = "Fuse scaled dot-product attention (causal, GQA)";
  let description = [{
    Replaces `softmax(scale * q k^T [masked]) v` by `tl.attention`. The
    scale may multiply the scores or q, or divide the scores; the causal mask
    may be a `select` with `-inf` or an added `-inf` mask; K/V heads repeated
    for grouped-query attention (`h -> h / G`) are consumed unrepeated.
    Refuses a non-causal mask (e.g. one that hides the diagonal), softmax over
    another axis and a head grouping other than `h / G`.
  }];
}

def TlFoldHeadTransposes : TL_FusionPass<"tl-fold-head-transposes"> {
  let summary = "Let rope and attention read heads in the projections' layout";
  let description = [{
    Moves the head transpose `[B, T, H, D] -> [B, H, T, D]` (perm
    `[0, 2, 1, 3]`, or the last three axes of any rank) below `tl.rope`,
    which then reads `[..., T, H, D]` (`bthd`); replaces `tl.attention` whose
    query, key and value all come from such transposes by one with `bthd`
    that reads them in place, its result transposed back; and cancels a
    transpose followed by its inverse. In the training step none of the
    four head transposes of a layer remain, nor the four of its backward.
    Runs after tl-fuse-rope and tl-fuse-attention.
  }];
}

def TlFuseCrossEntropy : TL_FusionPass<"tl-fuse-cross-entropy"> {
  let summary = "Fuse mean cross-entropy over logits";
  let description = [{
    Replaces `mean(logsumexp(logits) - logits[target])` with the target
    logit picked by a one-hot `select` by `tl.cross_entropy`.
  }];
}

def TlFuseElementwise : TL_FusionPass<"tl-fuse-elementwise"> {
  let summary = "Group elementwise chains and their reductions into tl.fusion ops";
  let description = [{
    Forms `tl.fusion` regions for code generation: starting from the last op
    of a chain, pulls in elementwise producers, broadcasts, reshapes and
    reductions whose results are used only inside the group. A producer with
    users outside the group is recomputed inside it only when cheap (splat
    constants, iota); otherwise it stays a separate group, so expensive work
    (exp, log, reductions) is never duplicated. Matmuls, fused ops,
    transposes, slices, concats and gathers are boundaries.
  }];
}

def TlFuseSwiGlu : TL_FusionPass<"tl-fuse-swiglu"> {
  let summary = "Fuse silu(gate) * up into tl.swiglu (the tutorial's example)";
  let description = [{
    Replaces `silu(gate) * up`, or with silu written out as
    `gate * sigmoid(gate)`, in either operand order, by `tl.swiglu`. Refuses
    `x * sigmoid(y)` with `y != x` (a gated linear unit, not SiLU). The worked
    example of docs/writing-a-fusion-pass.md; not in the default pipeline.
  }];
}

#endif // TL_COMPILER_PASSES_TD
