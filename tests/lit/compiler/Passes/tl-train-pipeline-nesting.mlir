// The training pipeline runs on the module; nested under func.func it is
// refused with a message (MLIR's pass manager would abort with LLVM ERROR).
// RUN: not tlc-opt %s --pass-pipeline='builtin.module(func.func(tl-train-pipeline))' 2>&1 | FileCheck %s
// CHECK: tl-train-pipeline runs on builtin.module, not nested under 'func.func'
// CHECK-NOT: LLVM ERROR

func.func @f(%x: tensor<2x4xf32> {tl.param = "x"}) -> tensor<f32> {
  %s = tl.reduce_sum %x, axis = 1 : tensor<2x4xf32> -> tensor<2xf32>
  %t = tl.reduce_sum %s, axis = 0 : tensor<2xf32> -> tensor<f32>
  return %t : tensor<f32>
}
