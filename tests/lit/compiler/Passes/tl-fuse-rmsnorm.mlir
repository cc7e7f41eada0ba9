// RUN: tlc-opt %s --tl-fuse-rmsnorm -split-input-file | FileCheck %s

// The DSL's form: pow, mean, unit reshape, + eps, rsqrt, broadcast, * x, * w.
// CHECK-LABEL: func.func @dsl_form
// CHECK: %[[Y:.*]], %{{.*}} = tl.rmsnorm %arg0, %arg1 eps = 1.000000e-05 : tensor<2x4x8xf64>, tensor<8xf64> -> tensor<2x4xf64>
// CHECK-NOT: tl.rsqrt
// CHECK: return %[[Y]]
func.func @dsl_form(%x: tensor<2x4x8xf64>, %w: tensor<8xf64>) -> tensor<2x4x8xf64> {
  %0 = tl.pow %x, 2.0 : tensor<2x4x8xf64>
  %1 = tl.reduce_mean %0, axis = 2 : tensor<2x4x8xf64> -> tensor<2x4xf64>
  %2 = tl.reshape %1 : tensor<2x4xf64> -> tensor<2x4x1xf64>
  %eps = tl.constant dense<1.0e-5> : tensor<2x4x1xf64>
  %3 = tl.add %2, %eps : tensor<2x4x1xf64>
  %4 = tl.rsqrt %3 : tensor<2x4x1xf64>
  %5 = tl.broadcast %4, dims = [0, 1, 2] : tensor<2x4x1xf64> -> tensor<2x4x8xf64>
  %6 = tl.mul %x, %5 : tensor<2x4x8xf64>
  %7 = tl.broadcast %w, dims = [2] : tensor<8xf64> -> tensor<2x4x8xf64>
  %8 = tl.mul %6, %7 : tensor<2x4x8xf64>
  return %8 : tensor<2x4x8xf64>
}

// -----

// Other spellings: x * x, sum * (1/n), eps first, factor first, weight first.
// CHECK-LABEL: func.func @variants
// CHECK: tl.rmsnorm %arg0, %arg1 eps = 9.9999999999999995E-7
func.func @variants(%x: tensor<4x8xf32>, %w: tensor<8xf32>) -> tensor<4x8xf32> {
  %0 = tl.mul %x, %x : tensor<4x8xf32>
  %1 = tl.reduce_sum %0, axis = 1 : tensor<4x8xf32> -> tensor<4xf32>
  %n = tl.constant dense<0.125> : tensor<4xf32>
  %2 = tl.mul %1, %n : tensor<4xf32>
  %eps = tl.constant dense<1.0e-6> : tensor<4xf32>
  %3 = tl.add %eps, %2 : tensor<4xf32>
  %4 = tl.rsqrt %3 : tensor<4xf32>
  %5 = tl.broadcast %4, dims = [0] : tensor<4xf32> -> tensor<4x8xf32>
  %6 = tl.mul %5, %x : tensor<4x8xf32>
  %7 = tl.broadcast %w, dims = [1] : tensor<8xf32> -> tensor<4x8xf32>
  %8 = tl.mul %7, %6 : tensor<4x8xf32>
  return %8 : tensor<4x8xf32>
}

// -----

// x / sqrt(mean(x^2) + eps), the mean as sum / n.
// CHECK-LABEL: func.func @divide_by_sqrt
// CHECK: tl.rmsnorm %arg0, %arg1
func.func @divide_by_sqrt(%x: tensor<4x8xf32>, %w: tensor<8xf32>) -> tensor<4x8xf32> {
  %0 = tl.pow %x, 2.0 : tensor<4x8xf32>
  %1 = tl.reduce_sum %0, axis = 1 : tensor<4x8xf32> -> tensor<4xf32>
  %n = tl.constant dense<8.0> : tensor<4xf32>
  %2 = tl.div %1, %n : tensor<4xf32>
  %eps = tl.constant dense<1.0e-5> : tensor<4xf32>
  %3 = tl.add %2, %eps : tensor<4xf32>
  %4 = tl.sqrt %3 : tensor<4xf32>
  %5 = tl.broadcast %4, dims = [0] : tensor<4xf32> -> tensor<4x8xf32>
  %6 = tl.div %x, %5 : tensor<4x8xf32>
  %7 = tl.broadcast %w, dims = [1] : tensor<8xf32> -> tensor<4x8xf32>
  %8 = tl.mul %6, %7 : tensor<4x8xf32>
  return %8 : tensor<4x8xf32>
}

// -----

// A residual add feeding the norm: one op returns the sum and the norm.
// CHECK-LABEL: func.func @residual
// CHECK: %[[SUM:.*]], %[[Y:.*]], %{{.*}} = tl.add_rmsnorm %arg0, %arg1, %arg2 eps = 1.000000e-05
// CHECK-NOT: tl.add %
// CHECK: return %[[SUM]], %[[Y]]
func.func @residual(%a: tensor<4x8xf32>, %b: tensor<4x8xf32>, %w: tensor<8xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>) {
  %x = tl.add %a, %b : tensor<4x8xf32>
  %0 = tl.pow %x, 2.0 : tensor<4x8xf32>
  %1 = tl.reduce_mean %0, axis = 1 : tensor<4x8xf32> -> tensor<4xf32>
  %eps = tl.constant dense<1.0e-5> : tensor<4xf32>
  %3 = tl.add %1, %eps : tensor<4xf32>
  %4 = tl.rsqrt %3 : tensor<4xf32>
  %5 = tl.broadcast %4, dims = [0] : tensor<4xf32> -> tensor<4x8xf32>
  %6 = tl.mul %x, %5 : tensor<4x8xf32>
  %7 = tl.broadcast %w, dims = [1] : tensor<8xf32> -> tensor<4x8xf32>
  %8 = tl.mul %6, %7 : tensor<4x8xf32>
  return %x, %8 : tensor<4x8xf32>, tensor<4x8xf32>
}

// -----

// LayerNorm: centred, biased variance, weight and bias.
// CHECK-LABEL: func.func @layernorm
// CHECK: %[[Y:.*]], %{{.*}}, %{{.*}} = tl.layernorm %arg0, %arg1, %arg2 eps = 1.000000e-05
// CHECK-NOT: tl.rmsnorm
// CHECK: return %[[Y]]
func.func @layernorm(%x: tensor<4x8xf32>, %w: tensor<8xf32>, %b: tensor<8xf32>) -> tensor<4x8xf32> {
  %m = tl.reduce_mean %x, axis = 1 : tensor<4x8xf32> -> tensor<4xf32>
  %mb = tl.broadcast %m, dims = [0] : tensor<4xf32> -> tensor<4x8xf32>
  %xc = tl.sub %x, %mb : tensor<4x8xf32>
  %sq = tl.mul %xc, %xc : tensor<4x8xf32>
  %var = tl.reduce_mean %sq, axis = 1 : tensor<4x8xf32> -> tensor<4xf32>
  %eps = tl.constant dense<1.0e-5> : tensor<4xf32>
  %ve = tl.add %var, %eps : tensor<4xf32>
  %r = tl.rsqrt %ve : tensor<4xf32>
  %rb = tl.broadcast %r, dims = [0] : tensor<4xf32> -> tensor<4x8xf32>
  %xh = tl.mul %xc, %rb : tensor<4x8xf32>
  %wb = tl.broadcast %w, dims = [1] : tensor<8xf32> -> tensor<4x8xf32>
  %y = tl.mul %xh, %wb : tensor<4x8xf32>
  %bb = tl.broadcast %b, dims = [1] : tensor<8xf32> -> tensor<4x8xf32>
  %z = tl.add %y, %bb : tensor<4x8xf32>
  return %z : tensor<4x8xf32>
}
