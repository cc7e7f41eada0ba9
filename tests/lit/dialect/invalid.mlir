// RUN: tlc-opt %s -split-input-file -verify-diagnostics

func.func @binary_type_mismatch(%a: tensor<4xf32>, %b: tensor<5xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{all non-scalar operands/results must have the same shape and base type}}
  %0 = "tl.add"(%a, %b) : (tensor<4xf32>, tensor<5xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

func.func @dynamic_shape(%a: tensor<?xf32>) -> tensor<?xf32> {
  // expected-error @+1 {{must be statically shaped tensor}}
  %0 = tl.exp %a : tensor<?xf32>
  return %0 : tensor<?xf32>
}

// -----

func.func @int_exp(%a: tensor<4xi32>) -> tensor<4xi32> {
  // expected-error @+1 {{must be statically shaped tensor of 32-bit float or bfloat16 type or 16-bit float or 64-bit float values}}
  %0 = tl.exp %a : tensor<4xi32>
  return %0 : tensor<4xi32>
}

// -----

func.func @convert_float_to_int(%a: tensor<4xf32>) -> tensor<4xi32> {
  // expected-error @+1 {{cannot convert 'f32' to 'i32'}}
  %0 = tl.convert %a : tensor<4xf32> -> tensor<4xi32>
  return %0 : tensor<4xi32>
}

// -----

func.func @iota_axis() -> tensor<4x4xi32> {
  // expected-error @+1 {{axis 2 is out of range for a tensor of rank 2}}
  %0 = tl.iota axis = 2 : tensor<4x4xi32>
  return %0 : tensor<4x4xi32>
}

// -----

func.func @broadcast_rank(%a: tensor<4xf32>) -> tensor<3x4xf32> {
  // expected-error @+1 {{needs one entry in 'dims' per operand dimension (1), got 2}}
  %0 = tl.broadcast %a, dims = [0, 1] : tensor<4xf32> -> tensor<3x4xf32>
  return %0 : tensor<3x4xf32>
}

// -----

func.func @broadcast_size(%a: tensor<4xf32>) -> tensor<3x5xf32> {
  // expected-error @+1 {{operand dimension 0 (4) can't broadcast to result dimension 1 (5)}}
  %0 = tl.broadcast %a, dims = [1] : tensor<4xf32> -> tensor<3x5xf32>
  return %0 : tensor<3x5xf32>
}

// -----

func.func @broadcast_order(%a: tensor<3x4xf32>) -> tensor<4x3xf32> {
  // expected-error @+1 {{'dims' must be strictly increasing}}
  %0 = tl.broadcast %a, dims = [1, 0] : tensor<3x4xf32> -> tensor<4x3xf32>
  return %0 : tensor<4x3xf32>
}

// -----

func.func @broadcast_out_of_range(%a: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{dims[0] = 3 is out of range for a result of rank 1}}
  %0 = tl.broadcast %a, dims = [3] : tensor<4xf32> -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

func.func @broadcast_elem(%a: tensor<4xf32>) -> tensor<4xf16> {
  // expected-error @+1 {{operand and result element types differ}}
  %0 = tl.broadcast %a, dims = [0] : tensor<4xf32> -> tensor<4xf16>
  return %0 : tensor<4xf16>
}

// -----

func.func @reduce_axis(%a: tensor<4x8xf32>) -> tensor<4xf32> {
  // expected-error @+2 {{axis 2 is out of range for a tensor of rank 2}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = tl.reduce_sum %a, axis = 2 : tensor<4x8xf32> -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

func.func @reduce_result(%a: tensor<4x8xf32>) -> tensor<8xf32> {
  // expected-error @+2 {{failed to infer returned types}}
  // expected-error @+1 {{inferred type(s) 'tensor<4xf32>' are incompatible with return type(s) of operation 'tensor<8xf32>'}}
  %0 = tl.reduce_mean %a, axis = 1 : tensor<4x8xf32> -> tensor<8xf32>
  return %0 : tensor<8xf32>
}

// -----

func.func @matmul_contraction(%a: tensor<4x8xf32>, %b: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+2 {{contraction sizes differ: 8 vs 4}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = tl.matmul %a, %b : tensor<4x8xf32>, tensor<4x8xf32> -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

func.func @matmul_batch(%a: tensor<2x4x8xf32>, %b: tensor<3x8x4xf32>) -> tensor<2x4x4xf32> {
  // expected-error @+2 {{batch dimension 0 differs: 2 vs 3}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = tl.matmul %a, %b : tensor<2x4x8xf32>, tensor<3x8x4xf32> -> tensor<2x4x4xf32>
  return %0 : tensor<2x4x4xf32>
}

// -----

func.func @matmul_rank(%a: tensor<8xf32>, %b: tensor<8x4xf32>) -> tensor<4xf32> {
  // expected-error @+2 {{operands must have rank >= 2}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = tl.matmul %a, %b : tensor<8xf32>, tensor<8x4xf32> -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

func.func @matmul_rhs_rank(%a: tensor<2x2x4x8xf32>, %b: tensor<2x8x4xf32>) -> tensor<2x2x4x4xf32> {
  // expected-error @+2 {{rhs must be a matrix or have the same rank as lhs (4), got rank 3}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = tl.matmul %a, %b : tensor<2x2x4x8xf32>, tensor<2x8x4xf32> -> tensor<2x2x4x4xf32>
  return %0 : tensor<2x2x4x4xf32>
}

// -----

func.func @matmul_types(%a: tensor<4x8xf32>, %b: tensor<8x4xbf16>) -> tensor<4x4xf32> {
  // expected-error @+2 {{operand element types differ: 'f32' vs 'bf16'}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = tl.matmul %a, %b : tensor<4x8xf32>, tensor<8x4xbf16> -> tensor<4x4xf32>
  return %0 : tensor<4x4xf32>
}

// -----

func.func @reshape_count(%a: tensor<4x8xf32>) -> tensor<30xf32> {
  // expected-error @+1 {{can't reshape 32 elements into 30}}
  %0 = tl.reshape %a : tensor<4x8xf32> -> tensor<30xf32>
  return %0 : tensor<30xf32>
}

// -----

func.func @reshape_elem(%a: tensor<4x8xf32>) -> tensor<32xf64> {
  // expected-error @+1 {{operand and result element types differ}}
  %0 = tl.reshape %a : tensor<4x8xf32> -> tensor<32xf64>
  return %0 : tensor<32xf64>
}

// -----

func.func @transpose_perm(%a: tensor<4x8xf32>) -> tensor<8x4xf32> {
  // expected-error @+2 {{'perm' is not a permutation}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = tl.transpose %a, perm = [1, 1] : tensor<4x8xf32> -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @transpose_size(%a: tensor<4x8xf32>) -> tensor<8x4xf32> {
  // expected-error @+2 {{'perm' has 3 entries for a tensor of rank 2}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = tl.transpose %a, perm = [1, 0, 2] : tensor<4x8xf32> -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @slice_bounds(%a: tensor<4x8xf32>) -> tensor<4x4xf32> {
  // expected-error @+2 {{slice of 4 from 6 is outside dimension 1 of size 8}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = tl.slice %a, axis = 1, start = 6, size = 4 : tensor<4x8xf32> -> tensor<4x4xf32>
  return %0 : tensor<4x4xf32>
}

// -----

func.func @slice_start_overflow(%a: tensor<8xf32>) -> tensor<2xf32> {
  // expected-error @+2 {{slice of 2 from 9223372036854775807 is outside dimension 0 of size 8}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = tl.slice %a, axis = 0, start = 9223372036854775807, size = 2 : tensor<8xf32> -> tensor<2xf32>
  return %0 : tensor<2xf32>
}

// -----

func.func @concat_shapes(%a: tensor<4x8xf32>, %b: tensor<5x8xf32>) -> tensor<4x16xf32> {
  // expected-error @+2 {{operands differ in dimension 0 (4 vs 5)}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = tl.concat %a, %b axis = 1 : tensor<4x8xf32>, tensor<5x8xf32> -> tensor<4x16xf32>
  return %0 : tensor<4x16xf32>
}

// -----

func.func @concat_types(%a: tensor<4x8xf32>, %b: tensor<4x8xf16>) -> tensor<4x16xf32> {
  // expected-error @+2 {{operands differ in element type or rank}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = tl.concat %a, %b axis = 1 : tensor<4x8xf32>, tensor<4x8xf16> -> tensor<4x16xf32>
  return %0 : tensor<4x16xf32>
}

// -----

func.func @gather_table(%t: tensor<4x8x2xf32>, %ids: tensor<3xi32>) -> tensor<3x8xf32> {
  // expected-error @+2 {{table must be a matrix [rows, width], got rank 3}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = tl.gather %t[%ids] : tensor<4x8x2xf32>, tensor<3xi32> -> tensor<3x8xf32>
  return %0 : tensor<3x8xf32>
}

// -----

func.func @gather_ids(%t: tensor<4x8xf32>, %ids: tensor<3xf32>) -> tensor<3x8xf32> {
  // expected-error @+1 {{must be statically shaped tensor of 32-bit signless integer values}}
  %0 = tl.gather %t[%ids] : tensor<4x8xf32>, tensor<3xf32> -> tensor<3x8xf32>
  return %0 : tensor<3x8xf32>
}

// -----

func.func @select_shapes(%c: tensor<4xi1>, %a: tensor<5xf32>) -> tensor<5xf32> {
  // expected-error @+1 {{failed to verify that all of {condition, result} have same shape}}
  %0 = tl.select %c, %a, %a : tensor<4xi1>, tensor<5xf32>
  return %0 : tensor<5xf32>
}

// -----

func.func @cmp_types(%a: tensor<4xi32>, %b: tensor<4xf32>) -> tensor<4xi1> {
  // expected-error @+1 {{requires all operands to have the same type}}
  %0 = "tl.cmp"(%a, %b) {predicate = 5 : i32} : (tensor<4xi32>, tensor<4xf32>) -> tensor<4xi1>
  return %0 : tensor<4xi1>
}

// -----

func.func @scatter_shape(%u: tensor<3x4xf32>, %ids: tensor<3xi32>) -> tensor<10x5xf32> {
  // expected-error @+1 {{updates must have the ids' shape followed by the row width 5}}
  %0 = tl.scatter_add %u[%ids] : tensor<3x4xf32>, tensor<3xi32> -> tensor<10x5xf32>
  return %0 : tensor<10x5xf32>
}

// -----

func.func @scatter_rank(%u: tensor<3x4xf32>, %ids: tensor<3xi32>) -> tensor<10x4x1xf32> {
  // expected-error @+1 {{result must be a matrix [rows, width], got rank 3}}
  %0 = tl.scatter_add %u[%ids] : tensor<3x4xf32>, tensor<3xi32> -> tensor<10x4x1xf32>
  return %0 : tensor<10x4x1xf32>
}

// -----

// expected-error @+1 {{unknown tl result attribute 'tl.gradient'}}
func.func @unknown_result_attr(%w: tensor<4xf32>) -> (tensor<4xf32> {tl.gradient = "w"}) {
  return %w : tensor<4xf32>
}

// -----

// expected-error @+1 {{'tl.grad' of result #0 must be a non-empty string}}
func.func @empty_grad_name(%w: tensor<4xf32>) -> (tensor<4xf32> {tl.grad = 3 : i64}) {
  return %w : tensor<4xf32>
}

// -----

// expected-error @+1 {{'tl.decay' of argument #0 needs a 'tl.param' beside it}}
func.func @decay_on_an_input(%x: tensor<4xf32> {tl.input = "x", tl.decay = true}) {
  return
}

// -----

// expected-error @+1 {{'tl.decay' of argument #0 must be true or false}}
func.func @decay_not_bool(%w: tensor<4xf32> {tl.param = "w", tl.decay = 1 : i32}) {
  return
}

// -----

// expected-error @+1 {{'tl.init' of argument #0: unknown kind "uniform" (normal, ones, zeros)}}
func.func @unknown_init(%w: tensor<4xf32> {tl.param = "w", tl.init = {kind = "uniform"}}) {
  return
}

// -----

// expected-error @+1 {{'tl.init' of argument #0: kind "normal" takes one positive float 'std'}}
func.func @normal_without_std(%w: tensor<4x4xf32> {tl.param = "w", tl.init = {kind = "normal"}}) {
  return
}

// -----

func.func @policy_is_fine(%w: tensor<4x4xf32> {tl.param = "w", tl.init = {kind = "normal", std = 0.02 : f64}, tl.decay = true},
                          %g: tensor<4xf32> {tl.param = "g", tl.init = {kind = "ones"}, tl.decay = false}) {
  return
}

// -----

// expected-error @+1 {{unknown tl argument attribute 'tl.weight'}}
func.func @unknown_arg_attr(%w: tensor<4xf32> {tl.weight = "w"}) {
  return
}

// -----

// expected-error @+1 {{'tl.param' of argument #0 must be a non-empty string}}
func.func @empty_param_name(%w: tensor<4xf32> {tl.param = ""}) {
  return
}

// -----

// expected-error @+1 {{arguments #0 and #1 share the name 'w'}}
func.func @duplicate_names(%a: tensor<4xf32> {tl.param = "w"}, %b: tensor<4xf32> {tl.input = "w"}) {
  return
}

// -----

// expected-error @+1 {{argument #0 cannot be both a parameter and an input}}
func.func @param_and_input(%a: tensor<4xf32> {tl.param = "w", tl.input = "x"}) {
  return
}

// -----

// expected-error @+1 {{argument #0 ('w') must be a statically shaped tensor}}
func.func @dynamic_param(%a: tensor<?xf32> {tl.param = "w"}) {
  return
}

// -----

// expected-error @+1 {{'tl.model' must be a dictionary}}
func.func @model_not_dict() attributes {tl.model = 3 : i64} {
  return
}

// -----

// expected-error @+1 {{'tl.model' field 'dims' must be an integer, float or string}}
func.func @model_field() attributes {tl.model = {dims = [1, 2]}} {
  return
}

// -----

func.func @rmsnorm_weight(%x: tensor<4x8xf32>, %w: tensor<7xf32>) {
  // expected-error @+1 {{weight and bias must be 'tensor<8xf32>', got 'tensor<7xf32>'}}
  %y, %r = tl.rmsnorm %x, %w eps = 1.0e-5 : tensor<4x8xf32>, tensor<7xf32> -> tensor<4xf32>
  return
}

// -----

func.func @rmsnorm_rstd(%x: tensor<4x8xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{per-row statistics must be 'tensor<4xf32>', got 'tensor<8xf32>'}}
  %y, %r = tl.rmsnorm %x, %w eps = 1.0e-5 : tensor<4x8xf32>, tensor<8xf32> -> tensor<8xf32>
  return
}

// -----

func.func @rope_odd(%x: tensor<2x4x5xf32>, %c: tensor<4x5xf32>) {
  // expected-error @+1 {{the rotated dimension (5) must be even}}
  %y = tl.rope %x, %c, %c offset = 0 : tensor<2x4x5xf32>, tensor<4x5xf32>
  return
}

// -----

func.func @rope_positions(%x: tensor<2x4x8xf32>, %c: tensor<6x8xf32>) {
  // expected-error @+1 {{positions from 3 for 4 rows exceed the 6-row tables}}
  %y = tl.rope %x, %c, %c offset = 3 : tensor<2x4x8xf32>, tensor<6x8xf32>
  return
}

// -----

func.func @attention_groups(%q: tensor<1x6x4x8xf32>, %k: tensor<1x4x4x8xf32>) {
  // expected-error @+1 {{key/value heads (4) must divide query heads (6)}}
  %o, %l = tl.attention %q, %k, %k scale = 1.0 : tensor<1x6x4x8xf32>, tensor<1x4x4x8xf32> -> tensor<1x6x4xf32>
  return
}

// -----

func.func @attention_causal(%q: tensor<1x2x4x8xf32>, %k: tensor<1x2x6x8xf32>) {
  // expected-error @+1 {{causal attention needs as many keys as queries}}
  %o, %l = tl.attention %q, %k, %k scale = 1.0 causal : tensor<1x2x4x8xf32>, tensor<1x2x6x8xf32> -> tensor<1x2x4xf32>
  return
}

// -----

func.func @cross_entropy_rows(%l: tensor<6x10xf32>, %t: tensor<5xi32>) {
  // expected-error @+1 {{logits must be [N, V] and targets [N]}}
  %loss, %lse = tl.cross_entropy %l, %t : tensor<6x10xf32>, tensor<5xi32> -> tensor<f32>, tensor<6xf32>
  return
}

// -----

func.func @fusion_yield(%a: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{yielded values must match the results' types}}
  %f = tl.fusion(%a) : (tensor<4xf32>) -> tensor<4xf32> {
  ^bb0(%x: tensor<4xf32>):
    %r = tl.reduce_sum %x, axis = 0 : tensor<4xf32> -> tensor<f32>
    tl.yield %r : tensor<f32>
  }
  return %f : tensor<4xf32>
}

// -----

// TL_BoundedShapes: no extent of 0 (kernels and the evaluator divide by extents).
func.func @zero_extent(%x: tensor<1x0xf32>) -> tensor<1x0xf32> {
  // expected-error @+1 {{operand #0 ('tensor<1x0xf32>') has an extent of 0: every extent must be at least 1}}
  %0 = tl.mul %x, %x : tensor<1x0xf32>
  return %0 : tensor<1x0xf32>
}

// -----

// TL_BoundedShapes: element counts that would overflow byte counts are refused
// before any verifier multiplies them.
func.func @huge(%x: tensor<9223372036854775807xf32>, %w: tensor<4xf32>) -> tensor<2xf32> {
  // expected-error @+1 {{operand #0 ('tensor<9223372036854775807xf32>') has more than 2^50 elements}}
  %z = tl.concat %x, %x, %w axis = 0 : tensor<9223372036854775807xf32>, tensor<9223372036854775807xf32>, tensor<4xf32> -> tensor<2xf32>
  return %z : tensor<2xf32>
}

// -----

// An offset near INT64_MAX: checked without computing offset + T.
func.func @rope_offset_overflow(%q: tensor<1x1x2x4xf32>, %c: tensor<20x4xf32>) -> tensor<1x1x2x4xf32> {
  // expected-error @+1 {{positions from 9223372036854775807 for 2 rows exceed the 20-row tables}}
  %0 = tl.rope_grad %q, %c, %c offset = 9223372036854775807 : tensor<1x1x2x4xf32>, tensor<20x4xf32>
  return %0 : tensor<1x1x2x4xf32>
}

// -----

func.func @attention_grad_kv_heads(%q: tensor<1x8x4x2xf32>, %k: tensor<1x3x4x2xf32>, %lse: tensor<1x8x4xf32>) -> tensor<1x8x4x2xf32> {
  // expected-error @+1 {{key/value heads (3) must divide query heads (8)}}
  %gq, %gk, %gv = tl.attention_grad %q, %q, %k, %k, %q, %lse scale = 0.5 : tensor<1x8x4x2xf32>, tensor<1x3x4x2xf32>, tensor<1x8x4xf32>
  return %gq : tensor<1x8x4x2xf32>
}

// -----

func.func @rmsnorm_grad_rstd(%x: tensor<1x2x4xf32>, %w: tensor<4xf32>, %r: tensor<1xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{per-row statistics must be 'tensor<1x2xf32>', got 'tensor<1xf32>'}}
  %dx, %dw = tl.rmsnorm_grad %x, %x, %w, %r : tensor<1x2x4xf32>, tensor<4xf32>, tensor<1xf32>
  return %dw : tensor<4xf32>
}

// -----

// expected-error @+1 {{'tl.model' field 'dim' does not fit in 64 bits}}
func.func @model_i128(%w: tensor<2xf32> {tl.param = "w"}) -> tensor<2xf32> attributes {tl.model = {dim = 99999999999999999999999999 : i128}} {
  return %w : tensor<2xf32>
}

// -----

// expected-error @+1 {{'tl.model' field 'norm_eps' must be finite}}
func.func @model_nan(%w: tensor<2xf32> {tl.param = "w"}) -> tensor<2xf32> attributes {tl.model = {norm_eps = 0x7FF8000000000000 : f64}} {
  return %w : tensor<2xf32>
}

// -----

// bthd: T is the third axis from the end, so 7 positions need 7 table rows.
func.func @rope_bthd_positions(%x: tensor<1x7x2x8xf32>, %c: tensor<6x8xf32>) {
  // expected-error @+1 {{positions from 0 for 7 rows exceed the 6-row tables}}
  %y = tl.rope %x, %c, %c offset = 0 bthd : tensor<1x7x2x8xf32>, tensor<6x8xf32>
  return
}

// -----

func.func @rope_bthd_rank(%x: tensor<7x8xf32>, %c: tensor<8x8xf32>) {
  // expected-error @+1 {{input must have rank >= 3 ([..., T, H, D]) with bthd}}
  %y = tl.rope %x, %c, %c offset = 0 bthd : tensor<7x8xf32>, tensor<8x8xf32>
  return
}

// -----

// bthd keeps lse [B, H, T]: a [B, T, H] one is refused.
func.func @attention_bthd_lse(%q: tensor<1x4x6x8xf32>, %k: tensor<1x4x2x8xf32>) {
  // expected-error @+1 {{the log-sum-exp must be 'tensor<1x6x4xf32>'}}
  %o, %l = tl.attention %q, %k, %k scale = 1.0 bthd : tensor<1x4x6x8xf32>, tensor<1x4x2x8xf32> -> tensor<1x4x6xf32>
  return
}

// -----

func.func @attention_bthd_groups(%q: tensor<1x4x6x8xf32>, %k: tensor<1x4x4x8xf32>) {
  // expected-error @+1 {{key/value heads (4) must divide query heads (6)}}
  %o, %l = tl.attention %q, %k, %k scale = 1.0 bthd : tensor<1x4x6x8xf32>, tensor<1x4x4x8xf32> -> tensor<1x6x4xf32>
  return
}

// -----

func.func @rmsnorm_grad_residual(%x: tensor<1x2x4xf32>, %w: tensor<4xf32>, %r: tensor<1x2xf32>, %p: tensor<1x2x4xbf16>) {
  // expected-error @+1 {{the residual gradient must be 'tensor<1x2x4xf32>', got 'tensor<1x2x4xbf16>'}}
  %dx, %dw = tl.rmsnorm_grad %x, %x, %w, %r plus %p : tensor<1x2x4xf32>, tensor<4xf32>, tensor<1x2xf32>, tensor<1x2x4xbf16>
  return
}
