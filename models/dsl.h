//===- dsl.h - a small C++ API that builds tl IR -----------------*- C++ -*-===//
//
// Tensor handles with operators and numpy-style broadcasting. Every call
// emits primitive tl ops into the function a Graph is building, so model code
// reads like the math it computes:
//
//   Graph g(ctx, "mlp", g.f32());
//   Tensor x = g.input("x", {4, 8}, g.f32());
//   Tensor w = g.param("w", {16, 8});
//   g.finish(mean(silu(matmul(x, w, false, true)), -1));
//
//===----------------------------------------------------------------------===//
#ifndef TL_MODELS_DSL_H
#define TL_MODELS_DSL_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include <string>
#include <vector>

namespace tlc::dsl {

class Graph;
using Shape = std::vector<int64_t>;

/// A value in the function being built. Cheap to copy.
class Tensor {
public:
  Tensor() = default;
  Tensor(Graph *graph, mlir::Value value) : graph_(graph), value_(value) {}

  mlir::Value value() const { return value_; }
  Graph &graph() const { return *graph_; }
  Shape shape() const;
  int64_t rank() const;
  /// Size of dimension `i`; negative `i` counts from the end.
  int64_t dim(int64_t i) const;
  mlir::Type elementType() const;

private:
  Graph *graph_ = nullptr;
  mlir::Value value_;
};

/// Builds one func.func with named parameters and inputs.
class Graph {
public:
  Graph(mlir::MLIRContext &context, const std::string &funcName,
        mlir::Type floatType);

  mlir::MLIRContext &context() { return *builder_.getContext(); }
  mlir::OpBuilder &builder() { return builder_; }
  /// Location of ops emitted now: the innermost Scope's name.
  mlir::Location loc() const { return loc_; }
  /// The float type of parameters and activations.
  mlir::Type floatType() const { return floatType_; }
  mlir::Type f32() { return builder_.getF32Type(); }
  mlir::Type i32() { return builder_.getI32Type(); }

  /// How a parameter starts and whether AdamW decays it: the model's one
  /// statement of that policy, recorded as `tl.init` / `tl.decay` on the
  /// argument and per parameter in the artifact (trainer and optimizer read
  /// it from there).
  struct ParamPolicy {
    enum class Init { Normal, Ones, Zeros } init = Init::Normal;
    double std = 0.02;  // Normal
    bool decay = true;
    static ParamPolicy weight(double std = 0.02) { return {Init::Normal, std, true}; }
    static ParamPolicy normGain() { return {Init::Ones, 0.0, false}; }
  };
  /// A trainable parameter, named as in Hugging Face checkpoints.
  Tensor param(const std::string &name, const Shape &shape, ParamPolicy policy = ParamPolicy::weight());
  /// A data input (token ids, targets).
  Tensor input(const std::string &name, const Shape &shape, mlir::Type elementType);
  /// A tensor filled with `value` (of the graph's float type unless given).
  Tensor full(const Shape &shape, double value, mlir::Type elementType = {});
  /// Indices along `axis`.
  Tensor iota(const Shape &shape, int64_t axis, mlir::Type elementType);

  /// Records a model configuration field in the function's `tl.model`.
  void setConfig(const std::string &key, mlir::Attribute value);
  /// Returns `result` from the function and hands over the module.
  mlir::OwningOpRef<mlir::ModuleOp> finish(Tensor result);
  /// Returns several results, each named by `tl.output`.
  mlir::OwningOpRef<mlir::ModuleOp> finish(const std::vector<Tensor> &results,
                                           const std::vector<std::string> &names);

  /// Names the location of ops emitted while it lives (e.g. a layer), so
  /// diagnostics and dumps say where in the model an op comes from.
  class Scope {
  public:
    Scope(Graph &graph, const std::string &name);
    ~Scope();

  private:
    Graph &graph_;
    mlir::Location saved_;
  };

private:
  Tensor argument(const std::string &attrName, const std::string &name,
                  mlir::RankedTensorType type,
                  llvm::ArrayRef<mlir::NamedAttribute> extra = {});

  mlir::OpBuilder builder_;
  mlir::OwningOpRef<mlir::ModuleOp> module_;
  mlir::Operation *func_ = nullptr;
  mlir::Block *body_ = nullptr;
  mlir::Location loc_;
  mlir::Type floatType_;
  std::vector<mlir::DictionaryAttr> argAttrs_;
  std::vector<mlir::NamedAttribute> config_;
};

// Elementwise arithmetic, with numpy broadcasting between tensors; scalars
// become constants of the tensor's type.
Tensor operator+(Tensor a, Tensor b);
Tensor operator-(Tensor a, Tensor b);
Tensor operator*(Tensor a, Tensor b);
Tensor operator/(Tensor a, Tensor b);
Tensor operator+(Tensor a, double b);
Tensor operator-(Tensor a, double b);
Tensor operator*(Tensor a, double b);
Tensor operator/(Tensor a, double b);
Tensor operator*(double a, Tensor b);
Tensor operator-(Tensor a);
Tensor maximum(Tensor a, Tensor b);
Tensor minimum(Tensor a, Tensor b);

Tensor exp(Tensor x);
Tensor log(Tensor x);
Tensor sqrt(Tensor x);
Tensor rsqrt(Tensor x);
Tensor sigmoid(Tensor x);
Tensor silu(Tensor x);
Tensor tanh(Tensor x);
Tensor sin(Tensor x);
Tensor cos(Tensor x);
Tensor pow(Tensor x, double exponent);

// Comparisons produce i1 masks for `where`.
Tensor equal(Tensor a, Tensor b);
Tensor less(Tensor a, Tensor b);
Tensor greaterEqual(Tensor a, Tensor b);
Tensor where(Tensor mask, Tensor a, Tensor b);
Tensor convert(Tensor x, mlir::Type elementType);

// Reductions over one axis (negative counts from the end).
Tensor sum(Tensor x, int64_t axis, bool keepdim = false);
Tensor mean(Tensor x, int64_t axis, bool keepdim = false);
Tensor max(Tensor x, int64_t axis, bool keepdim = false);

/// Batched matmul over the trailing two dimensions (see tl.matmul).
Tensor matmul(Tensor a, Tensor b, bool transposeA = false, bool transposeB = false);
Tensor reshape(Tensor x, const Shape &shape);
Tensor transpose(Tensor x, const std::vector<int64_t> &perm);
Tensor slice(Tensor x, int64_t axis, int64_t start, int64_t size);
Tensor concat(const std::vector<Tensor> &xs, int64_t axis);
/// Numpy broadcasting of `x` to `shape`.
Tensor broadcastTo(Tensor x, const Shape &shape);
/// Rows of `table` picked by integer `ids` (embedding lookup).
Tensor gather(Tensor table, Tensor ids);

} // namespace tlc::dsl

#endif // TL_MODELS_DSL_H
