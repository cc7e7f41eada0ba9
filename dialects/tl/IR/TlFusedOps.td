//===- TlFusedOps.td - fused tl ops ------------------------*- tablegen -*-===//
//
// Ops the fusion passes create from primitive patterns, and the backward ops
// their derivative rules emit. Each has a reference implementation in
// compiler/Evaluator/FusedOps.cpp. Forward ops also return the statistics
// their backward op needs (rstd, log-sum-exp), so nothing is recomputed.
// Those statistics are f32 when the activations are bf16 or f16 (the
// verifiers require it): rounded to bf16 they would put ~3% error into the
// backward pass of every row.
//
//===----------------------------------------------------------------------===//
#ifndef TL_FUSED_OPS_TD
#define TL_FUSED_OPS_TD

// A forward op whose trailing results are saved statistics without a
// derivative rule (isDifferentiableResult says which).
defvar TL_VjpWithStatistics =
    DeclareOpInterfaceMethods<TL_DifferentiableOpInterface, ["isDifferentiableResult"]>;

def TL_RmsNormOp : TL_Op<"rmsnorm", [Pure, TL_VjpWithStatistics, AllTypesMatch<["input", "result"]>]> {
  let summary = "fused RMSNorm over the last axis";
  let description = [{
    `y = x * rsqrt(mean(x^2, -1) + eps) * weight`; `rstd` is the
    `rsqrt(...)` factor per row (shape of `x` without its last dimension).

    Example:

    ```mlir
    %y, %rstd = tl.rmsnorm %x, %w eps = 1.0e-05 : tensor<2x16x64xf32>, tensor<64xf32> -> tensor<2x16xf32>
    %y2, %rstd2 = tl.rmsnorm %h, %w2 eps = 1.0e-05 : tensor<2x16x64xbf16>, tensor<64xbf16> -> tensor<2x16xf32>
    ```
  }];
  let arguments = (ins TL_FloatTensor:$input, TL_FloatTensor:$weight, F64Attr:$eps);
  let results = (outs TL_FloatTensor:$result, TL_FloatTensor:$rstd);
  let assemblyFormat = [{
    $input `,` $weight `eps` `=` $eps attr-dict `:` type($input) `,` type($weight) `->` type($rstd)
  }];
  let hasVerifier = 1;
  let builders = [OpBuilder<(ins "::mlir::Value":$input, "::mlir::Value":$weight, "double":$eps)>];
}

def TL_AddRmsNormOp : TL_Op<"add_rmsnorm", [Pure, TL_VjpWithStatistics,
    AllTypesMatch<["lhs", "rhs", "sum", "result"]>]> {
  let summary = "residual add fused with the RMSNorm of its sum";
  let description = [{
    `sum = lhs + rhs`, `y = rmsnorm(sum) * weight`: the residual stream and
    its normalised value in one pass over memory. `rstd` as in `tl.rmsnorm`.

    Example:

    ```mlir
    %h, %y, %rstd = tl.add_rmsnorm %a, %b, %w eps = 1.0e-05 : tensor<2x16x64xf32>, tensor<64xf32> -> tensor<2x16xf32>
    ```
  }];
  let arguments = (ins TL_FloatTensor:$lhs, TL_FloatTensor:$rhs,
                       TL_FloatTensor:$weight, F64Attr:$eps);
  let results = (outs TL_FloatTensor:$sum, TL_FloatTensor:$result,
                      TL_FloatTensor:$rstd);
  let builders = [OpBuilder<(ins "::mlir::Value":$lhs, "::mlir::Value":$rhs, "::mlir::Value":$weight, "double":$eps)>];
  let assemblyFormat = [{
    $lhs `,` $rhs `,` $weight `eps` `=` $eps attr-dict `:` type($lhs) `,` type($weight) `->` type($rstd)
  }];
  let hasVerifier = 1;
}

def TL_RmsNormGradOp : TL_Op<"rmsnorm_grad", [Pure,
    AllTypesMatch<["grad", "input", "input_grad"]>, AllTypesMatch<["weight", "weight_grad"]>]> {
  let summary = "backward of RMSNorm from the saved rstd";
  let description = [{
    Given the cotangent `grad` of `y = x * rstd * w`: `dx = rstd * (g*w -
    x * rstd^2 * mean(g*w*x, -1))` and `dweight = sum over rows of g * x * rstd`.
    With `plus %r` (the cotangent a residual sum `x` already has, of x's
    type, listed last),
    `dx` is that plus `r`: add_rmsnorm's derivative adds it in the same pass
    over the row instead of a separate add.

    Example:

    ```mlir
    %dx, %dw = tl.rmsnorm_grad %g, %x, %w, %rstd : tensor<2x16x64xf32>, tensor<64xf32>, tensor<2x16xf32>
    %dx2, %dw2 = tl.rmsnorm_grad %g, %x, %w, %rstd plus %r : tensor<2x16x64xf32>, tensor<64xf32>, tensor<2x16xf32>, tensor<2x16x64xf32>
    ```
  }];
  let arguments = (ins TL_FloatTensor:$grad, TL_FloatTensor:$input,
                       TL_FloatTensor:$weight, TL_FloatTensor:$rstd,
                       Optional<TL_FloatTensor>:$residual_grad);
  let results = (outs TL_FloatTensor:$input_grad, TL_FloatTensor:$weight_grad);
  let hasVerifier = 1;
  let assemblyFormat = [{
    $grad `,` $input `,` $weight `,` $rstd (`plus` $residual_grad^)? attr-dict `:` type($input) `,` type($weight) `,` type($rstd)
    (`,` type($residual_grad)^)?
  }];
}

def TL_LayerNormOp : TL_Op<"layernorm", [Pure, TL_VjpWithStatistics,
    AllTypesMatch<["input", "result"]>, AllTypesMatch<["weight", "bias"]>]> {
  let summary = "fused LayerNorm over the last axis";
  let description = [{
    `y = (x - mean) * rsqrt(var + eps) * weight + bias` with the biased
    variance `mean((x - mean)^2)`; returns the per-row `mean` and `rstd`.

    Example:

    ```mlir
    %y, %mean, %rstd = tl.layernorm %x, %w, %b eps = 1.0e-05 : tensor<4x64xf32>, tensor<64xf32> -> tensor<4xf32>, tensor<4xf32>
    ```
  }];
  let arguments = (ins TL_FloatTensor:$input, TL_FloatTensor:$weight,
                       TL_FloatTensor:$bias, F64Attr:$eps);
  let results = (outs TL_FloatTensor:$result, TL_FloatTensor:$mean,
                      TL_FloatTensor:$rstd);
  let builders = [OpBuilder<(ins "::mlir::Value":$input, "::mlir::Value":$weight, "::mlir::Value":$bias, "double":$eps)>];
  let assemblyFormat = [{
    $input `,` $weight `,` $bias `eps` `=` $eps attr-dict `:` type($input) `,` type($weight) `->` type($mean) `,` type($rstd)
  }];
  let hasVerifier = 1;
}

def TL_LayerNormGradOp : TL_Op<"layernorm_grad", [Pure,
    AllTypesMatch<["grad", "input", "input_grad"]>,
    AllTypesMatch<["weight", "weight_grad", "bias_grad"]>, AllTypesMatch<["mean", "rstd"]>]> {
  let summary = "backward of LayerNorm from the saved mean and rstd";
  let description = [{
    With `xhat = (x - mean) * rstd` and `gw = grad * weight`:
    `dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat))`,
    `dweight = sum over rows of grad * xhat`, `dbias = sum over rows of grad`.

    Example:

    ```mlir
    %dx, %dw, %db = tl.layernorm_grad %g, %x, %w, %mean, %rstd : tensor<4x64xf32>, tensor<64xf32>, tensor<4xf32>
    ```
  }];
  let arguments = (ins TL_FloatTensor:$grad, TL_FloatTensor:$input,
                       TL_FloatTensor:$weight, TL_FloatTensor:$mean,
                       TL_FloatTensor:$rstd);
  let results = (outs TL_FloatTensor:$input_grad, TL_FloatTensor:$weight_grad,
                      TL_FloatTensor:$bias_grad);
  let hasVerifier = 1;
  let assemblyFormat = [{
    $grad `,` $input `,` $weight `,` $mean `,` $rstd attr-dict `:` type($input) `,` type($weight) `,` type($rstd)
  }];
}

def TL_RopeOp : TL_Op<"rope", [Pure, AllTypesMatch<["input", "result"]>, AllTypesMatch<["cos", "sin"]>,
    DeclareOpInterfaceMethods<TL_DifferentiableOpInterface, ["isDifferentiableOperand"]>]> {
  let summary = "rotary position embedding (rotate-half layout)";
  let description = [{
    For `x` of shape `[..., T, D]` and tables `cos`, `sin` of shape
    `[P, D]` (P >= offset + T): with `c = cos[offset + t]`, `s = sin[offset +
    t]` and `rotate_half(x) = concat(-x[D/2:], x[:D/2])`,
    `y = x * c + rotate_half(x) * s` (Hugging Face Llama's layout; any even D).
    With `bthd`, `x` is `[..., T, H, D]`: every head of a position shares its
    row (the projection's layout, so that no head transpose comes first;
    tl-fold-head-transposes sets it).

    Example:

    ```mlir
    %q2 = tl.rope %q, %cos, %sin offset = 0 : tensor<2x4x16x16xf32>, tensor<16x16xf32>
    ```
  }];
  let arguments = (ins TL_FloatTensor:$input, TL_FloatTensor:$cos,
                       TL_FloatTensor:$sin, I64Attr:$offset, UnitAttr:$bthd);
  let results = (outs TL_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $cos `,` $sin `offset` `=` $offset (`bthd` $bthd^)? attr-dict `:` type($input) `,` type($cos)
  }];
  let hasVerifier = 1;
}

def TL_RopeGradOp : TL_Op<"rope_grad", [Pure, AllTypesMatch<["grad", "result"]>,
    AllTypesMatch<["cos", "sin"]>]> {
  let summary = "backward (transpose) of rotary embedding";
  let description = [{
    `dx = g * c + rotate_half^T(g * s)` where `rotate_half^T(z) =
    concat(z[D/2:], -z[:D/2])`: rope is linear in `x`, so this is its
    transpose. Operands (and `bthd`) as in `tl.rope`.

    Example:

    ```mlir
    %dq = tl.rope_grad %g, %cos, %sin offset = 0 : tensor<2x4x16x16xf32>, tensor<16x16xf32>
    ```
  }];
  let arguments = (ins TL_FloatTensor:$grad, TL_FloatTensor:$cos,
                       TL_FloatTensor:$sin, I64Attr:$offset, UnitAttr:$bthd);
  let results = (outs TL_FloatTensor:$result);
  let hasVerifier = 1;
  let assemblyFormat = [{
    $grad `,` $cos `,` $sin `offset` `=` $offset (`bthd` $bthd^)? attr-dict `:` type($grad) `,` type($cos)
  }];
}

def TL_AttentionOp : TL_Op<"attention", [Pure, TL_VjpWithStatistics,
    AllTypesMatch<["query", "result"]>, AllTypesMatch<["key", "value"]>]> {
  let summary = "scaled dot-product attention, optionally causal, with GQA";
  let description = [{
    `q: [B, H, T, D]`, `k, v: [B, KV, S, D]` with KV dividing H: query head
    `h` attends to KV head `h / (H / KV)` (no repeated K/V in memory).
    `o = softmax(scale * q k^T + mask) v`, where the causal mask hides key
    `j > i` (for T == S). `lse: [B, H, T]` is the log-sum-exp of each row of
    scaled, masked scores, kept for the backward pass; the T x T scores are
    never materialised by the kernels. With `bthd`, q and the result are
    `[B, T, H, D]` and k, v `[B, S, KV, D]` (the projections' layout: no head
    transposes around the op; tl-fold-head-transposes sets it); lse stays
    `[B, H, T]`.

    Example:

    ```mlir
    %o, %lse = tl.attention %q, %k, %v scale = 0.25 causal : tensor<2x8x16x16xf32>, tensor<2x2x16x16xf32> -> tensor<2x8x16xf32>
    ```
  }];
  let arguments = (ins TL_FloatTensor:$query, TL_FloatTensor:$key,
                       TL_FloatTensor:$value, F64Attr:$scale, UnitAttr:$causal,
                       UnitAttr:$bthd);
  let results = (outs TL_FloatTensor:$result, TL_FloatTensor:$lse);
  let builders = [OpBuilder<(ins "::mlir::Value":$query, "::mlir::Value":$key, "::mlir::Value":$value, "double":$scale, "bool":$causal, CArg<"bool", "false">:$bthd)>];
  let assemblyFormat = [{
    $query `,` $key `,` $value `scale` `=` $scale (`causal` $causal^)? (`bthd` $bthd^)? attr-dict
    `:` type($query) `,` type($key) `->` type($lse)
  }];
  let hasVerifier = 1;
}

def TL_AttentionGradOp : TL_Op<"attention_grad", [Pure,
    AllTypesMatch<["grad", "query", "output", "query_grad"]>,
    AllTypesMatch<["key", "value", "key_grad", "value_grad"]>]> {
  let summary = "backward of attention from the saved output and log-sum-exp";
  let description = [{
    Recomputes `p = exp(scale * q k^T + mask - lse)` tile by tile and returns
    `dq, dk, dv` (dk, dv summed over each KV head's group of query heads),
    using `delta = rowsum(do * o)`: `ds = p * (do v^T - delta)`,
    `dq = scale * ds k`, `dk = scale * ds^T q`, `dv = p^T do`. Layouts
    (and `bthd`) as in `tl.attention`.

    Example:

    ```mlir
    %dq, %dk, %dv = tl.attention_grad %do, %q, %k, %v, %o, %lse scale = 0.25 causal : tensor<2x8x16x16xf32>, tensor<2x2x16x16xf32>, tensor<2x8x16xf32>
    ```
  }];
  let arguments = (ins TL_FloatTensor:$grad, TL_FloatTensor:$query,
                       TL_FloatTensor:$key, TL_FloatTensor:$value,
                       TL_FloatTensor:$output, TL_FloatTensor:$lse,
                       F64Attr:$scale, UnitAttr:$causal, UnitAttr:$bthd);
  let results = (outs TL_FloatTensor:$query_grad, TL_FloatTensor:$key_grad,
                      TL_FloatTensor:$value_grad);
  let hasVerifier = 1;
  let assemblyFormat = [{
    $grad `,` $query `,` $key `,` $value `,` $output `,` $lse `scale` `=` $scale
    (`causal` $causal^)? (`bthd` $bthd^)? attr-dict `:` type($query) `,` type($key) `,` type($lse)
  }];
}

def TL_CrossEntropyOp : TL_Op<"cross_entropy", [Pure, TL_VjpWithStatistics]> {
  let summary = "mean cross-entropy of logits against target ids";
  let description = [{
    `logits: [N, V]`, `targets: [N]` (i32). `loss = mean over counted rows of
    (logsumexp(logits[i]) - logits[i, targets[i]])`; rows whose target equals
    `ignore_index` (when given) are not counted. `lse: [N]` is kept for the
    backward pass, so the softmax is never stored. The loss is a scalar of
    the logits' type or f32: bf16 logits give an f32 loss when the model
    takes the mean of f32 values (widened logits, as PyTorch's autocast
    does), so that a loss is not rounded to bf16's 3 significant digits.

    Example:

    ```mlir
    %loss, %lse = tl.cross_entropy %logits, %targets : tensor<32x4096xf32>, tensor<32xi32> -> tensor<f32>, tensor<32xf32>
    ```
  }];
  let arguments = (ins TL_FloatTensor:$logits, TL_IdTensor:$targets,
                       OptionalAttr<I64Attr>:$ignore_index);
  let results = (outs TL_FloatTensor:$loss, TL_FloatTensor:$lse);
  // The loss in `lossElementType` (null: the logits' element type).
  let builders = [OpBuilder<(ins "::mlir::Value":$logits, "::mlir::Value":$targets, "::mlir::IntegerAttr":$ignore_index,
                                 CArg<"::mlir::Type", "{}">:$lossElementType)>];
  let assemblyFormat = [{
    $logits `,` $targets (`ignore_index` `=` $ignore_index^)? attr-dict `:` type($logits) `,` type($targets) `->` type($loss) `,` type($lse)
  }];
  let hasVerifier = 1;
}

def TL_CrossEntropyGradOp : TL_Op<"cross_entropy_grad", [Pure,
    AllTypesMatch<["logits", "result"]>]> {
  let summary = "backward of cross-entropy from the saved log-sum-exp";
  let description = [{
    `dlogits[i, j] = g / count * (exp(logits[i, j] - lse[i]) - (j == targets[i]))`
    for counted rows, 0 for ignored ones; `g` is the scalar cotangent of the loss
    (of the loss's type: the logits' or f32).

    Example:

    ```mlir
    %dl = tl.cross_entropy_grad %g, %logits, %targets, %lse : tensor<f32>, tensor<32x4096xf32>, tensor<32xi32>, tensor<32xf32>
    ```
  }];
  let arguments = (ins TL_FloatTensor:$grad, TL_FloatTensor:$logits,
                       TL_IdTensor:$targets, TL_FloatTensor:$lse,
                       OptionalAttr<I64Attr>:$ignore_index);
  let results = (outs TL_FloatTensor:$result);
  let hasVerifier = 1;
  let assemblyFormat = [{
    $grad `,` $logits `,` $targets `,` $lse (`ignore_index` `=` $ignore_index^)? attr-dict `:` type($grad) `,` type($logits) `,` type($targets) `,` type($lse)
  }];
}

//===----------------------------------------------------------------------===//
// Worked example of docs/writing-a-fusion-pass.md: SwiGLU's gate. Not in the
// default pipeline (there tl-fuse-elementwise groups silu(gate) * up with
// its neighbours), but complete: pass, rule, evaluator, tests.
//===----------------------------------------------------------------------===//

def TL_SwiGluOp : TL_Op<"swiglu", [Pure, Elementwise, SameOperandsAndResultType,
                                   InferTypeOpInterface, TL_Vjp]> {
  let summary = "SwiGLU gate: silu(gate) * up";
  let description = [{
    `result = gate * sigmoid(gate) * up`, elementwise. Created by
    `tl-fuse-swiglu`; its derivative rule emits `tl.swiglu_grad`.

    Example:

    ```mlir
    %h = tl.swiglu %gate, %up : tensor<2x16x64xf32>
    ```
  }];
  let arguments = (ins TL_FloatTensor:$gate, TL_FloatTensor:$up);
  let results = (outs TL_FloatTensor:$result);
  let assemblyFormat = "$gate `,` $up attr-dict `:` type($result)";
}

def TL_SwiGluGradOp : TL_Op<"swiglu_grad", [Pure, Elementwise,
    AllTypesMatch<["grad", "gate", "up", "gate_grad", "up_grad"]>]> {
  let summary = "backward of the SwiGLU gate";
  let description = [{
    With `s = sigmoid(gate)`: `dgate = grad * up * s * (1 + gate * (1 - s))`
    and `dup = grad * gate * s`.

    Example:

    ```mlir
    %dg, %du = tl.swiglu_grad %g, %gate, %up : tensor<2x16x64xf32>
    ```
  }];
  let arguments = (ins TL_FloatTensor:$grad, TL_FloatTensor:$gate, TL_FloatTensor:$up);
  let results = (outs TL_FloatTensor:$gate_grad, TL_FloatTensor:$up_grad);
  let assemblyFormat = "$grad `,` $gate `,` $up attr-dict `:` type($grad)";
}

def TL_FusionOp : TL_Op<"fusion", [Pure, IsolatedFromAbove,
    SingleBlockImplicitTerminator<"YieldOp">]> {
  let summary = "a group of elementwise ops and reductions fused into one kernel";
  let description = [{
    Formed by `tl-fuse-elementwise`: the body computes the results from the
    operands (block arguments) with elementwise ops, broadcasts, reshapes,
    constants and reductions; code generation emits one kernel per group, so
    intermediates inside never reach memory.

    Example:

    ```mlir
    %r = tl.fusion (%gate, %up) : (tensor<2x16x64xf32>, tensor<2x16x64xf32>) -> tensor<2x16x64xf32> {
    ^bb0(%a: tensor<2x16x64xf32>, %b: tensor<2x16x64xf32>):
      %s = tl.silu %a : tensor<2x16x64xf32>
      %m = tl.mul %s, %b : tensor<2x16x64xf32>
      tl.yield %m : tensor<2x16x64xf32>
    }
    ```
  }];
  let arguments = (ins Variadic<TL_Tensor>:$inputs);
  let results = (outs Variadic<TL_Tensor>:$results);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    `(` $inputs `)` attr-dict `:` functional-type($inputs, $results) $body
  }];
  let hasVerifier = 1;
}

def TL_YieldOp : TL_Op<"yield", [Pure, Terminator, HasParent<"FusionOp">]> {
  let summary = "the results of a tl.fusion body";
  let description = [{
    Ends a `tl.fusion` body; its operands become the fusion's results.

    Example:

    ```mlir
    tl.yield %m : tensor<2x16x64xf32>
    ```
  }];
  let arguments = (ins Variadic<TL_Tensor>:$values);
  let builders = [OpBuilder<(ins), [{ /* no values */ }]>];
  let assemblyFormat = "($values^ `:` type($values))? attr-dict";
}

#endif // TL_FUSED_OPS_TD
