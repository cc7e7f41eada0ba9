//===- TlBase.td - the tl dialect and its type constraints -*- tablegen -*-===//
#ifndef TL_BASE_TD
#define TL_BASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/EnumAttr.td"

def TL_Dialect : Dialect {
  let name = "tl";
  let cppNamespace = "::mlir::tl";
  let summary = "Tensor-level ops for training Llama-class language models";
  let description = [{
    The `tl` dialect expresses the forward computation and loss of a language
    model on statically shaped tensors. Its primitive ops (elementwise math,
    broadcast, reductions, batched matmul, data movement, gather) are what the
    C++ model DSL emits; later passes differentiate the function and fuse
    recognised patterns into larger ops.

    Functions are `func.func` ops whose arguments carry one of two discardable
    attributes: `tl.param = "hf.name"` marks a trainable parameter (Hugging
    Face LlamaForCausalLM naming), `tl.input = "tokens"` a data input. A
    `tl.model` dictionary on the function records the model configuration.
    After `tl-autodiff`, results carry `tl.output = "loss"` or
    `tl.grad = "hf.name"` (the gradient of that parameter).
  }];
  let hasRegionArgAttrVerify = 1;
  let hasRegionResultAttrVerify = 1;
  let hasOperationAttrVerify = 1;
  let extraClassDeclaration = [{
    /// Argument attribute naming a trainable parameter.
    static constexpr llvm::StringLiteral kParamAttrName = "tl.param";
    /// Argument attribute naming a data input (token ids, targets).
    static constexpr llvm::StringLiteral kInputAttrName = "tl.input";
    /// Argument attribute beside tl.param: its initialisation, a dictionary
    /// {kind = "normal", std = F} | {kind = "ones"} | {kind = "zeros"}.
    static constexpr llvm::StringLiteral kInitAttrName = "tl.init";
    /// Argument attribute beside tl.param: whether AdamW decays it (bool).
    static constexpr llvm::StringLiteral kDecayAttrName = "tl.decay";
    /// Function attribute holding the model configuration dictionary.
    static constexpr llvm::StringLiteral kModelAttrName = "tl.model";
    /// Result attribute of a training step: the gradient of the named parameter.
    static constexpr llvm::StringLiteral kGradAttrName = "tl.grad";
    /// Result attribute naming a non-gradient output ("loss").
    static constexpr llvm::StringLiteral kOutputAttrName = "tl.output";
  }];
}

// Every tensor a tl op reads or writes has extents >= 1 and at most 2^50
// elements: the evaluator and the kernels divide by extents and compute byte
// counts and indices in 64 bits, so this is checked once for every op here
// rather than in each verifier.
def TL_BoundedShapes : NativeOpTrait<"BoundedShapes"> {
  let cppNamespace = "::mlir::tl";
}

class TL_Op<string mnemonic, list<Trait> traits = []>
    : Op<TL_Dialect, mnemonic, !listconcat([TL_BoundedShapes], traits)>;

// Element types: floating point storage types (f64 for testing), i32 token
// ids and i1 masks. Every tensor is statically shaped.
def TL_AnyFloat : AnyTypeOf<[F32, BF16, F16, F64]>;
def TL_FloatTensor : StaticShapeTensorOf<[F32, BF16, F16, F64]>;
def TL_IdTensor : StaticShapeTensorOf<[I32]>;
def TL_MaskTensor : StaticShapeTensorOf<[I1]>;
def TL_NumericTensor : StaticShapeTensorOf<[F32, BF16, F16, F64, I32]>;
def TL_Tensor : StaticShapeTensorOf<[F32, BF16, F16, F64, I32, I1]>;

def TL_CmpPredicate : I32EnumAttr<"CmpPredicate", "comparison predicate", [
    I32EnumAttrCase<"eq", 0>, I32EnumAttrCase<"ne", 1>,
    I32EnumAttrCase<"lt", 2>, I32EnumAttrCase<"le", 3>,
    I32EnumAttrCase<"gt", 4>, I32EnumAttrCase<"ge", 5>]> {
  let cppNamespace = "::mlir::tl";
}

#endif // TL_BASE_TD
