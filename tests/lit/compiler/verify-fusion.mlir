// --verify-fusion checks each fusion on random inputs with the reference
// evaluator before it is made (compiler/Verify).
// RUN: tlc-opt %s --verify-fusion --tl-fuse-rmsnorm --tl-fuse-attention 2>%t.err | FileCheck %s
// RUN: FileCheck %s --check-prefix=SUMMARY < %t.err

// SUMMARY: verify-fusion: 2 of 2 fusions checked equal on random inputs (2 distinct regions evaluated)
// CHECK: tl.rmsnorm
// CHECK: tl.attention
func.func @two_fusions(%x: tensor<4x8xf32>, %w: tensor<8xf32>, %q: tensor<1x2x4x8xf32>,
                       %k: tensor<1x2x4x8xf32>, %v: tensor<1x2x4x8xf32>)
    -> (tensor<4x8xf32>, tensor<1x2x4x8xf32>) {
  %0 = tl.pow %x, 2.0 : tensor<4x8xf32>
  %1 = tl.reduce_mean %0, axis = 1 : tensor<4x8xf32> -> tensor<4xf32>
  %eps = tl.constant dense<1.0e-5> : tensor<4xf32>
  %2 = tl.add %1, %eps : tensor<4xf32>
  %3 = tl.rsqrt %2 : tensor<4xf32>
  %4 = tl.broadcast %3, dims = [0] : tensor<4xf32> -> tensor<4x8xf32>
  %5 = tl.mul %x, %4 : tensor<4x8xf32>
  %6 = tl.broadcast %w, dims = [1] : tensor<8xf32> -> tensor<4x8xf32>
  %y = tl.mul %5, %6 : tensor<4x8xf32>
  %qk = tl.matmul %q, %k {transpose_rhs} : tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32> -> tensor<1x2x4x4xf32>
  %mx = tl.reduce_max %qk, axis = 3 : tensor<1x2x4x4xf32> -> tensor<1x2x4xf32>
  %mxb = tl.broadcast %mx, dims = [0, 1, 2] : tensor<1x2x4xf32> -> tensor<1x2x4x4xf32>
  %sh = tl.sub %qk, %mxb : tensor<1x2x4x4xf32>
  %e = tl.exp %sh : tensor<1x2x4x4xf32>
  %sm = tl.reduce_sum %e, axis = 3 : tensor<1x2x4x4xf32> -> tensor<1x2x4xf32>
  %smb = tl.broadcast %sm, dims = [0, 1, 2] : tensor<1x2x4xf32> -> tensor<1x2x4x4xf32>
  %p = tl.div %e, %smb : tensor<1x2x4x4xf32>
  %o = tl.matmul %p, %v : tensor<1x2x4x4xf32>, tensor<1x2x4x8xf32> -> tensor<1x2x4x8xf32>
  return %y, %o : tensor<4x8xf32>, tensor<1x2x4x8xf32>
}
