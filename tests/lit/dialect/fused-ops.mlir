// RUN: tlc-opt %s | tlc-opt | FileCheck %s
// RUN: tlc-opt %s --mlir-print-op-generic | tlc-opt | FileCheck %s

// CHECK-LABEL: func.func @norms
func.func @norms(%x: tensor<2x4x8xf32>, %r: tensor<2x4x8xf32>, %w: tensor<8xf32>, %b: tensor<8xf32>) {
  // CHECK: tl.rmsnorm %{{.*}}, %{{.*}} eps = 1.000000e-05 : tensor<2x4x8xf32>, tensor<8xf32> -> tensor<2x4xf32>
  %y, %rstd = tl.rmsnorm %x, %w eps = 1.0e-5 : tensor<2x4x8xf32>, tensor<8xf32> -> tensor<2x4xf32>
  // CHECK: tl.add_rmsnorm %{{.*}}, %{{.*}}, %{{.*}} eps = 1.000000e-05 : tensor<2x4x8xf32>, tensor<8xf32> -> tensor<2x4xf32>
  %s, %y2, %rstd2 = tl.add_rmsnorm %x, %r, %w eps = 1.0e-5 : tensor<2x4x8xf32>, tensor<8xf32> -> tensor<2x4xf32>
  // CHECK: tl.rmsnorm_grad
  %dx, %dw = tl.rmsnorm_grad %y, %x, %w, %rstd : tensor<2x4x8xf32>, tensor<8xf32>, tensor<2x4xf32>
  // CHECK: tl.rmsnorm_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} plus %{{.*}} : tensor<2x4x8xf32>, tensor<8xf32>, tensor<2x4xf32>, tensor<2x4x8xf32>
  %dxp, %dwp = tl.rmsnorm_grad %y, %x, %w, %rstd plus %dx : tensor<2x4x8xf32>, tensor<8xf32>, tensor<2x4xf32>, tensor<2x4x8xf32>
  // CHECK: tl.layernorm %{{.*}} eps = 1.000000e-05 : tensor<2x4x8xf32>, tensor<8xf32> -> tensor<2x4xf32>, tensor<2x4xf32>
  %z, %mean, %rstd3 = tl.layernorm %x, %w, %b eps = 1.0e-5 : tensor<2x4x8xf32>, tensor<8xf32> -> tensor<2x4xf32>, tensor<2x4xf32>
  // CHECK: tl.layernorm_grad
  %dx2, %dw2, %db2 = tl.layernorm_grad %z, %x, %w, %mean, %rstd3 : tensor<2x4x8xf32>, tensor<8xf32>, tensor<2x4xf32>
  return
}

// CHECK-LABEL: func.func @rope_attention
func.func @rope_attention(%q: tensor<2x8x16x4xf32>, %k: tensor<2x2x16x4xf32>, %v: tensor<2x2x16x4xf32>,
                          %cos: tensor<20x4xf32>, %sin: tensor<20x4xf32>) {
  // CHECK: tl.rope %{{.*}}, %{{.*}}, %{{.*}} offset = 4 : tensor<2x8x16x4xf32>, tensor<20x4xf32>
  %q2 = tl.rope %q, %cos, %sin offset = 4 : tensor<2x8x16x4xf32>, tensor<20x4xf32>
  // CHECK: tl.rope_grad %{{.*}}, %{{.*}}, %{{.*}} offset = 4
  %dq = tl.rope_grad %q2, %cos, %sin offset = 4 : tensor<2x8x16x4xf32>, tensor<20x4xf32>
  // CHECK: tl.attention %{{.*}}, %{{.*}}, %{{.*}} scale = 5.000000e-01 causal : tensor<2x8x16x4xf32>, tensor<2x2x16x4xf32> -> tensor<2x8x16xf32>
  %o, %lse = tl.attention %q2, %k, %v scale = 0.5 causal : tensor<2x8x16x4xf32>, tensor<2x2x16x4xf32> -> tensor<2x8x16xf32>
  // CHECK: tl.attention %{{.*}} scale = 5.000000e-01 : tensor<2x8x16x4xf32>
  %o2, %lse2 = tl.attention %q2, %k, %v scale = 0.5 : tensor<2x8x16x4xf32>, tensor<2x2x16x4xf32> -> tensor<2x8x16xf32>
  // CHECK: tl.attention_grad {{.*}} causal
  %gq, %gk, %gv = tl.attention_grad %o, %q2, %k, %v, %o, %lse scale = 0.5 causal : tensor<2x8x16x4xf32>, tensor<2x2x16x4xf32>, tensor<2x8x16xf32>
  return
}

// The projections' layout: [B, T, H, D], lse still [B, H, T].
// CHECK-LABEL: func.func @token_major_heads
func.func @token_major_heads(%q: tensor<2x16x8x4xf32>, %k: tensor<2x16x2x4xf32>, %cos: tensor<20x4xf32>) {
  // CHECK: tl.rope %{{.*}} offset = 4 bthd : tensor<2x16x8x4xf32>, tensor<20x4xf32>
  %q2 = tl.rope %q, %cos, %cos offset = 4 bthd : tensor<2x16x8x4xf32>, tensor<20x4xf32>
  // CHECK: tl.rope_grad %{{.*}} offset = 4 bthd
  %dq = tl.rope_grad %q2, %cos, %cos offset = 4 bthd : tensor<2x16x8x4xf32>, tensor<20x4xf32>
  // CHECK: tl.attention {{.*}} causal bthd : tensor<2x16x8x4xf32>, tensor<2x16x2x4xf32> -> tensor<2x8x16xf32>
  %o, %lse = tl.attention %q2, %k, %k scale = 0.5 causal bthd : tensor<2x16x8x4xf32>, tensor<2x16x2x4xf32> -> tensor<2x8x16xf32>
  // CHECK: tl.attention_grad {{.*}} causal bthd
  %gq, %gk, %gv = tl.attention_grad %o, %q2, %k, %k, %o, %lse scale = 0.5 causal bthd : tensor<2x16x8x4xf32>, tensor<2x16x2x4xf32>, tensor<2x8x16xf32>
  return
}

// CHECK-LABEL: func.func @cross_entropy
func.func @cross_entropy(%l: tensor<6x10xf32>, %t: tensor<6xi32>) {
  // CHECK: tl.cross_entropy %{{.*}}, %{{.*}} : tensor<6x10xf32>, tensor<6xi32> -> tensor<f32>, tensor<6xf32>
  %loss, %lse = tl.cross_entropy %l, %t : tensor<6x10xf32>, tensor<6xi32> -> tensor<f32>, tensor<6xf32>
  // CHECK: tl.cross_entropy %{{.*}}, %{{.*}} ignore_index = -100 :
  %loss2, %lse2 = tl.cross_entropy %l, %t ignore_index = -100 : tensor<6x10xf32>, tensor<6xi32> -> tensor<f32>, tensor<6xf32>
  // CHECK: tl.cross_entropy_grad {{.*}} ignore_index = -100 :
  %d = tl.cross_entropy_grad %loss2, %l, %t, %lse2 ignore_index = -100 : tensor<f32>, tensor<6x10xf32>, tensor<6xi32>, tensor<6xf32>
  return
}

// CHECK-LABEL: func.func @groups
func.func @groups(%g: tensor<4x8xf32>, %u: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // CHECK: tl.swiglu
  %h = tl.swiglu %g, %u : tensor<4x8xf32>
  // CHECK: tl.swiglu_grad
  %dg, %du = tl.swiglu_grad %h, %g, %u : tensor<4x8xf32>
  // CHECK: tl.fusion(%{{.*}}, %{{.*}}) : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32> {
  // CHECK: tl.yield %{{.*}} : tensor<4x8xf32>
  %f = tl.fusion(%dg, %du) : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32> {
  ^bb0(%a: tensor<4x8xf32>, %b: tensor<4x8xf32>):
    %s = tl.silu %a : tensor<4x8xf32>
    %m = tl.mul %s, %b : tensor<4x8xf32>
    tl.yield %m : tensor<4x8xf32>
  }
  return %f : tensor<4x8xf32>
}
