// RUN: tlc-opt %s --tl-recompute=mode=none -split-input-file | FileCheck %s --check-prefix=NONE
// RUN: tlc-opt %s --tl-recompute=mode=auto -split-input-file | FileCheck %s --check-prefix=AUTO
// RUN: tlc-opt %s --tl-recompute="mode=auto budget=2400" -split-input-file | FileCheck %s --check-prefix=BUDGET
// RUN: tlc-opt %s --tl-recompute=mode=full -split-input-file | FileCheck %s --check-prefix=FULL
// RUN: tlc-opt %s --tl-recompute="mode=auto report=true" -split-input-file 2>&1 >/dev/null | FileCheck %s --check-prefix=REPORT
// RUN: not tlc-opt %s --tl-recompute=mode=some 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not tlc-opt %s --tl-recompute=budget=-5 2>&1 | FileCheck %s --check-prefix=NEGATIVE

// Two residual MLP layers after tl-autodiff: the first layer's normalised
// input (%result), SiLU (%2) and product (%3), and the second layer's
// normalised input (%result_0), are kept from the forward until the
// backward reads them. auto recomputes those four (cheap: a few FLOPs per
// element) right before their first reader in the backward; the second
// layer's SiLU and product are read at once by the backward, so keeping them
// costs nothing and they stay. A budget below what auto reaches adds the
// projection with the fewest FLOPs per byte (%0); full adds both first-layer
// projections. The gate of SiLU's derivative keeps reading the original %0
// in the budget case only where %0 is kept.

// NONE-LABEL: func.func @two_layers
// NONE: tl.rmsnorm %arg0, %arg1
// NONE: tl.silu %0
// NONE-NOT: tl.silu %0
// NONE-NOT: tl.rmsnorm %
// NONE: return

// AUTO-LABEL: func.func @two_layers
// The second layer's normalised input, from the kept residual sum:
// AUTO: %[[N2:.*]], %{{.*}} = tl.rmsnorm %sum, %arg5
// AUTO-NEXT: tl.matmul %{{.*}}, %[[N2]] {transpose_lhs}
// AUTO: tl.rmsnorm_grad %{{.*}}, %sum, %arg5, %rstd_1
// The first layer's SwiGLU product, from the kept projections:
// AUTO: %[[S:.*]] = tl.silu %0
// AUTO-NEXT: %[[M:.*]] = tl.mul %[[S]], %1
// AUTO-NEXT: tl.matmul %{{.*}}, %[[M]] {transpose_lhs}
// AUTO: tl.mul %{{.*}}, %[[S]]
// AUTO: %[[N:.*]], %{{.*}} = tl.rmsnorm %arg0, %arg1
// AUTO-NEXT: tl.matmul %{{.*}}, %[[N]] {transpose_lhs}
// AUTO-NOT: tl.matmul %{{[0-9]+}}, %result {transpose_lhs}

// BUDGET-LABEL: func.func @two_layers
// BUDGET: %[[N:.*]], %{{.*}} = tl.rmsnorm %arg0, %arg1
// BUDGET: %[[A:.*]] = tl.matmul %[[N]], %arg2 {transpose_rhs}
// BUDGET: tl.silu %[[A]]

// FULL-LABEL: func.func @two_layers
// FULL: %[[N:.*]], %{{.*}} = tl.rmsnorm %arg0, %arg1
// FULL-NEXT: %[[A:.*]] = tl.matmul %[[N]], %arg2 {transpose_rhs}
// FULL-NEXT: %[[B:.*]] = tl.matmul %[[N]], %arg3 {transpose_rhs}
// FULL-NEXT: %[[S:.*]] = tl.silu %[[A]]
// FULL-NEXT: %[[M:.*]] = tl.mul %[[S]], %[[B]]

// REPORT: remark: recompute tl.rmsnorm #0 at {{.*}}: 128 bytes, 128 FLOPs (cheap)
// REPORT: remark: recompute tl.silu at
// REPORT: remark: recompute tl.mul at
// REPORT: remark: recompute tl.add_rmsnorm #1 at
// REPORT: remark: tl-recompute (auto): estimated peak 3360 -> 2592 bytes, 4 values recomputed, 384 of 20452 FLOPs
// REPORT-NOT: remark

// BAD: error: tl-recompute: mode must be none, auto or full, got 'some'
// NEGATIVE: error: tl-recompute: budget must be a number of bytes >= 0, got -5
func.func @two_layers(%arg0: tensor<4x8xf32> {tl.input = "x"}, %arg1: tensor<8xf32> {tl.param = "g"}, %arg2: tensor<16x8xf32> {tl.param = "w1"}, %arg3: tensor<16x8xf32> {tl.param = "w2"}, %arg4: tensor<8x16xf32> {tl.param = "w3"}, %arg5: tensor<8xf32> {tl.param = "h"}, %arg6: tensor<16x8xf32> {tl.param = "v1"}, %arg7: tensor<16x8xf32> {tl.param = "v2"}, %arg8: tensor<8x16xf32> {tl.param = "v3"}) -> (tensor<f32> {tl.output = "loss"}, tensor<8xf32> {tl.grad = "g"}, tensor<16x8xf32> {tl.grad = "w1"}, tensor<16x8xf32> {tl.grad = "w2"}, tensor<8x16xf32> {tl.grad = "w3"}, tensor<8xf32> {tl.grad = "h"}, tensor<16x8xf32> {tl.grad = "v1"}, tensor<16x8xf32> {tl.grad = "v2"}, tensor<8x16xf32> {tl.grad = "v3"}) {
  %result, %rstd = tl.rmsnorm %arg0, %arg1 eps = 1.000000e-05 : tensor<4x8xf32>, tensor<8xf32> -> tensor<4xf32>
  %0 = tl.matmul %result, %arg2 {transpose_rhs} : tensor<4x8xf32>, tensor<16x8xf32> -> tensor<4x16xf32>
  %1 = tl.matmul %result, %arg3 {transpose_rhs} : tensor<4x8xf32>, tensor<16x8xf32> -> tensor<4x16xf32>
  %2 = tl.silu %0 : tensor<4x16xf32>
  %3 = tl.mul %2, %1 : tensor<4x16xf32>
  %4 = tl.matmul %3, %arg4 {transpose_rhs} : tensor<4x16xf32>, tensor<8x16xf32> -> tensor<4x8xf32>
  %sum, %result_0, %rstd_1 = tl.add_rmsnorm %arg0, %4, %arg5 eps = 1.000000e-05 : tensor<4x8xf32>, tensor<8xf32> -> tensor<4xf32>
  %5 = tl.matmul %result_0, %arg6 {transpose_rhs} : tensor<4x8xf32>, tensor<16x8xf32> -> tensor<4x16xf32>
  %6 = tl.matmul %result_0, %arg7 {transpose_rhs} : tensor<4x8xf32>, tensor<16x8xf32> -> tensor<4x16xf32>
  %7 = tl.silu %5 : tensor<4x16xf32>
  %8 = tl.mul %7, %6 : tensor<4x16xf32>
  %9 = tl.matmul %8, %arg8 {transpose_rhs} : tensor<4x16xf32>, tensor<8x16xf32> -> tensor<4x8xf32>
  %10 = tl.add %sum, %9 : tensor<4x8xf32>
  %11 = tl.mul %10, %10 : tensor<4x8xf32>
  %12 = tl.reduce_sum %11, axis = 1 : tensor<4x8xf32> -> tensor<4xf32>
  %13 = tl.reduce_sum %12, axis = 0 : tensor<4xf32> -> tensor<f32>
  %14 = tl.constant dense<1.000000e+00> : tensor<f32>
  %15 = tl.broadcast %14, dims = [] : tensor<f32> -> tensor<4xf32>
  %16 = tl.broadcast %15, dims = [0] : tensor<4xf32> -> tensor<4x8xf32>
  %17 = tl.mul %16, %10 : tensor<4x8xf32>
  %18 = tl.add %17, %17 : tensor<4x8xf32>
  %19 = tl.matmul %18, %arg8 : tensor<4x8xf32>, tensor<8x16xf32> -> tensor<4x16xf32>
  %20 = tl.matmul %18, %8 {transpose_lhs} : tensor<4x8xf32>, tensor<4x16xf32> -> tensor<8x16xf32>
  %21 = tl.mul %19, %6 : tensor<4x16xf32>
  %22 = tl.mul %19, %7 : tensor<4x16xf32>
  %23 = tl.sigmoid %5 : tensor<4x16xf32>
  %24 = tl.constant dense<1.000000e+00> : tensor<4x16xf32>
  %25 = tl.sub %24, %23 : tensor<4x16xf32>
  %26 = tl.mul %5, %25 : tensor<4x16xf32>
  %27 = tl.add %24, %26 : tensor<4x16xf32>
  %28 = tl.mul %23, %27 : tensor<4x16xf32>
  %29 = tl.mul %21, %28 : tensor<4x16xf32>
  %30 = tl.matmul %22, %arg7 : tensor<4x16xf32>, tensor<16x8xf32> -> tensor<4x8xf32>
  %31 = tl.matmul %22, %result_0 {transpose_lhs} : tensor<4x16xf32>, tensor<4x8xf32> -> tensor<16x8xf32>
  %32 = tl.matmul %29, %arg6 : tensor<4x16xf32>, tensor<16x8xf32> -> tensor<4x8xf32>
  %33 = tl.matmul %29, %result_0 {transpose_lhs} : tensor<4x16xf32>, tensor<4x8xf32> -> tensor<16x8xf32>
  %34 = tl.add %30, %32 : tensor<4x8xf32>
  %input_grad, %weight_grad = tl.rmsnorm_grad %34, %sum, %arg5, %rstd_1 : tensor<4x8xf32>, tensor<8xf32>, tensor<4xf32>
  %35 = tl.add %18, %input_grad : tensor<4x8xf32>
  %36 = tl.matmul %35, %arg4 : tensor<4x8xf32>, tensor<8x16xf32> -> tensor<4x16xf32>
  %37 = tl.matmul %35, %3 {transpose_lhs} : tensor<4x8xf32>, tensor<4x16xf32> -> tensor<8x16xf32>
  %38 = tl.mul %36, %1 : tensor<4x16xf32>
  %39 = tl.mul %36, %2 : tensor<4x16xf32>
  %40 = tl.sigmoid %0 : tensor<4x16xf32>
  %41 = tl.sub %24, %40 : tensor<4x16xf32>
  %42 = tl.mul %0, %41 : tensor<4x16xf32>
  %43 = tl.add %24, %42 : tensor<4x16xf32>
  %44 = tl.mul %40, %43 : tensor<4x16xf32>
  %45 = tl.mul %38, %44 : tensor<4x16xf32>
  %46 = tl.matmul %39, %arg3 : tensor<4x16xf32>, tensor<16x8xf32> -> tensor<4x8xf32>
  %47 = tl.matmul %39, %result {transpose_lhs} : tensor<4x16xf32>, tensor<4x8xf32> -> tensor<16x8xf32>
  %48 = tl.matmul %45, %arg2 : tensor<4x16xf32>, tensor<16x8xf32> -> tensor<4x8xf32>
  %49 = tl.matmul %45, %result {transpose_lhs} : tensor<4x16xf32>, tensor<4x8xf32> -> tensor<16x8xf32>
  %50 = tl.add %46, %48 : tensor<4x8xf32>
  %input_grad_2, %weight_grad_3 = tl.rmsnorm_grad %50, %arg0, %arg1, %rstd : tensor<4x8xf32>, tensor<8xf32>, tensor<4xf32>
  return %13, %weight_grad_3, %49, %47, %37, %weight_grad, %33, %31, %20 : tensor<f32>, tensor<8xf32>, tensor<16x8xf32>, tensor<16x8xf32>, tensor<8x16xf32>, tensor<8xf32>, tensor<16x8xf32>, tensor<16x8xf32>, tensor<8x16xf32>
}

// -----

// Not a training step (no gradients): left alone whatever the mode.
// NONE-LABEL: func.func @mlp
// AUTO-LABEL: func.func @mlp
// AUTO: tl.rmsnorm %
// AUTO-NOT: tl.rmsnorm %
// FULL-LABEL: func.func @mlp
// FULL: tl.rmsnorm %
// FULL-NOT: tl.rmsnorm %
func.func @mlp(%x: tensor<4x8xf32> {tl.input = "x"}, %g: tensor<8xf32> {tl.param = "g"},
               %w1: tensor<16x8xf32> {tl.param = "w1"}, %w2: tensor<16x8xf32> {tl.param = "w2"}) -> tensor<f32> {
  %n, %rstd = tl.rmsnorm %x, %g eps = 1.0e-05 : tensor<4x8xf32>, tensor<8xf32> -> tensor<4xf32>
  %a = tl.matmul %n, %w1 {transpose_rhs} : tensor<4x8xf32>, tensor<16x8xf32> -> tensor<4x16xf32>
  %b = tl.matmul %n, %w2 {transpose_rhs} : tensor<4x8xf32>, tensor<16x8xf32> -> tensor<4x16xf32>
  %s = tl.silu %a : tensor<4x16xf32>
  %m = tl.mul %s, %b : tensor<4x16xf32>
  %sq = tl.mul %m, %m : tensor<4x16xf32>
  %r = tl.reduce_sum %sq, axis = 1 : tensor<4x16xf32> -> tensor<4xf32>
  %l = tl.reduce_sum %r, axis = 0 : tensor<4xf32> -> tensor<f32>
  return %l : tensor<f32>
}
