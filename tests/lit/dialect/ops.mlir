// RUN: tlc-opt %s | tlc-opt | FileCheck %s
// RUN: tlc-opt %s --mlir-print-op-generic | tlc-opt | FileCheck %s

// CHECK-LABEL: func.func @elementwise
func.func @elementwise(%x: tensor<4x8xf32>, %y: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // CHECK: tl.neg %{{.*}} : tensor<4x8xf32>
  %0 = tl.neg %x : tensor<4x8xf32>
  // CHECK: tl.exp
  %1 = tl.exp %0 : tensor<4x8xf32>
  // CHECK: tl.log
  %2 = tl.log %1 : tensor<4x8xf32>
  // CHECK: tl.sqrt
  %3 = tl.sqrt %2 : tensor<4x8xf32>
  // CHECK: tl.rsqrt
  %4 = tl.rsqrt %3 : tensor<4x8xf32>
  // CHECK: tl.sigmoid
  %5 = tl.sigmoid %4 : tensor<4x8xf32>
  // CHECK: tl.silu
  %6 = tl.silu %5 : tensor<4x8xf32>
  // CHECK: tl.tanh
  %7 = tl.tanh %6 : tensor<4x8xf32>
  // CHECK: tl.sin
  %8 = tl.sin %7 : tensor<4x8xf32>
  // CHECK: tl.cos
  %9 = tl.cos %8 : tensor<4x8xf32>
  // CHECK: tl.pow %{{.*}}, 2.000000e+00 : tensor<4x8xf32>
  %10 = tl.pow %9, 2.0 : tensor<4x8xf32>
  // CHECK: tl.add %{{.*}}, %{{.*}} : tensor<4x8xf32>
  %11 = tl.add %10, %y : tensor<4x8xf32>
  // CHECK: tl.sub
  %12 = tl.sub %11, %y : tensor<4x8xf32>
  // CHECK: tl.mul
  %13 = tl.mul %12, %y : tensor<4x8xf32>
  // CHECK: tl.div
  %14 = tl.div %13, %y : tensor<4x8xf32>
  // CHECK: tl.max
  %15 = tl.max %14, %y : tensor<4x8xf32>
  // CHECK: tl.min
  %16 = tl.min %15, %y : tensor<4x8xf32>
  return %16 : tensor<4x8xf32>
}

// CHECK-LABEL: func.func @masks
func.func @masks(%s: tensor<16x16xf32>) -> tensor<16x16xbf16> {
  // CHECK: tl.iota axis = 0 : tensor<16x16xi32>
  %row = tl.iota axis = 0 : tensor<16x16xi32>
  %col = tl.iota axis = 1 : tensor<16x16xi32>
  // CHECK: tl.cmp ge, %{{.*}}, %{{.*}} : tensor<16x16xi32>
  %causal = tl.cmp ge, %row, %col : tensor<16x16xi32>
  // CHECK: tl.constant dense<0xFF800000> : tensor<16x16xf32>
  %ninf = tl.constant dense<0xFF800000> : tensor<16x16xf32>
  // CHECK: tl.select %{{.*}}, %{{.*}}, %{{.*}} : tensor<16x16xi1>, tensor<16x16xf32>
  %m = tl.select %causal, %s, %ninf : tensor<16x16xi1>, tensor<16x16xf32>
  // CHECK: tl.convert %{{.*}} : tensor<16x16xf32> -> tensor<16x16xbf16>
  %h = tl.convert %m : tensor<16x16xf32> -> tensor<16x16xbf16>
  return %h : tensor<16x16xbf16>
}

// CHECK-LABEL: func.func @shapes
func.func @shapes(%x: tensor<2x16x64xf32>, %w: tensor<128x64xf32>, %e: tensor<100x64xf16>, %ids: tensor<2x16xi32>) -> tensor<f32> {
  // CHECK: tl.broadcast %{{.*}}, dims = [0, 2] : tensor<2x64xf32> -> tensor<2x16x64xf32>
  %r = tl.reduce_sum %x, axis = 1 : tensor<2x16x64xf32> -> tensor<2x64xf32>
  %b = tl.broadcast %r, dims = [0, 2] : tensor<2x64xf32> -> tensor<2x16x64xf32>
  // CHECK: tl.reduce_max %{{.*}}, axis = 2 : tensor<2x16x64xf32> -> tensor<2x16xf32>
  %mx = tl.reduce_max %b, axis = 2 : tensor<2x16x64xf32> -> tensor<2x16xf32>
  // CHECK: tl.matmul %{{.*}}, %{{.*}} {transpose_rhs} : tensor<2x16x64xf32>, tensor<128x64xf32> -> tensor<2x16x128xf32>
  %y = tl.matmul %x, %w {transpose_rhs} : tensor<2x16x64xf32>, tensor<128x64xf32> -> tensor<2x16x128xf32>
  // CHECK: tl.matmul %{{.*}}, %{{.*}} {transpose_lhs} : tensor<2x16x64xf32>, tensor<2x16x128xf32> -> tensor<2x64x128xf32>
  %g = tl.matmul %x, %y {transpose_lhs} : tensor<2x16x64xf32>, tensor<2x16x128xf32> -> tensor<2x64x128xf32>
  // CHECK: tl.reshape %{{.*}} : tensor<2x16x64xf32> -> tensor<2x16x4x16xf32>
  %h = tl.reshape %x : tensor<2x16x64xf32> -> tensor<2x16x4x16xf32>
  // CHECK: tl.transpose %{{.*}}, perm = [0, 2, 1, 3] : tensor<2x16x4x16xf32> -> tensor<2x4x16x16xf32>
  %t = tl.transpose %h, perm = [0, 2, 1, 3] : tensor<2x16x4x16xf32> -> tensor<2x4x16x16xf32>
  // CHECK: tl.slice %{{.*}}, axis = 3, start = 8, size = 8 : tensor<2x4x16x16xf32> -> tensor<2x4x16x8xf32>
  %lo = tl.slice %t, axis = 3, start = 0, size = 8 : tensor<2x4x16x16xf32> -> tensor<2x4x16x8xf32>
  %hi = tl.slice %t, axis = 3, start = 8, size = 8 : tensor<2x4x16x16xf32> -> tensor<2x4x16x8xf32>
  // CHECK: tl.concat %{{.*}}, %{{.*}} axis = 3 : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x16xf32>
  %c = tl.concat %hi, %lo axis = 3 : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x16xf32>
  // CHECK: tl.gather %{{.*}}[%{{.*}}] : tensor<100x64xf16>, tensor<2x16xi32> -> tensor<2x16x64xf16>
  %emb = tl.gather %e[%ids] : tensor<100x64xf16>, tensor<2x16xi32> -> tensor<2x16x64xf16>
  // CHECK: tl.scatter_add %{{.*}}[%{{.*}}] : tensor<2x16x64xf16>, tensor<2x16xi32> -> tensor<100x64xf16>
  %back = tl.scatter_add %emb[%ids] : tensor<2x16x64xf16>, tensor<2x16xi32> -> tensor<100x64xf16>
  // CHECK: tl.reduce_mean %{{.*}}, axis = 0 : tensor<2xf32> -> tensor<f32>
  %s1 = tl.reduce_sum %mx, axis = 1 : tensor<2x16xf32> -> tensor<2xf32>
  %s0 = tl.reduce_mean %s1, axis = 0 : tensor<2xf32> -> tensor<f32>
  return %s0 : tensor<f32>
}

// CHECK-LABEL: func.func @train_step
// CHECK-SAME: -> (tensor<f32> {tl.output = "loss"}, tensor<4xf32> {tl.grad = "w"})
func.func @train_step(%w: tensor<4xf32> {tl.param = "w"}) -> (tensor<f32> {tl.output = "loss"}, tensor<4xf32> {tl.grad = "w"}) {
  %l = tl.reduce_sum %w, axis = 0 : tensor<4xf32> -> tensor<f32>
  return %l, %w : tensor<f32>, tensor<4xf32>
}

// CHECK-LABEL: func.func @named_args
// CHECK-SAME: {tl.param = "lm_head.weight"}
// CHECK-SAME: {tl.input = "tokens"}
// CHECK-SAME: tl.model = {dim = 64 : i64, name = "toy"}
func.func @named_args(%w: tensor<8x4xf64> {tl.param = "lm_head.weight"},
                      %t: tensor<2x3xi32> {tl.input = "tokens"}) -> tensor<8x4xf64>
    attributes {tl.model = {name = "toy", dim = 64 : i64}} {
  return %w : tensor<8x4xf64>
}
