// RUN: tlc-opt %s --tl-fold-head-transposes -split-input-file | FileCheck %s
// RUN: tlc-opt %s --tl-fold-head-transposes=report=true -split-input-file -verify-diagnostics -o /dev/null
// RUN: tlc-opt %s --verify-fusion --tl-fold-head-transposes -split-input-file 2>&1 >/dev/null | FileCheck %s --check-prefix=VERIFY

// An attention block as the DSL writes it: heads split by reshape + transpose,
// rope on q and k, GQA attention, heads merged back. Nothing is transposed
// afterwards: rope and attention read [B, T, H, D] and the merge cancels.
// CHECK-LABEL: func.func @block
// CHECK-NOT: tl.transpose
// CHECK: %[[Q:.*]] = tl.rope {{.*}} offset = 0 bthd : tensor<2x6x4x8xf32>, tensor<6x8xf32>
// CHECK: %[[K:.*]] = tl.rope {{.*}} offset = 0 bthd : tensor<2x6x2x8xf32>, tensor<6x8xf32>
// CHECK: %[[O:.*]], %{{.*}} = tl.attention %[[Q]], %[[K]], %{{.*}} scale = 0.353{{[0-9]*}} causal bthd : tensor<2x6x4x8xf32>, tensor<2x6x2x8xf32> -> tensor<2x4x6xf32>
// CHECK-NOT: tl.transpose
// CHECK: tl.reshape %[[O]]
// VERIFY: verify-fusion: 3 of 3 fusions checked equal on random inputs
func.func @block(%xq: tensor<2x6x32xf32>, %xk: tensor<2x6x16xf32>, %xv: tensor<2x6x16xf32>,
                 %cos: tensor<6x8xf32>, %sin: tensor<6x8xf32>) -> tensor<2x6x32xf32> {
  %q0 = tl.reshape %xq : tensor<2x6x32xf32> -> tensor<2x6x4x8xf32>
  %q1 = tl.transpose %q0, perm = [0, 2, 1, 3] : tensor<2x6x4x8xf32> -> tensor<2x4x6x8xf32>
  // expected-remark @+1 {{tl-fold-head-transposes: fused rope}}
  %q = tl.rope %q1, %cos, %sin offset = 0 : tensor<2x4x6x8xf32>, tensor<6x8xf32>
  %k0 = tl.reshape %xk : tensor<2x6x16xf32> -> tensor<2x6x2x8xf32>
  %k1 = tl.transpose %k0, perm = [0, 2, 1, 3] : tensor<2x6x2x8xf32> -> tensor<2x2x6x8xf32>
  // expected-remark @+1 {{tl-fold-head-transposes: fused rope}}
  %k = tl.rope %k1, %cos, %sin offset = 0 : tensor<2x2x6x8xf32>, tensor<6x8xf32>
  %v0 = tl.reshape %xv : tensor<2x6x16xf32> -> tensor<2x6x2x8xf32>
  %v = tl.transpose %v0, perm = [0, 2, 1, 3] : tensor<2x6x2x8xf32> -> tensor<2x2x6x8xf32>
  // expected-remark @+1 {{tl-fold-head-transposes: fused attention}}
  %o, %lse = tl.attention %q, %k, %v scale = 0.35355339059327373 causal : tensor<2x4x6x8xf32>, tensor<2x2x6x8xf32> -> tensor<2x4x6xf32>
  %m = tl.transpose %o, perm = [0, 2, 1, 3] : tensor<2x4x6x8xf32> -> tensor<2x6x4x8xf32>
  %r = tl.reshape %m : tensor<2x6x4x8xf32> -> tensor<2x6x32xf32>
  return %r : tensor<2x6x32xf32>
}

// -----

// Only the query comes from a head transpose: attention keeps [B, H, T, D].
// CHECK-LABEL: func.func @partly
// CHECK: tl.attention %{{.*}}, %arg1, %arg2 scale
// CHECK-NOT: bthd
func.func @partly(%xq: tensor<1x5x2x8xf32>, %k: tensor<1x2x5x8xf32>, %v: tensor<1x2x5x8xf32>) -> tensor<1x2x5x8xf32> {
  %q = tl.transpose %xq, perm = [0, 2, 1, 3] : tensor<1x5x2x8xf32> -> tensor<1x2x5x8xf32>
  // expected-remark @+1 {{not fused as attention: only some of query, key and value come from a head transpose}}
  %o, %lse = tl.attention %q, %k, %v scale = 0.5 : tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32> -> tensor<1x2x5xf32>
  return %o : tensor<1x2x5x8xf32>
}

// -----

// Another permutation is no head transpose: rope stays as it is.
// CHECK-LABEL: func.func @other_perm
// CHECK: tl.transpose %arg0, perm = [1, 0, 2, 3]
// CHECK: tl.rope {{.*}} offset = 1 :
func.func @other_perm(%x: tensor<4x2x6x8xf32>, %cos: tensor<8x8xf32>, %sin: tensor<8x8xf32>) -> tensor<2x4x6x8xf32> {
  %t = tl.transpose %x, perm = [1, 0, 2, 3] : tensor<4x2x6x8xf32> -> tensor<2x4x6x8xf32>
  %r = tl.rope %t, %cos, %sin offset = 1 : tensor<2x4x6x8xf32>, tensor<8x8xf32>
  return %r : tensor<2x4x6x8xf32>
}
