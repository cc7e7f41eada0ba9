// A parameter whose element count overflows 64 bits.
func.func @f(%w: tensor<4294967296x4294967296x4294967296xf32> {tl.param = "w"}) -> tensor<4294967296x4294967296x4294967296xf32> {
  return %w : tensor<4294967296x4294967296x4294967296xf32>
}
