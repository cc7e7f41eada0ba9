// RUN: tlc-opt %s --tl-fuse-cross-entropy -split-input-file | FileCheck %s
// RUN: tlc-opt %s --tl-fuse-cross-entropy=report=true -split-input-file -verify-diagnostics -o /dev/null

// The DSL's form: stabilised log-sum-exp minus the one-hot picked logit, mean.
// CHECK-LABEL: func.func @dsl_form
// CHECK: %[[L:.*]], %{{.*}} = tl.cross_entropy %arg0, %arg1 : tensor<6x10xf32>, tensor<6xi32> -> tensor<f32>, tensor<6xf32>
// CHECK-NOT: tl.exp
// CHECK: return %[[L]]
func.func @dsl_form(%logits: tensor<6x10xf32>, %t: tensor<6xi32>) -> tensor<f32> {
  %m = tl.reduce_max %logits, axis = 1 : tensor<6x10xf32> -> tensor<6xf32>
  %m2 = tl.reshape %m : tensor<6xf32> -> tensor<6x1xf32>
  %mb = tl.broadcast %m2, dims = [0, 1] : tensor<6x1xf32> -> tensor<6x10xf32>
  %sh = tl.sub %logits, %mb : tensor<6x10xf32>
  %e = tl.exp %sh : tensor<6x10xf32>
  %s = tl.reduce_sum %e, axis = 1 : tensor<6x10xf32> -> tensor<6xf32>
  %l = tl.log %s : tensor<6xf32>
  %lse = tl.add %l, %m : tensor<6xf32>
  %cls = tl.iota axis = 1 : tensor<6x10xi32>
  %t2 = tl.reshape %t : tensor<6xi32> -> tensor<6x1xi32>
  %tb = tl.broadcast %t2, dims = [0, 1] : tensor<6x1xi32> -> tensor<6x10xi32>
  %hit = tl.cmp eq, %cls, %tb : tensor<6x10xi32>
  %zero = tl.constant dense<0.0> : tensor<6x10xf32>
  %sel = tl.select %hit, %logits, %zero : tensor<6x10xi1>, tensor<6x10xf32>
  %picked = tl.reduce_sum %sel, axis = 1 : tensor<6x10xf32> -> tensor<6xf32>
  %nll = tl.sub %lse, %picked : tensor<6xf32>
  // expected-remark @+1 {{tl-fuse-cross-entropy: fused cross_entropy}}
  %loss = tl.reduce_mean %nll, axis = 0 : tensor<6xf32> -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// bf16 logits widened to f32 (the DSL's form for bf16 models): the fused op
// reads the bf16 logits and gives an f32 loss; no f32 copy of the logits.
// CHECK-LABEL: func.func @widened_bf16
// CHECK-NOT: tl.convert
// CHECK: %[[L:.*]], %{{.*}} = tl.cross_entropy %arg0, %arg1 : tensor<6x10xbf16>, tensor<6xi32> -> tensor<f32>, tensor<6xf32>
// CHECK-NOT: tl.convert
// CHECK: return %[[L]]
func.func @widened_bf16(%raw: tensor<6x10xbf16>, %t: tensor<6xi32>) -> tensor<f32> {
  %logits = tl.convert %raw : tensor<6x10xbf16> -> tensor<6x10xf32>
  %m = tl.reduce_max %logits, axis = 1 : tensor<6x10xf32> -> tensor<6xf32>
  %m2 = tl.reshape %m : tensor<6xf32> -> tensor<6x1xf32>
  %mb = tl.broadcast %m2, dims = [0, 1] : tensor<6x1xf32> -> tensor<6x10xf32>
  %sh = tl.sub %logits, %mb : tensor<6x10xf32>
  %e = tl.exp %sh : tensor<6x10xf32>
  %s = tl.reduce_sum %e, axis = 1 : tensor<6x10xf32> -> tensor<6xf32>
  %l = tl.log %s : tensor<6xf32>
  %lse = tl.add %l, %m : tensor<6xf32>
  %cls = tl.iota axis = 1 : tensor<6x10xi32>
  %t2 = tl.reshape %t : tensor<6xi32> -> tensor<6x1xi32>
  %tb = tl.broadcast %t2, dims = [0, 1] : tensor<6x1xi32> -> tensor<6x10xi32>
  %hit = tl.cmp eq, %cls, %tb : tensor<6x10xi32>
  %zero = tl.constant dense<0.0> : tensor<6x10xf32>
  %sel = tl.select %hit, %logits, %zero : tensor<6x10xi1>, tensor<6x10xf32>
  %picked = tl.reduce_sum %sel, axis = 1 : tensor<6x10xf32> -> tensor<6xf32>
  %nll = tl.sub %lse, %picked : tensor<6xf32>
  // expected-remark @+1 {{tl-fuse-cross-entropy: fused cross_entropy}}
  %loss = tl.reduce_mean %nll, axis = 0 : tensor<6xf32> -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// Mean as sum / N, max first in the add, targets compared on the right.
// CHECK-LABEL: func.func @variants
// CHECK: tl.cross_entropy %arg0, %arg1
func.func @variants(%logits: tensor<6x10xf32>, %t: tensor<6xi32>) -> tensor<f32> {
  %m = tl.reduce_max %logits, axis = 1 : tensor<6x10xf32> -> tensor<6xf32>
  %mb = tl.broadcast %m, dims = [0] : tensor<6xf32> -> tensor<6x10xf32>
  %sh = tl.sub %logits, %mb : tensor<6x10xf32>
  %e = tl.exp %sh : tensor<6x10xf32>
  %s = tl.reduce_sum %e, axis = 1 : tensor<6x10xf32> -> tensor<6xf32>
  %l = tl.log %s : tensor<6xf32>
  %lse = tl.add %m, %l : tensor<6xf32>
  %cls = tl.iota axis = 1 : tensor<6x10xi32>
  %tb = tl.broadcast %t, dims = [0] : tensor<6xi32> -> tensor<6x10xi32>
  %hit = tl.cmp eq, %tb, %cls : tensor<6x10xi32>
  %zero = tl.constant dense<0.0> : tensor<6x10xf32>
  %sel = tl.select %hit, %logits, %zero : tensor<6x10xi1>, tensor<6x10xf32>
  %picked = tl.reduce_sum %sel, axis = 1 : tensor<6x10xf32> -> tensor<6xf32>
  %nll = tl.sub %lse, %picked : tensor<6xf32>
  %total = tl.reduce_sum %nll, axis = 0 : tensor<6xf32> -> tensor<f32>
  %n = tl.constant dense<6.0> : tensor<f32>
  // expected-remark @+1 {{fused cross_entropy}}
  %loss = tl.div %total, %n : tensor<f32>
  return %loss : tensor<f32>
}

// -----

// The one-hot mask runs over the rows, not the classes: refused.
// CHECK-LABEL: func.func @wrong_one_hot_axis
// CHECK-NOT: tl.cross_entropy
func.func @wrong_one_hot_axis(%logits: tensor<6x6xf32>, %t: tensor<6xi32>) -> tensor<f32> {
  %m = tl.reduce_max %logits, axis = 1 : tensor<6x6xf32> -> tensor<6xf32>
  %mb = tl.broadcast %m, dims = [0] : tensor<6xf32> -> tensor<6x6xf32>
  %sh = tl.sub %logits, %mb : tensor<6x6xf32>
  %e = tl.exp %sh : tensor<6x6xf32>
  %s = tl.reduce_sum %e, axis = 1 : tensor<6x6xf32> -> tensor<6xf32>
  %l = tl.log %s : tensor<6xf32>
  %lse = tl.add %l, %m : tensor<6xf32>
  %rows = tl.iota axis = 0 : tensor<6x6xi32>
  %tb = tl.broadcast %t, dims = [0] : tensor<6xi32> -> tensor<6x6xi32>
  %hit = tl.cmp eq, %rows, %tb : tensor<6x6xi32>
  %zero = tl.constant dense<0.0> : tensor<6x6xf32>
  %sel = tl.select %hit, %logits, %zero : tensor<6x6xi1>, tensor<6x6xf32>
  %picked = tl.reduce_sum %sel, axis = 1 : tensor<6x6xf32> -> tensor<6xf32>
  %nll = tl.sub %lse, %picked : tensor<6xf32>
  // expected-remark @+1 {{not fused as cross_entropy: the one-hot mask is not over the class axis}}
  %loss = tl.reduce_mean %nll, axis = 0 : tensor<6xf32> -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// Square logits [4, 4] (rows == classes): the target ids broadcast along
// the row axis compare column j against target j.
// CHECK-LABEL: func.func @targets_per_column
// CHECK-NOT: tl.cross_entropy
func.func @targets_per_column(%logits: tensor<4x4xf32>, %t: tensor<4xi32>) -> tensor<f32> {
  %m = tl.reduce_max %logits, axis = 1 : tensor<4x4xf32> -> tensor<4xf32>
  %m2 = tl.reshape %m : tensor<4xf32> -> tensor<4x1xf32>
  %mb = tl.broadcast %m2, dims = [0, 1] : tensor<4x1xf32> -> tensor<4x4xf32>
  %sh = tl.sub %logits, %mb : tensor<4x4xf32>
  %e = tl.exp %sh : tensor<4x4xf32>
  %s = tl.reduce_sum %e, axis = 1 : tensor<4x4xf32> -> tensor<4xf32>
  %l = tl.log %s : tensor<4xf32>
  %lse = tl.add %l, %m : tensor<4xf32>
  %cls = tl.iota axis = 1 : tensor<4x4xi32>
  %tb = tl.broadcast %t, dims = [1] : tensor<4xi32> -> tensor<4x4xi32>
  %hit = tl.cmp eq, %cls, %tb : tensor<4x4xi32>
  %zero = tl.constant dense<0.0> : tensor<4x4xf32>
  %sel = tl.select %hit, %logits, %zero : tensor<4x4xi1>, tensor<4x4xf32>
  %picked = tl.reduce_sum %sel, axis = 1 : tensor<4x4xf32> -> tensor<4xf32>
  %nll = tl.sub %lse, %picked : tensor<4xf32>
  // expected-remark @+1 {{not fused as cross_entropy: the factor is repeated along axis 0, not only along the last axis: it is not one value per row}}
  %loss = tl.reduce_mean %nll, axis = 0 : tensor<4xf32> -> tensor<f32>
  return %loss : tensor<f32>
}
// -----

// The row maximum subtracted per column.
// CHECK-LABEL: func.func @max_per_column
// CHECK-NOT: tl.cross_entropy
func.func @max_per_column(%logits: tensor<4x4xf32>, %t: tensor<4xi32>) -> tensor<f32> {
  %m = tl.reduce_max %logits, axis = 1 : tensor<4x4xf32> -> tensor<4xf32>
  %mb = tl.broadcast %m, dims = [1] : tensor<4xf32> -> tensor<4x4xf32>
  %sh = tl.sub %logits, %mb : tensor<4x4xf32>
  %e = tl.exp %sh : tensor<4x4xf32>
  %s = tl.reduce_sum %e, axis = 1 : tensor<4x4xf32> -> tensor<4xf32>
  %l = tl.log %s : tensor<4xf32>
  %lse = tl.add %l, %m : tensor<4xf32>
  %cls = tl.iota axis = 1 : tensor<4x4xi32>
  %t2 = tl.reshape %t : tensor<4xi32> -> tensor<4x1xi32>
  %tb = tl.broadcast %t2, dims = [0, 1] : tensor<4x1xi32> -> tensor<4x4xi32>
  %hit = tl.cmp eq, %cls, %tb : tensor<4x4xi32>
  %zero = tl.constant dense<0.0> : tensor<4x4xf32>
  %sel = tl.select %hit, %logits, %zero : tensor<4x4xi1>, tensor<4x4xf32>
  %picked = tl.reduce_sum %sel, axis = 1 : tensor<4x4xf32> -> tensor<4xf32>
  %nll = tl.sub %lse, %picked : tensor<4xf32>
  // expected-remark @+1 {{not fused as cross_entropy: the factor is repeated along axis 0, not only along the last axis: it is not one value per row}}
  %loss = tl.reduce_mean %nll, axis = 0 : tensor<4xf32> -> tensor<f32>
  return %loss : tensor<f32>
}
// -----

// The log-sum-exp over the row axis.
// CHECK-LABEL: func.func @lse_over_rows
// CHECK-NOT: tl.cross_entropy
func.func @lse_over_rows(%logits: tensor<4x4xf32>, %t: tensor<4xi32>) -> tensor<f32> {
  %m = tl.reduce_max %logits, axis = 1 : tensor<4x4xf32> -> tensor<4xf32>
  %m2 = tl.reshape %m : tensor<4xf32> -> tensor<4x1xf32>
  %mb = tl.broadcast %m2, dims = [0, 1] : tensor<4x1xf32> -> tensor<4x4xf32>
  %sh = tl.sub %logits, %mb : tensor<4x4xf32>
  %e = tl.exp %sh : tensor<4x4xf32>
  %s = tl.reduce_sum %e, axis = 0 : tensor<4x4xf32> -> tensor<4xf32>
  %l = tl.log %s : tensor<4xf32>
  %lse = tl.add %l, %m : tensor<4xf32>
  %cls = tl.iota axis = 1 : tensor<4x4xi32>
  %t2 = tl.reshape %t : tensor<4xi32> -> tensor<4x1xi32>
  %tb = tl.broadcast %t2, dims = [0, 1] : tensor<4x1xi32> -> tensor<4x4xi32>
  %hit = tl.cmp eq, %cls, %tb : tensor<4x4xi32>
  %zero = tl.constant dense<0.0> : tensor<4x4xf32>
  %sel = tl.select %hit, %logits, %zero : tensor<4x4xi1>, tensor<4x4xf32>
  %picked = tl.reduce_sum %sel, axis = 1 : tensor<4x4xf32> -> tensor<4xf32>
  %nll = tl.sub %lse, %picked : tensor<4xf32>
  // expected-remark @+1 {{not fused as cross_entropy: the log-sum-exp is not over the class (last) axis}}
  %loss = tl.reduce_mean %nll, axis = 0 : tensor<4xf32> -> tensor<f32>
  return %loss : tensor<f32>
}
// -----

// The one-hot selection summed over rows.
// CHECK-LABEL: func.func @picked_over_rows
// CHECK-NOT: tl.cross_entropy
func.func @picked_over_rows(%logits: tensor<4x4xf32>, %t: tensor<4xi32>) -> tensor<f32> {
  %m = tl.reduce_max %logits, axis = 1 : tensor<4x4xf32> -> tensor<4xf32>
  %m2 = tl.reshape %m : tensor<4xf32> -> tensor<4x1xf32>
  %mb = tl.broadcast %m2, dims = [0, 1] : tensor<4x1xf32> -> tensor<4x4xf32>
  %sh = tl.sub %logits, %mb : tensor<4x4xf32>
  %e = tl.exp %sh : tensor<4x4xf32>
  %s = tl.reduce_sum %e, axis = 1 : tensor<4x4xf32> -> tensor<4xf32>
  %l = tl.log %s : tensor<4xf32>
  %lse = tl.add %l, %m : tensor<4xf32>
  %cls = tl.iota axis = 1 : tensor<4x4xi32>
  %t2 = tl.reshape %t : tensor<4xi32> -> tensor<4x1xi32>
  %tb = tl.broadcast %t2, dims = [0, 1] : tensor<4x1xi32> -> tensor<4x4xi32>
  %hit = tl.cmp eq, %cls, %tb : tensor<4x4xi32>
  %zero = tl.constant dense<0.0> : tensor<4x4xf32>
  %sel = tl.select %hit, %logits, %zero : tensor<4x4xi1>, tensor<4x4xf32>
  %picked = tl.reduce_sum %sel, axis = 0 : tensor<4x4xf32> -> tensor<4xf32>
  %nll = tl.sub %lse, %picked : tensor<4xf32>
  // expected-remark @+1 {{not fused as cross_entropy: the picked logits are summed over another axis than the class axis}}
  %loss = tl.reduce_mean %nll, axis = 0 : tensor<4xf32> -> tensor<f32>
  return %loss : tensor<f32>
}
// -----

// The one-hot iota over the row axis.
// CHECK-LABEL: func.func @one_hot_over_rows
// CHECK-NOT: tl.cross_entropy
func.func @one_hot_over_rows(%logits: tensor<4x4xf32>, %t: tensor<4xi32>) -> tensor<f32> {
  %m = tl.reduce_max %logits, axis = 1 : tensor<4x4xf32> -> tensor<4xf32>
  %m2 = tl.reshape %m : tensor<4xf32> -> tensor<4x1xf32>
  %mb = tl.broadcast %m2, dims = [0, 1] : tensor<4x1xf32> -> tensor<4x4xf32>
  %sh = tl.sub %logits, %mb : tensor<4x4xf32>
  %e = tl.exp %sh : tensor<4x4xf32>
  %s = tl.reduce_sum %e, axis = 1 : tensor<4x4xf32> -> tensor<4xf32>
  %l = tl.log %s : tensor<4xf32>
  %lse = tl.add %l, %m : tensor<4xf32>
  %cls = tl.iota axis = 0 : tensor<4x4xi32>
  %t2 = tl.reshape %t : tensor<4xi32> -> tensor<4x1xi32>
  %tb = tl.broadcast %t2, dims = [0, 1] : tensor<4x1xi32> -> tensor<4x4xi32>
  %hit = tl.cmp eq, %cls, %tb : tensor<4x4xi32>
  %zero = tl.constant dense<0.0> : tensor<4x4xf32>
  %sel = tl.select %hit, %logits, %zero : tensor<4x4xi1>, tensor<4x4xf32>
  %picked = tl.reduce_sum %sel, axis = 1 : tensor<4x4xf32> -> tensor<4xf32>
  %nll = tl.sub %lse, %picked : tensor<4xf32>
  // expected-remark @+1 {{not fused as cross_entropy: the one-hot mask is not over the class axis}}
  %loss = tl.reduce_mean %nll, axis = 0 : tensor<4xf32> -> tensor<f32>
  return %loss : tensor<f32>
}
// -----

// A batch of one (`--set micro_batch=1`): the ids arrive as [1, N], seen as
// [N] through unit reshapes; the fused op gets them reshaped.
// CHECK-LABEL: func.func @batch_of_one
// CHECK: %[[T:.*]] = tl.reshape %arg1 : tensor<1x6xi32> -> tensor<6xi32>
// CHECK: tl.cross_entropy %arg0, %[[T]]
func.func @batch_of_one(%logits: tensor<6x10xf32>, %t: tensor<1x6xi32>) -> tensor<f32> {
  %m = tl.reduce_max %logits, axis = 1 : tensor<6x10xf32> -> tensor<6xf32>
  %m2 = tl.reshape %m : tensor<6xf32> -> tensor<6x1xf32>
  %mb = tl.broadcast %m2, dims = [0, 1] : tensor<6x1xf32> -> tensor<6x10xf32>
  %sh = tl.sub %logits, %mb : tensor<6x10xf32>
  %e = tl.exp %sh : tensor<6x10xf32>
  %s = tl.reduce_sum %e, axis = 1 : tensor<6x10xf32> -> tensor<6xf32>
  %l = tl.log %s : tensor<6xf32>
  %lse = tl.add %l, %m : tensor<6xf32>
  %cls = tl.iota axis = 1 : tensor<6x10xi32>
  %t2 = tl.reshape %t : tensor<1x6xi32> -> tensor<6x1xi32>
  %tb = tl.broadcast %t2, dims = [0, 1] : tensor<6x1xi32> -> tensor<6x10xi32>
  %hit = tl.cmp eq, %cls, %tb : tensor<6x10xi32>
  %zero = tl.constant dense<0.0> : tensor<6x10xf32>
  %sel = tl.select %hit, %logits, %zero : tensor<6x10xi1>, tensor<6x10xf32>
  %picked = tl.reduce_sum %sel, axis = 1 : tensor<6x10xf32> -> tensor<6xf32>
  %nll = tl.sub %lse, %picked : tensor<6xf32>
  // expected-remark @+1 {{tl-fuse-cross-entropy: fused cross_entropy}}
  %loss = tl.reduce_mean %nll, axis = 0 : tensor<6xf32> -> tensor<f32>
  return %loss : tensor<f32>
}
