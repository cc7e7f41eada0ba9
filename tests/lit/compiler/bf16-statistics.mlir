// Statistics saved for the backward pass stay f32 when the activations are
// bf16 (issue 8): rstd of the norms, lse of cross-entropy and attention.
// RUN: tlc emit tinyllama --preset tiny --set layers=1,dim=16,heads=2,kv_heads=1,ffn=24,vocab=50,seq=4,micro_batch=2 --dtype bf16 --fused | FileCheck %s
// CHECK: tl.rmsnorm {{.*}} : tensor<2x4x16xbf16>, tensor<16xbf16> -> tensor<2x4xf32>
// CHECK: tl.attention {{.*}} bthd : tensor<2x4x2x8xbf16>, tensor<2x4x1x8xbf16> -> tensor<2x2x4xf32>
// CHECK: tl.add_rmsnorm {{.*}} -> tensor<2x4xf32>
// CHECK: tl.cross_entropy {{.*}} : tensor<8x50xbf16>, tensor<8xi32> -> tensor<f32>, tensor<8xf32>
// CHECK: tl.cross_entropy_grad {{.*}}, tensor<8xf32>
// CHECK: tl.attention_grad {{.*}}, tensor<2x2x4xf32>
// CHECK: tl.rmsnorm_grad {{.*}} : tensor<2x4x16xbf16>, tensor<16xbf16>, tensor<2x4xf32>

// RUN: tlc-opt %s -split-input-file -verify-diagnostics

func.func @bf16_rstd(%x: tensor<2x16xbf16>, %w: tensor<16xbf16>) -> tensor<2x16xbf16> {
  // expected-error @+1 {{per-row statistics must be 'tensor<2xf32>'}}
  %y, %r = tl.rmsnorm %x, %w eps = 1.0e-05 : tensor<2x16xbf16>, tensor<16xbf16> -> tensor<2xbf16>
  return %y : tensor<2x16xbf16>
}

// -----

func.func @bf16_lse(%l: tensor<2x16xbf16>, %t: tensor<2xi32>) -> tensor<bf16> {
  // expected-error @+1 {{the log-sum-exp must be 'tensor<2xf32>', got 'tensor<2xbf16>'}}
  %loss, %lse = tl.cross_entropy %l, %t : tensor<2x16xbf16>, tensor<2xi32> -> tensor<bf16>, tensor<2xbf16>
  return %loss : tensor<bf16>
}

// -----

func.func @bf16_loss_f16(%l: tensor<2x16xbf16>, %t: tensor<2xi32>) -> tensor<f16> {
  // expected-error @+1 {{the loss must be a scalar of the logits' type or f32}}
  %loss, %lse = tl.cross_entropy %l, %t : tensor<2x16xbf16>, tensor<2xi32> -> tensor<f16>, tensor<2xf32>
  return %loss : tensor<f16>
}

// -----

func.func @f32_stays(%x: tensor<2x16xf32>, %w: tensor<16xf32>) -> tensor<2xf32> {
  %y, %r = tl.rmsnorm %x, %w eps = 1.0e-05 : tensor<2x16xf32>, tensor<16xf32> -> tensor<2xf32>
  return %r : tensor<2xf32>
}
