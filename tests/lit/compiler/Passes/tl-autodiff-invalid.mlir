// RUN: tlc-opt %s --tl-autodiff -split-input-file -verify-diagnostics -allow-unregistered-dialect

func.func @not_scalar(%x: tensor<4xf32> {tl.param = "x"}) -> tensor<4xf32> {
  %0 = tl.exp %x : tensor<4xf32>
  // expected-error @+1 {{tl-autodiff: the loss must be a scalar float tensor, got 'tensor<4xf32>'}}
  return %0 : tensor<4xf32>
}

// -----

// expected-error @+1 {{tl-autodiff: the function has no tl.param arguments to differentiate}}
func.func @no_params(%x: tensor<4xf32> {tl.input = "x"}) -> tensor<f32> {
  %0 = tl.reduce_sum %x, axis = 0 : tensor<4xf32> -> tensor<f32>
  return %0 : tensor<f32>
}

// -----

func.func @two_results(%x: tensor<f32> {tl.param = "x"}) -> (tensor<f32>, tensor<f32>) {
  // expected-error @+1 {{tl-autodiff: expected one result, the loss; got 2}}
  return %x, %x : tensor<f32>, tensor<f32>
}

// -----

func.func @no_rule(%x: tensor<4xf32> {tl.param = "x"}) -> tensor<f32> {
  // expected-error @+1 {{'foo.opaque' op has no derivative rule but lies on a path from a parameter to the loss (tl-autodiff)}}
  %0 = "foo.opaque"(%x) : (tensor<4xf32>) -> tensor<4xf32>
  %1 = tl.reduce_sum %0, axis = 0 : tensor<4xf32> -> tensor<f32>
  return %1 : tensor<f32>
}

// -----

// An op without a rule is fine where no parameter reaches it.
func.func @no_rule_off_path(%x: tensor<4xf32> {tl.param = "x"}, %d: tensor<4xf32> {tl.input = "d"}) -> tensor<f32> {
  %0 = "foo.opaque"(%d) : (tensor<4xf32>) -> tensor<4xf32>
  %1 = tl.mul %x, %0 : tensor<4xf32>
  %2 = tl.reduce_sum %1, axis = 0 : tensor<4xf32> -> tensor<f32>
  return %2 : tensor<f32>
}

// -----

func.func @int_loss(%x: tensor<4xf32> {tl.param = "x"}, %i: tensor<i32> {tl.input = "i"}) -> tensor<i32> {
  // expected-error @+1 {{tl-autodiff: the loss must be a scalar float tensor, got 'tensor<i32>'}}
  return %i : tensor<i32>
}

// -----

// A loss through a saved statistic (rstd) has no derivative rule: refused,
// not differentiated as if only y reached the loss.
func.func @through_rstd(%x: tensor<2x4xf32> {tl.param = "x"}, %w: tensor<4xf32> {tl.param = "w"}) -> tensor<f32> {
  // expected-error @+1 {{result #1 (a saved statistic) lies on a path to the loss; tl-autodiff differentiates only the op's first 1 result(s)}}
  %y, %rstd = tl.rmsnorm %x, %w eps = 1.0e-5 : tensor<2x4xf32>, tensor<4xf32> -> tensor<2xf32>
  %s = tl.reduce_sum %rstd, axis = 0 : tensor<2xf32> -> tensor<f32>
  return %s : tensor<f32>
}

// -----

func.func @through_lse(%l: tensor<2x3xf32> {tl.param = "l"}, %t: tensor<2xi32> {tl.input = "t"}) -> tensor<f32> {
  // expected-error @+1 {{result #1 (a saved statistic) lies on a path to the loss}}
  %loss, %lse = tl.cross_entropy %l, %t : tensor<2x3xf32>, tensor<2xi32> -> tensor<f32>, tensor<2xf32>
  %s = tl.reduce_sum %lse, axis = 0 : tensor<2xf32> -> tensor<f32>
  %r = tl.add %s, %loss : tensor<f32>
  return %r : tensor<f32>
}
