// The second argument is neither a parameter nor an input.

func.func @f(%a: tensor<4xf32> {tl.param = "a"}, %b: tensor<4xf32>) -> tensor<4xf32> {
  return %a : tensor<4xf32>
}
