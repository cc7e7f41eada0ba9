// RUN: tlc-opt %s --tl-autodiff -split-input-file | FileCheck %s

// A value used twice gets the sum of its cotangents; results are the loss then
// one gradient per parameter, named after it.
// CHECK-LABEL: func.func @square_sum
// CHECK-SAME: -> (tensor<f32> {tl.output = "loss"}, tensor<4xf32> {tl.grad = "x"})
// CHECK: %[[SQ:.*]] = tl.mul %arg0, %arg0
// CHECK: %[[SUM:.*]] = tl.reduce_sum %[[SQ]]
// CHECK: %[[ONE:.*]] = tl.constant dense<1.000000e+00> : tensor<f32>
// CHECK: %[[G:.*]] = tl.broadcast %[[ONE]], dims = [] : tensor<f32> -> tensor<4xf32>
// CHECK: %[[A:.*]] = tl.mul %[[G]], %arg0
// CHECK: %[[B:.*]] = tl.mul %[[G]], %arg0
// CHECK: %[[DX:.*]] = tl.add %[[A]], %[[B]]
// CHECK: return %[[SUM]], %[[DX]]
func.func @square_sum(%x: tensor<4xf32> {tl.param = "x"}) -> tensor<f32> {
  %0 = tl.mul %x, %x : tensor<4xf32>
  %1 = tl.reduce_sum %0, axis = 0 : tensor<4xf32> -> tensor<f32>
  return %1 : tensor<f32>
}

// -----

// A linear layer: dW = G^T X (batch folded into rows), and no cotangent is
// built for the data input x: that work reaches no parameter.
// CHECK-LABEL: func.func @linear
// CHECK-SAME: {tl.grad = "w"}
// CHECK: %[[Y:.*]] = tl.matmul %arg1, %arg0 {transpose_rhs}
// CHECK: %[[XF:.*]] = tl.reshape %arg1 : tensor<2x3x4xf32> -> tensor<6x4xf32>
// CHECK: %[[GF:.*]] = tl.reshape %{{.*}} : tensor<2x3x5xf32> -> tensor<6x5xf32>
// CHECK: %[[DW:.*]] = tl.matmul %[[GF]], %[[XF]] {transpose_lhs} : tensor<6x5xf32>, tensor<6x4xf32> -> tensor<5x4xf32>
// CHECK-NOT: tl.matmul
// CHECK: return %{{.*}}, %[[DW]]
func.func @linear(%w: tensor<5x4xf32> {tl.param = "w"}, %x: tensor<2x3x4xf32> {tl.input = "x"}) -> tensor<f32> {
  %y = tl.matmul %x, %w {transpose_rhs} : tensor<2x3x4xf32>, tensor<5x4xf32> -> tensor<2x3x5xf32>
  %a = tl.reduce_sum %y, axis = 2 : tensor<2x3x5xf32> -> tensor<2x3xf32>
  %b = tl.reduce_sum %a, axis = 1 : tensor<2x3xf32> -> tensor<2xf32>
  %c = tl.reduce_mean %b, axis = 0 : tensor<2xf32> -> tensor<f32>
  return %c : tensor<f32>
}

// -----

// Broadcast's cotangent is reduced back to the operand shape; forward values
// (exp's result) are reused, not recomputed.
// CHECK-LABEL: func.func @broadcast_exp
// CHECK: %[[E:.*]] = tl.exp
// CHECK-NOT: tl.exp
// CHECK: tl.mul %{{.*}}, %[[E]]
// CHECK: %[[R:.*]] = tl.reduce_sum %{{.*}}, axis = 0 : tensor<3x4xf32> -> tensor<4xf32>
// CHECK: return %{{.*}}, %[[R]]
func.func @broadcast_exp(%b: tensor<4xf32> {tl.param = "b"}) -> tensor<f32> {
  %0 = tl.broadcast %b, dims = [1] : tensor<4xf32> -> tensor<3x4xf32>
  %1 = tl.exp %0 : tensor<3x4xf32>
  %2 = tl.reduce_sum %1, axis = 1 : tensor<3x4xf32> -> tensor<3xf32>
  %3 = tl.reduce_sum %2, axis = 0 : tensor<3xf32> -> tensor<f32>
  return %3 : tensor<f32>
}

// -----

// The embedding's gradient scatters rows back by id; ids get none.
// CHECK-LABEL: func.func @embedding
// CHECK: tl.scatter_add %{{.*}}[%arg1] : tensor<2x3xf32>, tensor<2xi32> -> tensor<10x3xf32>
func.func @embedding(%t: tensor<10x3xf32> {tl.param = "t"}, %ids: tensor<2xi32> {tl.input = "ids"}) -> tensor<f32> {
  %0 = tl.gather %t[%ids] : tensor<10x3xf32>, tensor<2xi32> -> tensor<2x3xf32>
  %1 = tl.reduce_sum %0, axis = 1 : tensor<2x3xf32> -> tensor<2xf32>
  %2 = tl.reduce_sum %1, axis = 0 : tensor<2xf32> -> tensor<f32>
  return %2 : tensor<f32>
}

// -----

// A parameter the loss does not use gets a zero gradient.
// CHECK-LABEL: func.func @unused
// CHECK: %[[Z:.*]] = tl.constant dense<0.000000e+00> : tensor<2xf32>
// CHECK: return %{{.*}}, %{{.*}}, %[[Z]]
func.func @unused(%x: tensor<3xf32> {tl.param = "x"}, %u: tensor<2xf32> {tl.param = "u"}) -> tensor<f32> {
  %0 = tl.reduce_sum %x, axis = 0 : tensor<3xf32> -> tensor<f32>
  return %0 : tensor<f32>
}

// -----

// A function that already is a training step is left alone.
// CHECK-LABEL: func.func @done
// CHECK-NEXT: return %arg0, %arg0
func.func @done(%x: tensor<f32> {tl.param = "x"}) -> (tensor<f32> {tl.output = "loss"}, tensor<f32> {tl.grad = "x"}) {
  return %x, %x : tensor<f32>, tensor<f32>
}
