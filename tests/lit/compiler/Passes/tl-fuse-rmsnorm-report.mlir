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
  // expected-remark @+1 {{tl-fuse-rmsnorm: not fused as rmsnorm: the reduction is over axis 0, not the last axis}}
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
