// RUN: tlc-opt %s --tl-fuse-attention -split-input-file | FileCheck %s
// RUN: tlc-opt %s --tl-fuse-attention=report=true -split-input-file -verify-diagnostics -o /dev/null

// Causal GQA, scale on the scores, mask by select: K and V are read unrepeated.
// CHECK-LABEL: func.func @causal_gqa
// CHECK: %[[O:.*]], %{{.*}} = tl.attention %arg0, %arg1, %arg2 scale = 2.500000e-01 causal : tensor<1x2x4x8xf32>, tensor<1x1x4x8xf32> -> tensor<1x2x4xf32>
// CHECK-NOT: tl.exp
// CHECK: return %[[O]]
func.func @causal_gqa(%q: tensor<1x2x4x8xf32>, %k: tensor<1x1x4x8xf32>, %v: tensor<1x1x4x8xf32>) -> tensor<1x2x4x8xf32> {
  %k5 = tl.reshape %k : tensor<1x1x4x8xf32> -> tensor<1x1x1x4x8xf32>
  %kb = tl.broadcast %k5, dims = [0, 1, 2, 3, 4] : tensor<1x1x1x4x8xf32> -> tensor<1x1x2x4x8xf32>
  %kr = tl.reshape %kb : tensor<1x1x2x4x8xf32> -> tensor<1x2x4x8xf32>
  %v5 = tl.reshape %v : tensor<1x1x4x8xf32> -> tensor<1x1x1x4x8xf32>
  %vb = tl.broadcast %v5, dims = [0, 1, 2, 3, 4] : tensor<1x1x1x4x8xf32> -> tensor<1x1x2x4x8xf32>
  %vr = tl.reshape %vb : tensor<1x1x2x4x8xf32> -> tensor<1x2x4x8xf32>
  %qk = tl.matmul %q, %kr {transpose_rhs} : tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32> -> tensor<1x2x4x4xf32>
  %c = tl.constant dense<0.25> : tensor<1x2x4x4xf32>
  %sc = tl.mul %qk, %c : tensor<1x2x4x4xf32>
  %row = tl.iota axis = 0 : tensor<4x4xi32>
  %col = tl.iota axis = 1 : tensor<4x4xi32>
  %m = tl.cmp ge, %row, %col : tensor<4x4xi32>
  %mb = tl.broadcast %m, dims = [2, 3] : tensor<4x4xi1> -> tensor<1x2x4x4xi1>
  %ninf = tl.constant dense<0xFF800000> : tensor<1x2x4x4xf32>
  %masked = tl.select %mb, %sc, %ninf : tensor<1x2x4x4xi1>, tensor<1x2x4x4xf32>
  %mx = tl.reduce_max %masked, axis = 3 : tensor<1x2x4x4xf32> -> tensor<1x2x4xf32>
  %mx4 = tl.reshape %mx : tensor<1x2x4xf32> -> tensor<1x2x4x1xf32>
  %mxb = tl.broadcast %mx4, dims = [0, 1, 2, 3] : tensor<1x2x4x1xf32> -> tensor<1x2x4x4xf32>
  %sh = tl.sub %masked, %mxb : tensor<1x2x4x4xf32>
  %e = tl.exp %sh : tensor<1x2x4x4xf32>
  %sm = tl.reduce_sum %e, axis = 3 : tensor<1x2x4x4xf32> -> tensor<1x2x4xf32>
  %sm4 = tl.reshape %sm : tensor<1x2x4xf32> -> tensor<1x2x4x1xf32>
  %smb = tl.broadcast %sm4, dims = [0, 1, 2, 3] : tensor<1x2x4x1xf32> -> tensor<1x2x4x4xf32>
  %p = tl.div %e, %smb : tensor<1x2x4x4xf32>
  // expected-remark @+1 {{tl-fuse-attention: fused attention}}
  %o = tl.matmul %p, %vr : tensor<1x2x4x4xf32>, tensor<1x2x4x8xf32> -> tensor<1x2x4x8xf32>
  return %o : tensor<1x2x4x8xf32>
}
// -----

// Not causal; the scale multiplies q.
// CHECK-LABEL: func.func @scaled_q
// CHECK: tl.attention %arg0, %arg1, %arg2 scale = 1.250000e-01 :
func.func @scaled_q(%q: tensor<1x2x4x8xf32>, %k: tensor<1x1x4x8xf32>, %v: tensor<1x1x4x8xf32>) -> tensor<1x2x4x8xf32> {
  %k5 = tl.reshape %k : tensor<1x1x4x8xf32> -> tensor<1x1x1x4x8xf32>
  %kb = tl.broadcast %k5, dims = [0, 1, 2, 3, 4] : tensor<1x1x1x4x8xf32> -> tensor<1x1x2x4x8xf32>
  %kr = tl.reshape %kb : tensor<1x1x2x4x8xf32> -> tensor<1x2x4x8xf32>
  %v5 = tl.reshape %v : tensor<1x1x4x8xf32> -> tensor<1x1x1x4x8xf32>
  %vb = tl.broadcast %v5, dims = [0, 1, 2, 3, 4] : tensor<1x1x1x4x8xf32> -> tensor<1x1x2x4x8xf32>
  %vr = tl.reshape %vb : tensor<1x1x2x4x8xf32> -> tensor<1x2x4x8xf32>
  %c = tl.constant dense<0.125> : tensor<1x2x4x8xf32>
  %qs = tl.mul %c, %q : tensor<1x2x4x8xf32>
  %qk = tl.matmul %qs, %kr {transpose_rhs} : tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32> -> tensor<1x2x4x4xf32>
  %mx = tl.reduce_max %qk, axis = 3 : tensor<1x2x4x4xf32> -> tensor<1x2x4xf32>
  %mx4 = tl.reshape %mx : tensor<1x2x4xf32> -> tensor<1x2x4x1xf32>
  %mxb = tl.broadcast %mx4, dims = [0, 1, 2, 3] : tensor<1x2x4x1xf32> -> tensor<1x2x4x4xf32>
  %sh = tl.sub %qk, %mxb : tensor<1x2x4x4xf32>
  %e = tl.exp %sh : tensor<1x2x4x4xf32>
  %sm = tl.reduce_sum %e, axis = 3 : tensor<1x2x4x4xf32> -> tensor<1x2x4xf32>
  %sm4 = tl.reshape %sm : tensor<1x2x4xf32> -> tensor<1x2x4x1xf32>
  %smb = tl.broadcast %sm4, dims = [0, 1, 2, 3] : tensor<1x2x4x1xf32> -> tensor<1x2x4x4xf32>
  %p = tl.div %e, %smb : tensor<1x2x4x4xf32>
  // expected-remark @+1 {{fused attention}}
  %o = tl.matmul %p, %vr : tensor<1x2x4x4xf32>, tensor<1x2x4x8xf32> -> tensor<1x2x4x8xf32>
  return %o : tensor<1x2x4x8xf32>
}
// -----

// An added -inf mask and the scores divided by sqrt(d).
// CHECK-LABEL: func.func @additive_mask
// CHECK: tl.attention %arg0, %arg1, %arg2 scale = 5.000000e-01 causal
func.func @additive_mask(%q: tensor<1x2x4x8xf32>, %k: tensor<1x1x4x8xf32>, %v: tensor<1x1x4x8xf32>) -> tensor<1x2x4x8xf32> {
  %k5 = tl.reshape %k : tensor<1x1x4x8xf32> -> tensor<1x1x1x4x8xf32>
  %kb = tl.broadcast %k5, dims = [0, 1, 2, 3, 4] : tensor<1x1x1x4x8xf32> -> tensor<1x1x2x4x8xf32>
  %kr = tl.reshape %kb : tensor<1x1x2x4x8xf32> -> tensor<1x2x4x8xf32>
  %v5 = tl.reshape %v : tensor<1x1x4x8xf32> -> tensor<1x1x1x4x8xf32>
  %vb = tl.broadcast %v5, dims = [0, 1, 2, 3, 4] : tensor<1x1x1x4x8xf32> -> tensor<1x1x2x4x8xf32>
  %vr = tl.reshape %vb : tensor<1x1x2x4x8xf32> -> tensor<1x2x4x8xf32>
  %qk = tl.matmul %q, %kr {transpose_rhs} : tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32> -> tensor<1x2x4x4xf32>
  %c = tl.constant dense<2.0> : tensor<1x2x4x4xf32>
  %sc = tl.div %qk, %c : tensor<1x2x4x4xf32>
  %mask = tl.constant dense<[[0.0, 0xFF800000, 0xFF800000, 0xFF800000], [0.0, 0.0, 0xFF800000, 0xFF800000], [0.0, 0.0, 0.0, 0xFF800000], [0.0, 0.0, 0.0, 0.0]]> : tensor<4x4xf32>
  %maskb = tl.broadcast %mask, dims = [2, 3] : tensor<4x4xf32> -> tensor<1x2x4x4xf32>
  %masked = tl.add %sc, %maskb : tensor<1x2x4x4xf32>
  %mx = tl.reduce_max %masked, axis = 3 : tensor<1x2x4x4xf32> -> tensor<1x2x4xf32>
  %mx4 = tl.reshape %mx : tensor<1x2x4xf32> -> tensor<1x2x4x1xf32>
  %mxb = tl.broadcast %mx4, dims = [0, 1, 2, 3] : tensor<1x2x4x1xf32> -> tensor<1x2x4x4xf32>
  %sh = tl.sub %masked, %mxb : tensor<1x2x4x4xf32>
  %e = tl.exp %sh : tensor<1x2x4x4xf32>
  %sm = tl.reduce_sum %e, axis = 3 : tensor<1x2x4x4xf32> -> tensor<1x2x4xf32>
  %sm4 = tl.reshape %sm : tensor<1x2x4xf32> -> tensor<1x2x4x1xf32>
  %smb = tl.broadcast %sm4, dims = [0, 1, 2, 3] : tensor<1x2x4x1xf32> -> tensor<1x2x4x4xf32>
  %p = tl.div %e, %smb : tensor<1x2x4x4xf32>
  // expected-remark @+1 {{fused attention}}
  %o = tl.matmul %p, %vr : tensor<1x2x4x4xf32>, tensor<1x2x4x8xf32> -> tensor<1x2x4x8xf32>
  return %o : tensor<1x2x4x8xf32>
}
// -----

// row > col hides the diagonal: not the causal mask.
// CHECK-LABEL: func.func @strict_mask
// CHECK-NOT: tl.attention
func.func @strict_mask(%q: tensor<1x2x4x8xf32>, %k: tensor<1x1x4x8xf32>, %v: tensor<1x1x4x8xf32>) -> tensor<1x2x4x8xf32> {
  %k5 = tl.reshape %k : tensor<1x1x4x8xf32> -> tensor<1x1x1x4x8xf32>
  %kb = tl.broadcast %k5, dims = [0, 1, 2, 3, 4] : tensor<1x1x1x4x8xf32> -> tensor<1x1x2x4x8xf32>
  %kr = tl.reshape %kb : tensor<1x1x2x4x8xf32> -> tensor<1x2x4x8xf32>
  %v5 = tl.reshape %v : tensor<1x1x4x8xf32> -> tensor<1x1x1x4x8xf32>
  %vb = tl.broadcast %v5, dims = [0, 1, 2, 3, 4] : tensor<1x1x1x4x8xf32> -> tensor<1x1x2x4x8xf32>
  %vr = tl.reshape %vb : tensor<1x1x2x4x8xf32> -> tensor<1x2x4x8xf32>
  %qk = tl.matmul %q, %kr {transpose_rhs} : tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32> -> tensor<1x2x4x4xf32>
  %row = tl.iota axis = 0 : tensor<4x4xi32>
  %col = tl.iota axis = 1 : tensor<4x4xi32>
  %m = tl.cmp gt, %row, %col : tensor<4x4xi32>
  %mb = tl.broadcast %m, dims = [2, 3] : tensor<4x4xi1> -> tensor<1x2x4x4xi1>
  %ninf = tl.constant dense<0xFF800000> : tensor<1x2x4x4xf32>
  %masked = tl.select %mb, %qk, %ninf : tensor<1x2x4x4xi1>, tensor<1x2x4x4xf32>
  %mx = tl.reduce_max %masked, axis = 3 : tensor<1x2x4x4xf32> -> tensor<1x2x4xf32>
  %mx4 = tl.reshape %mx : tensor<1x2x4xf32> -> tensor<1x2x4x1xf32>
  %mxb = tl.broadcast %mx4, dims = [0, 1, 2, 3] : tensor<1x2x4x1xf32> -> tensor<1x2x4x4xf32>
  %sh = tl.sub %masked, %mxb : tensor<1x2x4x4xf32>
  %e = tl.exp %sh : tensor<1x2x4x4xf32>
  %sm = tl.reduce_sum %e, axis = 3 : tensor<1x2x4x4xf32> -> tensor<1x2x4xf32>
  %sm4 = tl.reshape %sm : tensor<1x2x4xf32> -> tensor<1x2x4x1xf32>
  %smb = tl.broadcast %sm4, dims = [0, 1, 2, 3] : tensor<1x2x4x1xf32> -> tensor<1x2x4x4xf32>
  %p = tl.div %e, %smb : tensor<1x2x4x4xf32>
  // expected-remark @+1 {{not fused as attention: the mask is not the causal mask row >= column}}
  %o = tl.matmul %p, %vr : tensor<1x2x4x4xf32>, tensor<1x2x4x8xf32> -> tensor<1x2x4x8xf32>
  return %o : tensor<1x2x4x8xf32>
}
// -----

// KV heads tiled as h % KV instead of grouped as h / G.
// CHECK-LABEL: func.func @interleaved_heads
// CHECK-NOT: tl.attention
func.func @interleaved_heads(%q: tensor<1x2x4x8xf32>, %k: tensor<1x1x4x8xf32>, %v: tensor<1x1x4x8xf32>) -> tensor<1x2x4x8xf32> {
  %k5 = tl.reshape %k : tensor<1x1x4x8xf32> -> tensor<1x1x1x4x8xf32>
  %kb = tl.broadcast %k5, dims = [0, 1, 2, 3, 4] : tensor<1x1x1x4x8xf32> -> tensor<1x2x1x4x8xf32>
  %kr = tl.reshape %kb : tensor<1x2x1x4x8xf32> -> tensor<1x2x4x8xf32>
  %v5 = tl.reshape %v : tensor<1x1x4x8xf32> -> tensor<1x1x1x4x8xf32>
  %vb = tl.broadcast %v5, dims = [0, 1, 2, 3, 4] : tensor<1x1x1x4x8xf32> -> tensor<1x1x2x4x8xf32>
  %vr = tl.reshape %vb : tensor<1x1x2x4x8xf32> -> tensor<1x2x4x8xf32>
  %qk = tl.matmul %q, %kr {transpose_rhs} : tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32> -> tensor<1x2x4x4xf32>
  %mx = tl.reduce_max %qk, axis = 3 : tensor<1x2x4x4xf32> -> tensor<1x2x4xf32>
  %mx4 = tl.reshape %mx : tensor<1x2x4xf32> -> tensor<1x2x4x1xf32>
  %mxb = tl.broadcast %mx4, dims = [0, 1, 2, 3] : tensor<1x2x4x1xf32> -> tensor<1x2x4x4xf32>
  %sh = tl.sub %qk, %mxb : tensor<1x2x4x4xf32>
  %e = tl.exp %sh : tensor<1x2x4x4xf32>
  %sm = tl.reduce_sum %e, axis = 3 : tensor<1x2x4x4xf32> -> tensor<1x2x4xf32>
  %sm4 = tl.reshape %sm : tensor<1x2x4xf32> -> tensor<1x2x4x1xf32>
  %smb = tl.broadcast %sm4, dims = [0, 1, 2, 3] : tensor<1x2x4x1xf32> -> tensor<1x2x4x4xf32>
  %p = tl.div %e, %smb : tensor<1x2x4x4xf32>
  // expected-remark @+1 {{not fused as attention: the key/value heads are repeated in another order than query head h -> KV head h / G}}
  %o = tl.matmul %p, %vr : tensor<1x2x4x4xf32>, tensor<1x2x4x8xf32> -> tensor<1x2x4x8xf32>
  return %o : tensor<1x2x4x8xf32>
}
// -----

// Softmax over the query axis.
// CHECK-LABEL: func.func @wrong_softmax_axis
// CHECK-NOT: tl.attention
func.func @wrong_softmax_axis(%q: tensor<1x2x4x8xf32>, %k: tensor<1x1x4x8xf32>, %v: tensor<1x1x4x8xf32>) -> tensor<1x2x4x8xf32> {
  %k5 = tl.reshape %k : tensor<1x1x4x8xf32> -> tensor<1x1x1x4x8xf32>
  %kb = tl.broadcast %k5, dims = [0, 1, 2, 3, 4] : tensor<1x1x1x4x8xf32> -> tensor<1x1x2x4x8xf32>
  %kr = tl.reshape %kb : tensor<1x1x2x4x8xf32> -> tensor<1x2x4x8xf32>
  %v5 = tl.reshape %v : tensor<1x1x4x8xf32> -> tensor<1x1x1x4x8xf32>
  %vb = tl.broadcast %v5, dims = [0, 1, 2, 3, 4] : tensor<1x1x1x4x8xf32> -> tensor<1x1x2x4x8xf32>
  %vr = tl.reshape %vb : tensor<1x1x2x4x8xf32> -> tensor<1x2x4x8xf32>
  %qk = tl.matmul %q, %kr {transpose_rhs} : tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32> -> tensor<1x2x4x4xf32>
  %mx = tl.reduce_max %qk, axis = 2 : tensor<1x2x4x4xf32> -> tensor<1x2x4xf32>
  %mxb = tl.broadcast %mx, dims = [0, 1, 3] : tensor<1x2x4xf32> -> tensor<1x2x4x4xf32>
  %sh = tl.sub %qk, %mxb : tensor<1x2x4x4xf32>
  %e = tl.exp %sh : tensor<1x2x4x4xf32>
  %sm = tl.reduce_sum %e, axis = 2 : tensor<1x2x4x4xf32> -> tensor<1x2x4xf32>
  %smb = tl.broadcast %sm, dims = [0, 1, 3] : tensor<1x2x4xf32> -> tensor<1x2x4x4xf32>
  %p = tl.div %e, %smb : tensor<1x2x4x4xf32>
  // expected-remark @+1 {{not fused as attention: the factor is repeated along axis 2, not only along the last axis: it is not one value per row}}
  %o = tl.matmul %p, %vr : tensor<1x2x4x4xf32>, tensor<1x2x4x8xf32> -> tensor<1x2x4x8xf32>
  return %o : tensor<1x2x4x8xf32>
}

// -----

// Square scores [4, 4]: the row sum broadcast along the query axis (dims =
// [0, 1, 3]) divides each *column*: the element count matches, the axis does not.
// CHECK-LABEL: func.func @sum_per_column
// CHECK-NOT: tl.attention
func.func @sum_per_column(%q: tensor<1x2x4x8xf32>, %k: tensor<1x2x4x8xf32>, %v: tensor<1x2x4x8xf32>) -> tensor<1x2x4x8xf32> {
  %qk = tl.matmul %q, %k {transpose_rhs} : tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32> -> tensor<1x2x4x4xf32>
  %mx = tl.reduce_max %qk, axis = 3 : tensor<1x2x4x4xf32> -> tensor<1x2x4xf32>
  %mx4 = tl.reshape %mx : tensor<1x2x4xf32> -> tensor<1x2x4x1xf32>
  %mxb = tl.broadcast %mx4, dims = [0, 1, 2, 3] : tensor<1x2x4x1xf32> -> tensor<1x2x4x4xf32>
  %sh = tl.sub %qk, %mxb : tensor<1x2x4x4xf32>
  %e = tl.exp %sh : tensor<1x2x4x4xf32>
  %sm = tl.reduce_sum %e, axis = 3 : tensor<1x2x4x4xf32> -> tensor<1x2x4xf32>
  %smb = tl.broadcast %sm, dims = [0, 1, 3] : tensor<1x2x4xf32> -> tensor<1x2x4x4xf32>
  %p = tl.div %e, %smb : tensor<1x2x4x4xf32>
  // expected-remark @+1 {{not fused as attention: the factor is repeated along axis 2, not only along the last axis: it is not one value per row}}
  %o = tl.matmul %p, %v : tensor<1x2x4x4xf32>, tensor<1x2x4x8xf32> -> tensor<1x2x4x8xf32>
  return %o : tensor<1x2x4x8xf32>
}
// -----

// The maximum subtracted per column.
// CHECK-LABEL: func.func @max_per_column
// CHECK-NOT: tl.attention
func.func @max_per_column(%q: tensor<1x2x4x8xf32>, %k: tensor<1x2x4x8xf32>, %v: tensor<1x2x4x8xf32>) -> tensor<1x2x4x8xf32> {
  %qk = tl.matmul %q, %k {transpose_rhs} : tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32> -> tensor<1x2x4x4xf32>
  %mx = tl.reduce_max %qk, axis = 3 : tensor<1x2x4x4xf32> -> tensor<1x2x4xf32>
  %mxb = tl.broadcast %mx, dims = [0, 1, 3] : tensor<1x2x4xf32> -> tensor<1x2x4x4xf32>
  %sh = tl.sub %qk, %mxb : tensor<1x2x4x4xf32>
  %e = tl.exp %sh : tensor<1x2x4x4xf32>
  %sm = tl.reduce_sum %e, axis = 3 : tensor<1x2x4x4xf32> -> tensor<1x2x4xf32>
  %sm4 = tl.reshape %sm : tensor<1x2x4xf32> -> tensor<1x2x4x1xf32>
  %smb = tl.broadcast %sm4, dims = [0, 1, 2, 3] : tensor<1x2x4x1xf32> -> tensor<1x2x4x4xf32>
  %p = tl.div %e, %smb : tensor<1x2x4x4xf32>
  // expected-remark @+1 {{not fused as attention: the factor is repeated along axis 2, not only along the last axis: it is not one value per row}}
  %o = tl.matmul %p, %v : tensor<1x2x4x4xf32>, tensor<1x2x4x8xf32> -> tensor<1x2x4x8xf32>
  return %o : tensor<1x2x4x8xf32>
}
// -----

// The sum over the query axis, broadcast back per row (square scores).
// CHECK-LABEL: func.func @sum_over_queries
// CHECK-NOT: tl.attention
func.func @sum_over_queries(%q: tensor<1x2x4x8xf32>, %k: tensor<1x2x4x8xf32>, %v: tensor<1x2x4x8xf32>) -> tensor<1x2x4x8xf32> {
  %qk = tl.matmul %q, %k {transpose_rhs} : tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32> -> tensor<1x2x4x4xf32>
  %mx = tl.reduce_max %qk, axis = 3 : tensor<1x2x4x4xf32> -> tensor<1x2x4xf32>
  %mx4 = tl.reshape %mx : tensor<1x2x4xf32> -> tensor<1x2x4x1xf32>
  %mxb = tl.broadcast %mx4, dims = [0, 1, 2, 3] : tensor<1x2x4x1xf32> -> tensor<1x2x4x4xf32>
  %sh = tl.sub %qk, %mxb : tensor<1x2x4x4xf32>
  %e = tl.exp %sh : tensor<1x2x4x4xf32>
  %sm = tl.reduce_sum %e, axis = 2 : tensor<1x2x4x4xf32> -> tensor<1x2x4xf32>
  %sm4 = tl.reshape %sm : tensor<1x2x4xf32> -> tensor<1x2x4x1xf32>
  %smb = tl.broadcast %sm4, dims = [0, 1, 2, 3] : tensor<1x2x4x1xf32> -> tensor<1x2x4x4xf32>
  %p = tl.div %e, %smb : tensor<1x2x4x4xf32>
  // expected-remark @+1 {{not fused as attention: the softmax is not over the key axis}}
  %o = tl.matmul %p, %v : tensor<1x2x4x4xf32>, tensor<1x2x4x8xf32> -> tensor<1x2x4x8xf32>
  return %o : tensor<1x2x4x8xf32>
}
// -----

// The maximum over the query axis: exact in real arithmetic (softmax is
// shift-invariant per row), but not the stabilised form tl.attention computes.
// CHECK-LABEL: func.func @max_over_queries
// CHECK-NOT: tl.attention
func.func @max_over_queries(%q: tensor<1x2x4x8xf32>, %k: tensor<1x2x4x8xf32>, %v: tensor<1x2x4x8xf32>) -> tensor<1x2x4x8xf32> {
  %qk = tl.matmul %q, %k {transpose_rhs} : tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32> -> tensor<1x2x4x4xf32>
  %mx = tl.reduce_max %qk, axis = 2 : tensor<1x2x4x4xf32> -> tensor<1x2x4xf32>
  %mx4 = tl.reshape %mx : tensor<1x2x4xf32> -> tensor<1x2x4x1xf32>
  %mxb = tl.broadcast %mx4, dims = [0, 1, 2, 3] : tensor<1x2x4x1xf32> -> tensor<1x2x4x4xf32>
  %sh = tl.sub %qk, %mxb : tensor<1x2x4x4xf32>
  %e = tl.exp %sh : tensor<1x2x4x4xf32>
  %sm = tl.reduce_sum %e, axis = 3 : tensor<1x2x4x4xf32> -> tensor<1x2x4xf32>
  %sm4 = tl.reshape %sm : tensor<1x2x4xf32> -> tensor<1x2x4x1xf32>
  %smb = tl.broadcast %sm4, dims = [0, 1, 2, 3] : tensor<1x2x4x1xf32> -> tensor<1x2x4x4xf32>
  %p = tl.div %e, %smb : tensor<1x2x4x4xf32>
  // expected-remark @+1 {{not fused as attention: the exp is not of the scores minus their maximum over the key axis}}
  %o = tl.matmul %p, %v : tensor<1x2x4x4xf32>, tensor<1x2x4x8xf32> -> tensor<1x2x4x8xf32>
  return %o : tensor<1x2x4x8xf32>
}
// -----

// heads == seq: the causal mask broadcast onto (head, query) instead of
// (query, key).
// CHECK-LABEL: func.func @mask_on_heads
// CHECK-NOT: tl.attention
func.func @mask_on_heads(%q: tensor<1x4x4x8xf32>, %k: tensor<1x4x4x8xf32>, %v: tensor<1x4x4x8xf32>) -> tensor<1x4x4x8xf32> {
  %qk = tl.matmul %q, %k {transpose_rhs} : tensor<1x4x4x8xf32>, tensor<1x4x4x8xf32> -> tensor<1x4x4x4xf32>
  %row = tl.iota axis = 0 : tensor<4x4xi32>
  %col = tl.iota axis = 1 : tensor<4x4xi32>
  %m = tl.cmp ge, %row, %col : tensor<4x4xi32>
  %mb = tl.broadcast %m, dims = [1, 2] : tensor<4x4xi1> -> tensor<1x4x4x4xi1>
  %ninf = tl.constant dense<0xFF800000> : tensor<1x4x4x4xf32>
  %masked = tl.select %mb, %qk, %ninf : tensor<1x4x4x4xi1>, tensor<1x4x4x4xf32>
  %mx = tl.reduce_max %masked, axis = 3 : tensor<1x4x4x4xf32> -> tensor<1x4x4xf32>
  %mx4 = tl.reshape %mx : tensor<1x4x4xf32> -> tensor<1x4x4x1xf32>
  %mxb = tl.broadcast %mx4, dims = [0, 1, 2, 3] : tensor<1x4x4x1xf32> -> tensor<1x4x4x4xf32>
  %sh = tl.sub %masked, %mxb : tensor<1x4x4x4xf32>
  %e = tl.exp %sh : tensor<1x4x4x4xf32>
  %sm = tl.reduce_sum %e, axis = 3 : tensor<1x4x4x4xf32> -> tensor<1x4x4xf32>
  %sm4 = tl.reshape %sm : tensor<1x4x4xf32> -> tensor<1x4x4x1xf32>
  %smb = tl.broadcast %sm4, dims = [0, 1, 2, 3] : tensor<1x4x4x1xf32> -> tensor<1x4x4x4xf32>
  %p = tl.div %e, %smb : tensor<1x4x4x4xf32>
  // expected-remark @+1 {{not fused as attention: the mask is not broadcast onto the query and key axes in order}}
  %o = tl.matmul %p, %v : tensor<1x4x4x4xf32>, tensor<1x4x4x8xf32> -> tensor<1x4x4x8xf32>
  return %o : tensor<1x4x4x8xf32>
}
