// Near-misses are refused, and the fusion report says why.
// RUN: tlc-opt %s --tl-fuse-rmsnorm=report=true -split-input-file -verify-diagnostics | FileCheck %s

// CHECK-LABEL: func.func @wrong_axis
// CHECK-NOT: tl.rmsnorm
func.func @wrong_axis(%x: tensor<4x4xf32>, %w: tensor<4xf32>) -> tensor<4x4xf32> {
  %0 = tl.pow %x, 2.0 : tensor<4x4xf32>
  %1 = tl.reduce_mean %0, axis = 0 : tensor<4x4xf32> -> tensor<4xf32>
  %eps = tl.constant dense<1.0e-5> : tensor<4xf32>
  %2 = tl.add %1, %eps : tensor<4xf32>
  %3 = tl.rsqrt %2 : tensor<4xf32>
  %4 = tl.broadcast %3, dims = [1] : tensor<4xf32> -> tensor<4x4xf32>
  %5 = tl.mul %x, %4 : tensor<4x4xf32>
  %6 = tl.broadcast %w, dims = [1] : tensor<4xf32> -> tensor<4x4xf32>
  // expected-remark @+1 {{tl-fuse-rmsnorm: not fused as rmsnorm: the factor is repeated along axis 0, not only along the last axis: it is not one value per row}}
  %7 = tl.mul %5, %6 : tensor<4x4xf32>
  return %7 : tensor<4x4xf32>
}

// -----

// CHECK-LABEL: func.func @eps_outside_sqrt
// CHECK-NOT: tl.rmsnorm
func.func @eps_outside_sqrt(%x: tensor<4x8xf32>, %w: tensor<8xf32>) -> tensor<4x8xf32> {
  %0 = tl.pow %x, 2.0 : tensor<4x8xf32>
  %1 = tl.reduce_mean %0, axis = 1 : tensor<4x8xf32> -> tensor<4xf32>
  %2 = tl.rsqrt %1 : tensor<4xf32>
  %eps = tl.constant dense<1.0e-5> : tensor<4xf32>
  %3 = tl.add %2, %eps : tensor<4xf32>
  %4 = tl.broadcast %3, dims = [0] : tensor<4xf32> -> tensor<4x8xf32>
  %5 = tl.mul %x, %4 : tensor<4x8xf32>
  %6 = tl.broadcast %w, dims = [1] : tensor<8xf32> -> tensor<4x8xf32>
  // expected-remark @+1 {{not fused as rmsnorm: eps is added outside the square root}}
  %7 = tl.mul %5, %6 : tensor<4x8xf32>
  return %7 : tensor<4x8xf32>
}

// -----

// CHECK-LABEL: func.func @other_tensor
// CHECK-NOT: tl.rmsnorm
func.func @other_tensor(%x: tensor<4x8xf32>, %y: tensor<4x8xf32>, %w: tensor<8xf32>) -> tensor<4x8xf32> {
  %0 = tl.pow %y, 2.0 : tensor<4x8xf32>
  %1 = tl.reduce_mean %0, axis = 1 : tensor<4x8xf32> -> tensor<4xf32>
  %eps = tl.constant dense<1.0e-5> : tensor<4xf32>
  %2 = tl.add %1, %eps : tensor<4xf32>
  %3 = tl.rsqrt %2 : tensor<4xf32>
  %4 = tl.broadcast %3, dims = [0] : tensor<4xf32> -> tensor<4x8xf32>
  %5 = tl.mul %x, %4 : tensor<4x8xf32>
  %6 = tl.broadcast %w, dims = [1] : tensor<8xf32> -> tensor<4x8xf32>
  // expected-remark @+1 {{not fused as rmsnorm: the mean of squares is of another tensor than the one normalised}}
  %7 = tl.mul %5, %6 : tensor<4x8xf32>
  return %7 : tensor<4x8xf32>
}

// -----

// CHECK-LABEL: func.func @fused_is_reported
func.func @fused_is_reported(%x: tensor<4x8xf32>, %w: tensor<8xf32>) -> tensor<4x8xf32> {
  %0 = tl.pow %x, 2.0 : tensor<4x8xf32>
  %1 = tl.reduce_mean %0, axis = 1 : tensor<4x8xf32> -> tensor<4xf32>
  %eps = tl.constant dense<1.0e-5> : tensor<4xf32>
  %2 = tl.add %1, %eps : tensor<4xf32>
  %3 = tl.rsqrt %2 : tensor<4xf32>
  %4 = tl.broadcast %3, dims = [0] : tensor<4xf32> -> tensor<4x8xf32>
  %5 = tl.mul %x, %4 : tensor<4x8xf32>
  %6 = tl.broadcast %w, dims = [1] : tensor<8xf32> -> tensor<4x8xf32>
  // expected-remark @+1 {{tl-fuse-rmsnorm: fused rmsnorm}}
  %7 = tl.mul %5, %6 : tensor<4x8xf32>
  return %7 : tensor<4x8xf32>
}

// -----

// Issue 8's miscompile: on a square [4, 4] the per-row factor broadcast with
// dims = [1] has the right element count but scales each *column*.
// CHECK-LABEL: func.func @factor_per_column
// CHECK-NOT: tl.rmsnorm
func.func @factor_per_column(%x: tensor<4x4xf32>, %w: tensor<4xf32>) -> tensor<4x4xf32> {
  %0 = tl.pow %x, 2.0 : tensor<4x4xf32>
  %1 = tl.reduce_mean %0, axis = 1 : tensor<4x4xf32> -> tensor<4xf32>
  %eps = tl.constant dense<1.0e-5> : tensor<4xf32>
  %2 = tl.add %1, %eps : tensor<4xf32>
  %r = tl.rsqrt %2 : tensor<4xf32>
  %rb = tl.broadcast %r, dims = [1] : tensor<4xf32> -> tensor<4x4xf32>
  %n = tl.mul %x, %rb : tensor<4x4xf32>
  %wb = tl.broadcast %w, dims = [1] : tensor<4xf32> -> tensor<4x4xf32>
  // expected-remark @+1 {{not fused as rmsnorm: the factor is repeated along axis 0, not only along the last axis: it is not one value per row}}
  %y = tl.mul %n, %wb : tensor<4x4xf32>
  return %y : tensor<4x4xf32>
}

// -----

// The same through a unit reshape, rank 3, square trailing axes: [2, 4, 1]
// broadcast with the unit axis in the middle varies along the last axis.
// CHECK-LABEL: func.func @factor_per_column_reshaped
// CHECK-NOT: tl.rmsnorm
func.func @factor_per_column_reshaped(%x: tensor<2x4x4xf32>, %w: tensor<4xf32>) -> tensor<2x4x4xf32> {
  %0 = tl.pow %x, 2.0 : tensor<2x4x4xf32>
  %1 = tl.reduce_mean %0, axis = 2 : tensor<2x4x4xf32> -> tensor<2x4xf32>
  %2 = tl.reshape %1 : tensor<2x4xf32> -> tensor<2x1x4xf32>
  %eps = tl.constant dense<1.0e-5> : tensor<2x1x4xf32>
  %3 = tl.add %2, %eps : tensor<2x1x4xf32>
  %r = tl.rsqrt %3 : tensor<2x1x4xf32>
  %rb = tl.broadcast %r, dims = [0, 1, 2] : tensor<2x1x4xf32> -> tensor<2x4x4xf32>
  %n = tl.mul %x, %rb : tensor<2x4x4xf32>
  %wb = tl.broadcast %w, dims = [2] : tensor<4xf32> -> tensor<2x4x4xf32>
  // expected-remark @+1 {{not fused as rmsnorm: the factor is repeated along axis 1, not only along the last axis: it is not one value per row}}
  %y = tl.mul %n, %wb : tensor<2x4x4xf32>
  return %y : tensor<2x4x4xf32>
}

// -----

// LayerNorm centred on a per-column mean (square shapes) is refused; what
// remains, c * rsqrt(mean(c^2) + eps) * w, is an RMSNorm of c.
// CHECK-LABEL: func.func @layernorm_mean_per_column
// CHECK-NOT: tl.layernorm
// CHECK: tl.rmsnorm
func.func @layernorm_mean_per_column(%x: tensor<4x4xf32>, %w: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<4x4xf32> {
  %m = tl.reduce_mean %x, axis = 1 : tensor<4x4xf32> -> tensor<4xf32>
  %mb = tl.broadcast %m, dims = [1] : tensor<4xf32> -> tensor<4x4xf32>
  %c = tl.sub %x, %mb : tensor<4x4xf32>
  %sq = tl.mul %c, %c : tensor<4x4xf32>
  %v = tl.reduce_mean %sq, axis = 1 : tensor<4x4xf32> -> tensor<4xf32>
  %eps = tl.constant dense<1.0e-5> : tensor<4xf32>
  %ve = tl.add %v, %eps : tensor<4xf32>
  %r = tl.rsqrt %ve : tensor<4xf32>
  %rb = tl.broadcast %r, dims = [0] : tensor<4xf32> -> tensor<4x4xf32>
  %n = tl.mul %c, %rb : tensor<4x4xf32>
  %wb = tl.broadcast %w, dims = [1] : tensor<4xf32> -> tensor<4x4xf32>
  // expected-remark @+1 {{fused rmsnorm}}
  %s = tl.mul %n, %wb : tensor<4x4xf32>
  %bb = tl.broadcast %b, dims = [1] : tensor<4xf32> -> tensor<4x4xf32>
  // expected-remark @+1 {{not fused as layernorm: the factor is repeated along axis 0, not only along the last axis: it is not one value per row}}
  %y = tl.add %s, %bb : tensor<4x4xf32>
  return %y : tensor<4x4xf32>
}
