// A hand-written loss whose weight has 2^32 elements: legal IR, but beyond
// the 2^31-1 elements per tensor that tlc compile and eval accept.
func.func @f(%w: tensor<65536x65536xf32> {tl.param = "w"}, %x: tensor<2x65536xf32> {tl.input = "x"}) -> tensor<f32> {
  %0 = tl.matmul %x, %w : tensor<2x65536xf32>, tensor<65536x65536xf32> -> tensor<2x65536xf32>
  %1 = tl.reduce_mean %0, axis = 1 : tensor<2x65536xf32> -> tensor<2xf32>
  %2 = tl.reduce_mean %1, axis = 0 : tensor<2xf32> -> tensor<f32>
  return %2 : tensor<f32>
}
