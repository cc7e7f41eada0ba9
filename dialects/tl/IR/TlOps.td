//===- TlOps.td - tl dialect operations --------------------*- tablegen -*-===//
#ifndef TL_OPS_TD
#define TL_OPS_TD

include "dialects/tl/IR/TlBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "dialects/tl/IR/TlInterfaces.td"

// Shorthand: the op implements its derivative rule in TlVjp.cpp.
defvar TL_Vjp = DeclareOpInterfaceMethods<TL_DifferentiableOpInterface>;

//===----------------------------------------------------------------------===//
// Elementwise math. Operands and result share one type; broadcasting is
// always explicit (tl.broadcast), which keeps shapes obvious to every pass.
//===----------------------------------------------------------------------===//

class TL_UnaryOp<string mnemonic, string formula, list<Trait> traits = []>
    : TL_Op<mnemonic, !listconcat(traits, [Pure, Elementwise,
        SameOperandsAndResultType, InferTypeOpInterface, TL_Vjp])> {
  let summary = "elementwise " # formula;
  let description = "Computes `" # formula # "` for every element.\n\n"
      # "Example:\n\n```mlir\n%y = tl." # mnemonic
      # " %x : tensor<4x8xf32>\n```";
  let arguments = (ins TL_FloatTensor:$input);
  let results = (outs TL_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
}

def TL_NegOp : TL_UnaryOp<"neg", "-x">;
def TL_ExpOp : TL_UnaryOp<"exp", "exp(x)">;
def TL_LogOp : TL_UnaryOp<"log", "log(x)">;
def TL_SqrtOp : TL_UnaryOp<"sqrt", "sqrt(x)">;
def TL_RsqrtOp : TL_UnaryOp<"rsqrt", "1 / sqrt(x)">;
def TL_SigmoidOp : TL_UnaryOp<"sigmoid", "1 / (1 + exp(-x))">;
def TL_SiluOp : TL_UnaryOp<"silu", "x * sigmoid(x)">;
def TL_TanhOp : TL_UnaryOp<"tanh", "tanh(x)">;
def TL_SinOp : TL_UnaryOp<"sin", "sin(x)">;
def TL_CosOp : TL_UnaryOp<"cos", "cos(x)">;

def TL_PowOp : TL_Op<"pow", [Pure, Elementwise, SameOperandsAndResultType,
                             InferTypeOpInterface, TL_Vjp]> {
  let summary = "elementwise power by a constant exponent";
  let description = [{
    Raises every element to a constant real exponent: `x ** exponent`.
    A negative base with a non-integer exponent gives NaN.

    Example:

    ```mlir
    %sq = tl.pow %x, 2.0 : tensor<4x8xf32>
    ```
  }];
  let arguments = (ins TL_FloatTensor:$input, F64Attr:$exponent);
  let results = (outs TL_FloatTensor:$result);
  let assemblyFormat = "$input `,` $exponent attr-dict `:` type($result)";
}

class TL_BinaryOp<string mnemonic, string formula, list<Trait> traits = []>
    : TL_Op<mnemonic, !listconcat(traits, [Pure, Elementwise,
        SameOperandsAndResultType, InferTypeOpInterface, TL_Vjp])> {
  let summary = "elementwise " # formula;
  let description = "Computes `" # formula # "` for every pair of elements. "
      # "Both operands have the result's type; use `tl.broadcast` first "
      # "to combine tensors of different shapes.\n\n"
      # "Example:\n\n```mlir\n%z = tl." # mnemonic
      # " %x, %y : tensor<4x8xf32>\n```";
  let arguments = (ins TL_FloatTensor:$lhs, TL_FloatTensor:$rhs);
  let results = (outs TL_FloatTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($result)";
}

def TL_AddOp : TL_BinaryOp<"add", "x + y", [Commutative]>;
def TL_SubOp : TL_BinaryOp<"sub", "x - y">;
def TL_MulOp : TL_BinaryOp<"mul", "x * y", [Commutative]>;
def TL_DivOp : TL_BinaryOp<"div", "x / y">;
def TL_MaxOp : TL_BinaryOp<"max", "max(x, y)", [Commutative]>;
def TL_MinOp : TL_BinaryOp<"min", "min(x, y)", [Commutative]>;

def TL_CmpOp : TL_Op<"cmp", [Pure, Elementwise, SameTypeOperands,
                             DeclareOpInterfaceMethods<InferTypeOpInterface>]> {
  let summary = "elementwise comparison producing an i1 mask";
  let description = [{
    Compares two tensors of the same type element by element with one of the
    predicates `eq, ne, lt, le, gt, ge`; the result has the operands' shape
    and element type `i1`. Used with `tl.select` for causal masks and one-hot
    target selection.

    Example:

    ```mlir
    %causal = tl.cmp ge, %row, %col : tensor<16x16xi32>
    ```
  }];
  let arguments = (ins TL_CmpPredicate:$predicate, TL_NumericTensor:$lhs,
                       TL_NumericTensor:$rhs);
  let results = (outs TL_MaskTensor:$result);
  let assemblyFormat = "$predicate `,` $lhs `,` $rhs attr-dict `:` type($lhs)";
}

def TL_SelectOp : TL_Op<"select", [Pure, Elementwise,
    AllTypesMatch<["true_value", "false_value", "result"]>,
    AllShapesMatch<["condition", "result"]>, TL_Vjp]> {
  let summary = "elementwise choice between two tensors by a mask";
  let description = [{
    `result[i] = condition[i] ? true_value[i] : false_value[i]`.

    Example:

    ```mlir
    %masked = tl.select %causal, %scores, %neg_inf : tensor<16x16xi1>, tensor<16x16xf32>
    ```
  }];
  let arguments = (ins TL_MaskTensor:$condition, TL_NumericTensor:$true_value,
                       TL_NumericTensor:$false_value);
  let results = (outs TL_NumericTensor:$result);
  let assemblyFormat = [{
    $condition `,` $true_value `,` $false_value attr-dict `:`
    type($condition) `,` type($result)
  }];
}

def TL_ConvertOp : TL_Op<"convert", [Pure, Elementwise,
                                     AllShapesMatch<["input", "result"]>, TL_Vjp]> {
  let summary = "elementwise element-type conversion";
  let description = [{
    Converts between float types (rounding to nearest even when narrowing),
    from i32 to a float type (exactly where representable), or from i1 to a
    float or i32 (0 or 1).

    Example:

    ```mlir
    %h = tl.convert %x : tensor<4x8xf32> -> tensor<4x8xbf16>
    ```
  }];
  let arguments = (ins TL_Tensor:$input);
  let results = (outs TL_NumericTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Constants and index generators.
//===----------------------------------------------------------------------===//

def TL_ConstantOp : TL_Op<"constant", [Pure, ConstantLike,
    DeclareOpInterfaceMethods<InferTypeOpInterface>]> {
  let summary = "constant tensor";
  let description = [{
    A tensor whose value is given by a dense elements attribute, usually a
    splat such as an epsilon or `-inf`.

    Example:

    ```mlir
    %eps = tl.constant dense<1.000000e-05> : tensor<2x16x1xf32>
    ```
  }];
  let arguments = (ins ElementsAttr:$value);
  let results = (outs TL_Tensor:$result);
  let assemblyFormat = "$value attr-dict";
  let hasFolder = 1;
}

def TL_IotaOp : TL_Op<"iota", [Pure]> {
  let summary = "tensor of indices along one axis";
  let description = [{
    `result[i0, ..., in] = i_axis`, converted to the result's element type.
    Positions for rotary embedding and the row/column indices of causal masks
    are built from it.

    Example:

    ```mlir
    %pos = tl.iota axis = 0 : tensor<16x32xf32>
    ```
  }];
  let arguments = (ins I64Attr:$axis);
  let results = (outs TL_NumericTensor:$result);
  let assemblyFormat = "`axis` `=` $axis attr-dict `:` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Shape and data movement.
//===----------------------------------------------------------------------===//

def TL_BroadcastOp : TL_Op<"broadcast", [Pure, TL_Vjp]> {
  let summary = "broadcast a tensor into a larger shape";
  let description = [{
    Operand dimension `i` becomes result dimension `dims[i]` (`dims` strictly
    increasing); it must either equal that result dimension or be 1, in which
    case it is repeated. Result dimensions not named in `dims` are new.

    Example:

    ```mlir
    // [T, D] -> [B, T, D]
    %b = tl.broadcast %x, dims = [1, 2] : tensor<16x64xf32> -> tensor<2x16x64xf32>
    ```
  }];
  let arguments = (ins TL_Tensor:$input, DenseI64ArrayAttr:$dims);
  let results = (outs TL_Tensor:$result);
  let assemblyFormat = [{
    $input `,` `dims` `=` $dims attr-dict `:` type($input) `->` type($result)
  }];
  let hasVerifier = 1;
}

class TL_ReduceOp<string mnemonic, string what>
    : TL_Op<mnemonic, [Pure, DeclareOpInterfaceMethods<InferTypeOpInterface>,
                       TL_Vjp]> {
  let summary = what # " over one axis";
  let description = "Reduces `input` with " # what # " over dimension `axis`, "
      # "which the result drops (rank 0 results are scalars).\n\n"
      # "Example:\n\n```mlir\n%r = tl." # mnemonic
      # " %x, axis = 1 : tensor<4x8xf32> -> tensor<4xf32>\n```";
  let arguments = (ins TL_FloatTensor:$input, I64Attr:$axis);
  let results = (outs TL_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` `axis` `=` $axis attr-dict `:` type($input) `->` type($result)
  }];
}

def TL_ReduceSumOp : TL_ReduceOp<"reduce_sum", "the sum">;
def TL_ReduceMaxOp : TL_ReduceOp<"reduce_max", "the maximum">;
def TL_ReduceMeanOp : TL_ReduceOp<"reduce_mean", "the arithmetic mean">;

def TL_MatmulOp : TL_Op<"matmul", [Pure, TL_Vjp,
    DeclareOpInterfaceMethods<InferTypeOpInterface>]> {
  let summary = "batched matrix multiplication with transpose flags";
  let description = [{
    Multiplies the last two dimensions: `op(lhs) @ op(rhs)` where `op`
    transposes the two trailing dimensions when `transpose_lhs` /
    `transpose_rhs` is set. Leading (batch) dimensions of both operands must
    be equal, or `rhs` may be a plain matrix shared by every batch (a linear
    layer's weight). Both operands have the same element type; accumulation
    is at least f32.

    Example:

    ```mlir
    // y = x W^T, W in [out, in] (PyTorch nn.Linear layout)
    %y = tl.matmul %x, %w {transpose_rhs} : tensor<2x16x64xf32>, tensor<128x64xf32> -> tensor<2x16x128xf32>
    ```
  }];
  let arguments = (ins TL_FloatTensor:$lhs, TL_FloatTensor:$rhs,
                       UnitAttr:$transpose_lhs, UnitAttr:$transpose_rhs);
  let results = (outs TL_FloatTensor:$result);
  let assemblyFormat = [{
    $lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->` type($result)
  }];
}

def TL_ReshapeOp : TL_Op<"reshape", [Pure, TL_Vjp]> {
  let summary = "reinterpret a tensor with another shape";
  let description = [{
    Row-major reinterpretation with the same element type and element count.

    Example:

    ```mlir
    %heads = tl.reshape %x : tensor<2x16x64xf32> -> tensor<2x16x4x16xf32>
    ```
  }];
  let arguments = (ins TL_Tensor:$input);
  let results = (outs TL_Tensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

def TL_TransposeOp : TL_Op<"transpose", [Pure, TL_Vjp,
    DeclareOpInterfaceMethods<InferTypeOpInterface>]> {
  let summary = "permute dimensions";
  let description = [{
    `result` dimension `i` is `input` dimension `perm[i]`.

    Example:

    ```mlir
    %t = tl.transpose %x, perm = [0, 2, 1, 3] : tensor<2x16x4x16xf32> -> tensor<2x4x16x16xf32>
    ```
  }];
  let arguments = (ins TL_Tensor:$input, DenseI64ArrayAttr:$perm);
  let results = (outs TL_Tensor:$result);
  let assemblyFormat = [{
    $input `,` `perm` `=` $perm attr-dict `:` type($input) `->` type($result)
  }];
}

def TL_SliceOp : TL_Op<"slice", [Pure, TL_Vjp,
    DeclareOpInterfaceMethods<InferTypeOpInterface>]> {
  let summary = "contiguous slice along one axis";
  let description = [{
    Takes `size` consecutive entries starting at `start` along `axis`; other
    dimensions are kept whole.

    Example:

    ```mlir
    // first half of the head dimension (rotate-half)
    %x1 = tl.slice %x, axis = 3, start = 0, size = 8 : tensor<2x4x16x16xf32> -> tensor<2x4x16x8xf32>
    ```
  }];
  let arguments = (ins TL_Tensor:$input, I64Attr:$axis, I64Attr:$start,
                       I64Attr:$size);
  let results = (outs TL_Tensor:$result);
  let assemblyFormat = [{
    $input `,` `axis` `=` $axis `,` `start` `=` $start `,` `size` `=` $size
    attr-dict `:` type($input) `->` type($result)
  }];
}

def TL_ConcatOp : TL_Op<"concat", [Pure, TL_Vjp,
    DeclareOpInterfaceMethods<InferTypeOpInterface>]> {
  let summary = "concatenate tensors along one axis";
  let description = [{
    Joins one or more tensors of the same element type whose shapes agree
    except along `axis`.

    Example:

    ```mlir
    %r = tl.concat %a, %b axis = 3 : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x16xf32>
    ```
  }];
  let arguments = (ins Variadic<TL_Tensor>:$inputs, I64Attr:$axis);
  let results = (outs TL_Tensor:$result);
  let assemblyFormat = [{
    $inputs `axis` `=` $axis attr-dict `:` type($inputs) `->` type($result)
  }];
}

def TL_GatherOp : TL_Op<"gather", [Pure, TL_Vjp,
    DeclareOpInterfaceMethods<InferTypeOpInterface>]> {
  let summary = "gather rows of a table by integer ids (embedding lookup)";
  let description = [{
    `result[i..., :] = table[ids[i...], :]` for a rank-2 `table` of shape
    `[rows, width]`; the result's shape is the ids' shape followed by
    `width`. An id outside `[0, rows)` is an error at run time.

    Example:

    ```mlir
    %h = tl.gather %embed[%tokens] : tensor<4096x64xf32>, tensor<2x16xi32> -> tensor<2x16x64xf32>
    ```
  }];
  let arguments = (ins TL_FloatTensor:$table, TL_IdTensor:$ids);
  let results = (outs TL_FloatTensor:$result);
  let assemblyFormat = [{
    $table `[` $ids `]` attr-dict `:` type($table) `,` type($ids) `->` type($result)
  }];
}

def TL_ScatterAddOp : TL_Op<"scatter_add", [Pure, TL_Vjp]> {
  let summary = "sum rows into a table by integer ids (gather's transpose)";
  let description = [{
    The adjoint of `tl.gather`: starts from a zero table of the result's
    shape `[rows, width]` and adds `updates[i..., :]` to row `ids[i...]`.
    Repeated ids accumulate. The embedding's gradient is built from it. An id
    outside `[0, rows)` is an error at run time.

    Example:

    ```mlir
    %d = tl.scatter_add %g[%tokens] : tensor<2x16x64xf32>, tensor<2x16xi32> -> tensor<4096x64xf32>
    ```
  }];
  let arguments = (ins TL_FloatTensor:$updates, TL_IdTensor:$ids);
  let results = (outs TL_FloatTensor:$result);
  let assemblyFormat = [{
    $updates `[` $ids `]` attr-dict `:` type($updates) `,` type($ids) `->` type($result)
  }];
  let hasVerifier = 1;
}

include "dialects/tl/IR/TlFusedOps.td"

#endif // TL_OPS_TD
