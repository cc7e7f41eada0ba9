// RUN: tlc-opt %s --tl-fuse-rope -split-input-file | FileCheck %s
// RUN: tlc-opt %s --tl-fuse-rope=report=true -split-input-file -verify-diagnostics -o /dev/null

// x * cos + rotate_half(x) * sin, tables [T, D] broadcast over [B, H].
// CHECK-LABEL: func.func @rope
// CHECK: %[[R:.*]] = tl.rope %arg0, %arg1, %arg2 offset = 0 : tensor<2x3x4x8xf32>, tensor<4x8xf32>
// CHECK-NOT: tl.concat
// CHECK: return %[[R]]
func.func @rope(%x: tensor<2x3x4x8xf32>, %cos: tensor<4x8xf32>, %sin: tensor<4x8xf32>) -> tensor<2x3x4x8xf32> {
  %x1 = tl.slice %x, axis = 3, start = 0, size = 4 : tensor<2x3x4x8xf32> -> tensor<2x3x4x4xf32>
  %x2 = tl.slice %x, axis = 3, start = 4, size = 4 : tensor<2x3x4x8xf32> -> tensor<2x3x4x4xf32>
  %n = tl.neg %x2 : tensor<2x3x4x4xf32>
  %rot = tl.concat %n, %x1 axis = 3 : tensor<2x3x4x4xf32>, tensor<2x3x4x4xf32> -> tensor<2x3x4x8xf32>
  %c = tl.broadcast %cos, dims = [2, 3] : tensor<4x8xf32> -> tensor<2x3x4x8xf32>
  %s = tl.broadcast %sin, dims = [2, 3] : tensor<4x8xf32> -> tensor<2x3x4x8xf32>
  %a = tl.mul %x, %c : tensor<2x3x4x8xf32>
  %b = tl.mul %rot, %s : tensor<2x3x4x8xf32>
  // expected-remark @+1 {{tl-fuse-rope: fused rope}}
  %r = tl.add %a, %b : tensor<2x3x4x8xf32>
  return %r : tensor<2x3x4x8xf32>
}

// -----

// Operands in the other order everywhere.
// CHECK-LABEL: func.func @swapped
// CHECK: tl.rope %arg0, %arg1, %arg2
func.func @swapped(%x: tensor<3x4x8xf32>, %cos: tensor<4x8xf32>, %sin: tensor<4x8xf32>) -> tensor<3x4x8xf32> {
  %x1 = tl.slice %x, axis = 2, start = 0, size = 4 : tensor<3x4x8xf32> -> tensor<3x4x4xf32>
  %x2 = tl.slice %x, axis = 2, start = 4, size = 4 : tensor<3x4x8xf32> -> tensor<3x4x4xf32>
  %n = tl.neg %x2 : tensor<3x4x4xf32>
  %rot = tl.concat %n, %x1 axis = 2 : tensor<3x4x4xf32>, tensor<3x4x4xf32> -> tensor<3x4x8xf32>
  %c = tl.broadcast %cos, dims = [1, 2] : tensor<4x8xf32> -> tensor<3x4x8xf32>
  %s = tl.broadcast %sin, dims = [1, 2] : tensor<4x8xf32> -> tensor<3x4x8xf32>
  %a = tl.mul %c, %x : tensor<3x4x8xf32>
  %b = tl.mul %s, %rot : tensor<3x4x8xf32>
  // expected-remark @+1 {{fused rope}}
  %r = tl.add %b, %a : tensor<3x4x8xf32>
  return %r : tensor<3x4x8xf32>
}

// -----

// Rotating the other way, concat(x2, -x1), is a different map: refused.
// CHECK-LABEL: func.func @other_rotation
// CHECK-NOT: tl.rope
func.func @other_rotation(%x: tensor<3x4x8xf32>, %cos: tensor<4x8xf32>, %sin: tensor<4x8xf32>) -> tensor<3x4x8xf32> {
  %x1 = tl.slice %x, axis = 2, start = 0, size = 4 : tensor<3x4x8xf32> -> tensor<3x4x4xf32>
  %x2 = tl.slice %x, axis = 2, start = 4, size = 4 : tensor<3x4x8xf32> -> tensor<3x4x4xf32>
  %n = tl.neg %x1 : tensor<3x4x4xf32>
  %rot = tl.concat %x2, %n axis = 2 : tensor<3x4x4xf32>, tensor<3x4x4xf32> -> tensor<3x4x8xf32>
  %c = tl.broadcast %cos, dims = [1, 2] : tensor<4x8xf32> -> tensor<3x4x8xf32>
  %s = tl.broadcast %sin, dims = [1, 2] : tensor<4x8xf32> -> tensor<3x4x8xf32>
  %a = tl.mul %x, %c : tensor<3x4x8xf32>
  %b = tl.mul %rot, %s : tensor<3x4x8xf32>
  // expected-remark @+1 {{not fused as rope: the halves are rotated the other way: concat(x2, -x1)}}
  %r = tl.add %a, %b : tensor<3x4x8xf32>
  return %r : tensor<3x4x8xf32>
}

// -----

// Uneven halves (3 + 5) are not rotate-half.
// CHECK-LABEL: func.func @uneven
// CHECK-NOT: tl.rope
func.func @uneven(%x: tensor<3x4x8xf32>, %cos: tensor<4x8xf32>, %sin: tensor<4x8xf32>) -> tensor<3x4x8xf32> {
  %x1 = tl.slice %x, axis = 2, start = 0, size = 3 : tensor<3x4x8xf32> -> tensor<3x4x3xf32>
  %x2 = tl.slice %x, axis = 2, start = 3, size = 5 : tensor<3x4x8xf32> -> tensor<3x4x5xf32>
  %n = tl.neg %x2 : tensor<3x4x5xf32>
  %rot = tl.concat %n, %x1 axis = 2 : tensor<3x4x5xf32>, tensor<3x4x3xf32> -> tensor<3x4x8xf32>
  %c = tl.broadcast %cos, dims = [1, 2] : tensor<4x8xf32> -> tensor<3x4x8xf32>
  %s = tl.broadcast %sin, dims = [1, 2] : tensor<4x8xf32> -> tensor<3x4x8xf32>
  %a = tl.mul %x, %c : tensor<3x4x8xf32>
  %b = tl.mul %rot, %s : tensor<3x4x8xf32>
  // expected-remark @+1 {{not fused as rope: the slices are not the two halves of one tensor's last axis}}
  %r = tl.add %a, %b : tensor<3x4x8xf32>
  return %r : tensor<3x4x8xf32>
}

// -----

// batch == seq: the tables broadcast onto (batch, dim) instead of (seq, dim)
// rotate every position of batch b by angle b.
// CHECK-LABEL: func.func @tables_on_batch_axis
// CHECK-NOT: tl.rope
func.func @tables_on_batch_axis(%x: tensor<4x4x8xf32>, %cos: tensor<4x8xf32>, %sin: tensor<4x8xf32>) -> tensor<4x4x8xf32> {
  %x1 = tl.slice %x, axis = 2, start = 0, size = 4 : tensor<4x4x8xf32> -> tensor<4x4x4xf32>
  %x2 = tl.slice %x, axis = 2, start = 4, size = 4 : tensor<4x4x8xf32> -> tensor<4x4x4xf32>
  %n = tl.neg %x2 : tensor<4x4x4xf32>
  %rot = tl.concat %n, %x1 axis = 2 : tensor<4x4x4xf32>, tensor<4x4x4xf32> -> tensor<4x4x8xf32>
  %c = tl.broadcast %cos, dims = [0, 2] : tensor<4x8xf32> -> tensor<4x4x8xf32>
  %s = tl.broadcast %sin, dims = [0, 2] : tensor<4x8xf32> -> tensor<4x4x8xf32>
  %a = tl.mul %x, %c : tensor<4x4x8xf32>
  %b = tl.mul %rot, %s : tensor<4x4x8xf32>
  // expected-remark @+1 {{not fused as rope: the tables are not [T, D] cos/sin tables broadcast over the leading axes of x}}
  %r = tl.add %a, %b : tensor<4x4x8xf32>
  return %r : tensor<4x4x8xf32>
}

// -----

// seq == head_dim (8): square tables, so that the differential fusion tester
// (compiler/Verify) also tries transposed tables and inputs on this seed.
// CHECK-LABEL: func.func @square
// CHECK: tl.rope %arg0, %arg1, %arg2
func.func @square(%x: tensor<2x8x8xf32>, %cos: tensor<8x8xf32>, %sin: tensor<8x8xf32>) -> tensor<2x8x8xf32> {
  %x1 = tl.slice %x, axis = 2, start = 0, size = 4 : tensor<2x8x8xf32> -> tensor<2x8x4xf32>
  %x2 = tl.slice %x, axis = 2, start = 4, size = 4 : tensor<2x8x8xf32> -> tensor<2x8x4xf32>
  %n = tl.neg %x2 : tensor<2x8x4xf32>
  %rot = tl.concat %n, %x1 axis = 2 : tensor<2x8x4xf32>, tensor<2x8x4xf32> -> tensor<2x8x8xf32>
  %c = tl.broadcast %cos, dims = [1, 2] : tensor<8x8xf32> -> tensor<2x8x8xf32>
  %s = tl.broadcast %sin, dims = [1, 2] : tensor<8x8xf32> -> tensor<2x8x8xf32>
  %a = tl.mul %x, %c : tensor<2x8x8xf32>
  %b = tl.mul %rot, %s : tensor<2x8x8xf32>
  // expected-remark @+1 {{fused rope}}
  %r = tl.add %a, %b : tensor<2x8x8xf32>
  return %r : tensor<2x8x8xf32>
}
