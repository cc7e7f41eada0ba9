// RUN: tlc-opt %s --tl-fuse-swiglu -split-input-file | FileCheck %s
// RUN: tlc-opt %s --tl-fuse-swiglu=report=true -split-input-file -verify-diagnostics -o /dev/null

// CHECK-LABEL: func.func @silu_times_up
// CHECK: %[[H:.*]] = tl.swiglu %arg0, %arg1 : tensor<4x8xf32>
// CHECK-NOT: tl.silu
// CHECK: return %[[H]]
func.func @silu_times_up(%gate: tensor<4x8xf32>, %up: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %s = tl.silu %gate : tensor<4x8xf32>
  // expected-remark @+1 {{tl-fuse-swiglu: fused swiglu}}
  %h = tl.mul %s, %up : tensor<4x8xf32>
  return %h : tensor<4x8xf32>
}

// -----

// SiLU written out as gate * sigmoid(gate), up on the left.
// CHECK-LABEL: func.func @written_out
// CHECK: tl.swiglu %arg0, %arg1
func.func @written_out(%gate: tensor<4x8xf32>, %up: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %sig = tl.sigmoid %gate : tensor<4x8xf32>
  %s = tl.mul %sig, %gate : tensor<4x8xf32>
  // expected-remark @+1 {{fused swiglu}}
  %h = tl.mul %up, %s : tensor<4x8xf32>
  return %h : tensor<4x8xf32>
}

// -----

// x * sigmoid(y) is a gated unit, not SiLU: refused.
// CHECK-LABEL: func.func @gated_unit
// CHECK-NOT: tl.swiglu
func.func @gated_unit(%x: tensor<4x8xf32>, %y: tensor<4x8xf32>, %up: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %sig = tl.sigmoid %y : tensor<4x8xf32>
  %s = tl.mul %x, %sig : tensor<4x8xf32>
  // expected-remark @+1 {{not fused as swiglu: the sigmoid is of another tensor than the one it scales: a gated unit, not SiLU}}
  %h = tl.mul %s, %up : tensor<4x8xf32>
  return %h : tensor<4x8xf32>
}

// -----

// Square operands, so that the differential fusion tester (compiler/Verify)
// also tries transposed gates and ups on this seed.
// CHECK-LABEL: func.func @square
// CHECK: tl.swiglu %arg0, %arg1
func.func @square(%gate: tensor<4x4xf32>, %up: tensor<4x4xf32>) -> tensor<4x4xf32> {
  %sig = tl.sigmoid %gate : tensor<4x4xf32>
  %s = tl.mul %gate, %sig : tensor<4x4xf32>
  // expected-remark @+1 {{fused swiglu}}
  %h = tl.mul %s, %up : tensor<4x4xf32>
  return %h : tensor<4x4xf32>
}
