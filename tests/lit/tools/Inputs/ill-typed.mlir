// A matmul whose contraction sizes differ.
func.func @f(%a: tensor<4x8xf32> {tl.param = "a"}, %b: tensor<4x8xf32> {tl.param = "b"})
    -> tensor<4x8xf32> {
  %0 = tl.matmul %a, %b : tensor<4x8xf32>, tensor<4x8xf32> -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}
