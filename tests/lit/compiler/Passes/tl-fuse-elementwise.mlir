// RUN: tlc-opt %s --tl-fuse-elementwise -split-input-file | FileCheck %s

// SwiGLU's silu(gate) * up and a following residual add: one group; the
// splat constant is recomputed inside, the matmul stays outside.
// CHECK-LABEL: func.func @chain
// CHECK: %[[F:.*]] = tl.fusion(%arg0, %arg1, %arg2) : (tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32> {
// CHECK-NEXT: ^bb0(%[[G:.*]]: tensor<4x8xf32>, %[[U:.*]]: tensor<4x8xf32>, %[[R:.*]]: tensor<4x8xf32>):
// CHECK-NEXT: tl.constant dense<5.000000e-01>
// CHECK-NEXT: tl.silu %[[G]]
// CHECK-NEXT: tl.mul
// CHECK-NEXT: tl.mul
// CHECK-NEXT: tl.add
// CHECK-NEXT: tl.yield
// CHECK: tl.matmul %[[F]]
func.func @chain(%gate: tensor<4x8xf32>, %up: tensor<4x8xf32>, %res: tensor<4x8xf32>, %w: tensor<8x8xf32>) -> tensor<4x8xf32> {
  %half = tl.constant dense<0.5> : tensor<4x8xf32>
  %s = tl.silu %gate : tensor<4x8xf32>
  %h = tl.mul %s, %up : tensor<4x8xf32>
  %h2 = tl.mul %h, %half : tensor<4x8xf32>
  %r = tl.add %h2, %res : tensor<4x8xf32>
  %y = tl.matmul %r, %w : tensor<4x8xf32>, tensor<8x8xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// exp(x) has two users in different chains: it is computed once, by its own
// group, never duplicated into both consumers.
// CHECK-LABEL: func.func @no_duplication
// CHECK-COUNT-1: tl.exp
// CHECK-NOT: tl.exp
func.func @no_duplication(%x: tensor<4x8xf32>, %y: tensor<4x8xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>) {
  %n = tl.neg %x : tensor<4x8xf32>
  %e = tl.exp %n : tensor<4x8xf32>
  %a = tl.mul %e, %y : tensor<4x8xf32>
  %a2 = tl.sqrt %a : tensor<4x8xf32>
  %b = tl.add %e, %y : tensor<4x8xf32>
  %b2 = tl.log %b : tensor<4x8xf32>
  return %a2, %b2 : tensor<4x8xf32>, tensor<4x8xf32>
}

// -----

// A reduction whose result is broadcast back is computed once, by itself:
// inside the group that reads it, every element would redo the reduction
// (softmax's row sum once per element of the row). Softmax is four kernels:
// max, exp(x - max), sum, exp / sum.
// CHECK-LABEL: func.func @softmax
// CHECK: %[[M:.*]] = tl.reduce_max %arg0
// CHECK: %[[E:.*]] = tl.fusion(%[[M]], %arg0)
// CHECK-NOT: tl.reduce
// CHECK: tl.exp
// CHECK: tl.yield
// CHECK: %[[Z:.*]] = tl.reduce_sum %[[E]]
// CHECK: tl.fusion(%[[Z]], %[[E]])
// CHECK-NOT: tl.reduce
// CHECK: tl.div
// CHECK: tl.yield
// CHECK-NOT: tl.exp
func.func @softmax(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %m = tl.reduce_max %x, axis = 1 : tensor<4x8xf32> -> tensor<4xf32>
  %mb = tl.broadcast %m, dims = [0] : tensor<4xf32> -> tensor<4x8xf32>
  %s = tl.sub %x, %mb : tensor<4x8xf32>
  %e = tl.exp %s : tensor<4x8xf32>
  %z = tl.reduce_sum %e, axis = 1 : tensor<4x8xf32> -> tensor<4xf32>
  %zb = tl.broadcast %z, dims = [0] : tensor<4xf32> -> tensor<4x8xf32>
  %p = tl.div %e, %zb : tensor<4x8xf32>
  return %p : tensor<4x8xf32>
}

// -----

// Lone ops and shape plumbing alone are left as they are.
// CHECK-LABEL: func.func @nothing_to_fuse
// CHECK-NOT: tl.fusion
func.func @nothing_to_fuse(%x: tensor<4x8xf32>) -> tensor<8x4xf32> {
  %e = tl.exp %x : tensor<4x8xf32>
  %t = tl.transpose %e, perm = [1, 0] : tensor<4x8xf32> -> tensor<8x4xf32>
  %r = tl.reshape %t : tensor<8x4xf32> -> tensor<32xf32>
  %b = tl.reshape %r : tensor<32xf32> -> tensor<8x4xf32>
  return %b : tensor<8x4xf32>
}

// -----

// A reduction whose elements are each needed once joins the group: the
// row sum of squares, scaled (one kernel, one loop per row).
// CHECK-LABEL: func.func @reduction_root
// CHECK: tl.fusion(%arg0)
// CHECK: tl.reduce_sum
// CHECK: tl.sqrt
// CHECK: tl.yield
func.func @reduction_root(%x: tensor<4x8xf32>) -> tensor<4xf32> {
  %sq = tl.mul %x, %x : tensor<4x8xf32>
  %s = tl.reduce_sum %sq, axis = 1 : tensor<4x8xf32> -> tensor<4xf32>
  %r = tl.sqrt %s : tensor<4xf32>
  return %r : tensor<4xf32>
}

// -----

// A mean broadcast through an elementwise op (sum * 1/n, then broadcast):
// the reduction is still kept out, the cheap scaling stays in.
// CHECK-LABEL: func.func @mean_through_scale
// CHECK: %[[S:.*]] = tl.reduce_sum %arg0
// CHECK: tl.fusion(%[[S]], %arg0)
// CHECK-NOT: tl.reduce_sum
// CHECK: tl.yield
func.func @mean_through_scale(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %s = tl.reduce_sum %x, axis = 1 : tensor<4x8xf32> -> tensor<4xf32>
  %n = tl.constant dense<0.125> : tensor<4xf32>
  %m = tl.mul %s, %n : tensor<4xf32>
  %mb = tl.broadcast %m, dims = [0] : tensor<4xf32> -> tensor<4x8xf32>
  %c = tl.sub %x, %mb : tensor<4x8xf32>
  return %c : tensor<4x8xf32>
}

// -----

// A square softmax scaled by a per-row factor: the differential fusion tester
// (compiler/Verify) mutates its axes and broadcasts.
// CHECK-LABEL: func.func @square_rows
// CHECK: tl.reduce_max %arg0
// CHECK: tl.fusion
// CHECK: tl.reduce_sum
// CHECK: tl.fusion
func.func @square_rows(%x: tensor<4x4xf32>, %g: tensor<4xf32>) -> tensor<4x4xf32> {
  %m = tl.reduce_max %x, axis = 1 : tensor<4x4xf32> -> tensor<4xf32>
  %mb = tl.broadcast %m, dims = [0] : tensor<4xf32> -> tensor<4x4xf32>
  %s = tl.sub %x, %mb : tensor<4x4xf32>
  %e = tl.exp %s : tensor<4x4xf32>
  %z = tl.reduce_sum %e, axis = 1 : tensor<4x4xf32> -> tensor<4xf32>
  %zg = tl.div %g, %z : tensor<4xf32>
  %zb = tl.broadcast %zg, dims = [0] : tensor<4xf32> -> tensor<4x4xf32>
  %p = tl.mul %e, %zb : tensor<4x4xf32>
  return %p : tensor<4x4xf32>
}
