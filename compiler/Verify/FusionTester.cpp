//===- FusionTester.cpp - differential testing of fusion passes ---------===//
#include "compiler/Verify/FusionTester.h"

#include "compiler/Verify/Compare.h"
#include "dialects/tl/IR/TlOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/StringMap.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <random>

namespace mlir::tl::validation {
namespace {

/// One change to a seed: applied to the op at `opIndex` (walk order) of a
/// fresh parse.
struct Mutation {
  size_t opIndex;
  std::string what;
  std::function<void(Operation *)> apply;
};

std::string describe(Operation *op, const std::string &change) {
  return "'" + op->getName().getStringRef().str() + "' " + change;
}

std::string join(ArrayRef<int64_t> v) {
  std::string s = "[";
  for (auto [i, x] : llvm::enumerate(v)) s += (i ? ", " : "") + std::to_string(x);
  return s + "]";
}

/// Strictly increasing sequences of `length` values in [0, n).
void increasing(int64_t length, int64_t n, SmallVector<int64_t> &prefix,
                std::vector<SmallVector<int64_t>> &out) {
  if (static_cast<int64_t>(prefix.size()) == length) {
    out.push_back(prefix);
    return;
  }
  for (int64_t v = prefix.empty() ? 0 : prefix.back() + 1; v < n; ++v) {
    prefix.push_back(v);
    increasing(length, n, prefix, out);
    prefix.pop_back();
  }
}

int64_t maxRank(Operation *op) {
  int64_t r = 0;
  auto widen = [&](Type t) {
    if (auto ranked = dyn_cast<RankedTensorType>(t)) r = std::max(r, ranked.getRank());
  };
  for (Type t : op->getOperandTypes()) widen(t);
  for (Type t : op->getResultTypes()) widen(t);
  return r;
}

/// Every mutation of every op of `module`. Invalid ones are filtered later
/// by the verifier.
std::vector<Mutation> enumerateMutations(ModuleOp module) {
  std::vector<Mutation> out;
  size_t index = 0;
  module.walk([&](Operation *op) {
    size_t i = index++;
    if (isa<ModuleOp, func::FuncOp, func::ReturnOp>(op)) return;
    // Operands of equal type, swapped.
    for (unsigned a = 0; a < op->getNumOperands(); ++a)
      for (unsigned b = a + 1; b < op->getNumOperands(); ++b)
        if (op->getOperand(a).getType() == op->getOperand(b).getType() &&
            op->getOperand(a) != op->getOperand(b))
          out.push_back({i, describe(op, "with operands " + std::to_string(a) + " and " +
                                             std::to_string(b) + " swapped"),
                         [a, b](Operation *o) {
                           Value x = o->getOperand(a);
                           o->setOperand(a, o->getOperand(b));
                           o->setOperand(b, x);
                         }});
    // An extra transpose of two equal extents of an operand.
    for (unsigned k = 0; k < op->getNumOperands(); ++k) {
      auto t = dyn_cast<RankedTensorType>(op->getOperand(k).getType());
      if (!t) continue;
      for (int64_t a = 0; a < t.getRank(); ++a)
        for (int64_t b = a + 1; b < t.getRank(); ++b) {
          if (t.getDimSize(a) != t.getDimSize(b) || t.getDimSize(a) == 1) continue;
          SmallVector<int64_t> perm;
          for (int64_t d = 0; d < t.getRank(); ++d) perm.push_back(d);
          std::swap(perm[a], perm[b]);
          out.push_back({i, describe(op, "reading operand " + std::to_string(k) +
                                             " transposed by " + join(perm)),
                         [k, perm](Operation *o) {
                           OpBuilder builder(o);
                           Value v = o->getOperand(k);
                           o->setOperand(k, builder.create<TransposeOp>(o->getLoc(), v.getType(), v,
                                                                        perm));
                         }});
        }
    }
    // Other comparison predicates.
    if (auto cmp = dyn_cast<CmpOp>(op))
      for (int p = 0; p < 6; ++p)
        if (p != static_cast<int>(cmp.getPredicate()))
          out.push_back({i, describe(op, "with predicate " + stringifyCmpPredicate(
                                                                 static_cast<CmpPredicate>(p)).str()),
                         [p](Operation *o) {
                           cast<CmpOp>(o).setPredicate(static_cast<CmpPredicate>(p));
                         }});
    // Matmul transposes toggled.
    if (isa<MatmulOp>(op))
      for (const char *flag : {"transpose_lhs", "transpose_rhs"})
        out.push_back({i, describe(op, std::string("with ") + flag + " toggled"),
                       [flag = std::string(flag)](Operation *o) {
                         if (o->hasAttr(flag)) o->removeAttr(flag);
                         else o->setAttr(flag, UnitAttr::get(o->getContext()));
                       }});
    // Splat constants scaled (eps, 1/n, scales, the zero of a one-hot).
    if (auto c = dyn_cast<ConstantOp>(op))
      if (auto dense = dyn_cast<DenseFPElementsAttr>(c.getValue()); dense && dense.isSplat()) {
        double v = dense.getSplatValue<APFloat>().convertToDouble();
        SmallVector<double> variants;
        if (v == 0) variants = {1.0};
        else if (std::isfinite(v)) variants = {2 * v, -v};
        for (double w : variants)
          out.push_back({i, describe(op, "with value " + std::to_string(w) + " for " +
                                             std::to_string(v)),
                         [w](Operation *o) {
                           auto d = cast<DenseFPElementsAttr>(cast<ConstantOp>(o).getValue());
                           auto ft = cast<FloatType>(d.getElementType());
                           APFloat x(w);
                           bool lost;
                           x.convert(ft.getFloatSemantics(), APFloat::rmNearestTiesToEven, &lost);
                           o->setAttr("value", DenseElementsAttr::get(d.getType(), x));
                         }});
      }
    // Attributes: every other axis/start, every other dims list or perm,
    // float attributes (exponents) scaled.
    for (NamedAttribute attr : op->getAttrs()) {
      std::string name = attr.getName().str();
      if (isa<ConstantOp>(op)) break;
      if (auto ia = dyn_cast<IntegerAttr>(attr.getValue()); ia && ia.getType().isInteger(64)) {
        int64_t cur = ia.getInt(), hi = std::max<int64_t>(maxRank(op), 8);
        for (int64_t v = 0; v < hi; ++v)
          if (v != cur)
            out.push_back({i, describe(op, "with " + name + " = " + std::to_string(v)),
                           [name, v](Operation *o) {
                             auto old = cast<IntegerAttr>(o->getAttr(name));
                             o->setAttr(name, IntegerAttr::get(old.getType(), v));
                           }});
      } else if (auto fa = dyn_cast<FloatAttr>(attr.getValue())) {
        double v = fa.getValueAsDouble();
        out.push_back({i, describe(op, "with " + name + " = " + std::to_string(v * 1.5)),
                       [name, v](Operation *o) {
                         auto old = cast<FloatAttr>(o->getAttr(name));
                         o->setAttr(name, FloatAttr::get(old.getType(), v * 1.5));
                       }});
      } else if (auto da = dyn_cast<DenseI64ArrayAttr>(attr.getValue())) {
        ArrayRef<int64_t> cur = da.asArrayRef();
        std::vector<SmallVector<int64_t>> alternatives;
        SmallVector<int64_t> prefix;
        if (name == "perm") {
          SmallVector<int64_t> p(cur.begin(), cur.end());
          llvm::sort(p);
          do alternatives.push_back(p);
          while (std::next_permutation(p.begin(), p.end()));
        } else {
          increasing(static_cast<int64_t>(cur.size()), maxRank(op), prefix, alternatives);
        }
        for (const auto &alt : alternatives)
          if (ArrayRef<int64_t>(alt) != cur)
            out.push_back({i, describe(op, "with " + name + " = " + join(alt)),
                           [name, alt](Operation *o) {
                             o->setAttr(name, DenseI64ArrayAttr::get(o->getContext(), alt));
                           }});
      }
    }
  });
  return out;
}

int countOps(ModuleOp m) {
  int n = 0;
  m.walk([&](Operation *op) { n += !isa<ModuleOp, func::FuncOp>(op); });
  return n;
}

struct CaseRunner {
  MLIRContext &context;
  StringRef pass;
  const TesterOptions &options;
  TesterReport &report;
  uint64_t drawn = 0;

  void run(StringRef seedText, const std::string &seedName, ArrayRef<const Mutation *> mutations) {
    OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(seedText, &context);
    if (!module) return;
    std::vector<Operation *> ops;
    module->walk([&](Operation *op) { ops.push_back(op); });
    std::string what;
    for (const Mutation *m : mutations) {
      m->apply(ops[m->opIndex]);
      what += (what.empty() ? "" : "; ") + m->what;
    }
    if (failed(mlir::verify(*module))) {
      ++report.invalid;
      return;
    }
    ++report.cases;
    OwningOpRef<ModuleOp> after = module->clone();
    PassManager pm(&context);
    std::string error;
    llvm::raw_string_ostream errors(error);
    if (failed(parsePassPipeline(pass, pm, errors))) {
      report.failures.push_back({seedName, what, "", "cannot parse the pass: " + error, 0});
      return;
    }
    std::string beforeText = printWithoutLocations(*module);
    if (failed(pm.run(*after))) {
      report.failures.push_back({seedName, what, beforeText, "the pass failed on valid IR", countOps(*module)});
      return;
    }
    // Fused: ops the pass introduced (a fused op, a tl.fusion group, a
    // recomputed copy): some op name occurs more often than before.
    llvm::StringMap<int> before, now;
    module->walk([&](Operation *op) { ++before[op->getName().getStringRef()]; });
    after->walk([&](Operation *op) { ++now[op->getName().getStringRef()]; });
    bool fused = false;
    for (const auto &entry : now) fused |= entry.getValue() > before.lookup(entry.getKey());
    report.fused += fused;
    for (auto before : module->getOps<func::FuncOp>()) {
      auto fused = after->lookupSymbol<func::FuncOp>(before.getSymName());
      for (int t = 0; t < options.trials; ++t) {
        std::string evalError;
        FailureOr<Comparison> c =
            compareOnRandomInputs(before, fused, options.seed * 7919 + ++drawn, evalError,
                                  toleranceFor(before));
        if (failed(c)) {
          ++report.unevaluable;
          break;
        }
        if (!c->equal) {
          report.failures.push_back({seedName, what, beforeText, c->detail, countOps(*module)});
          return;
        }
      }
    }
  }
};

std::string seedName(StringRef text) {
  size_t at = text.find("func.func @");
  if (at == StringRef::npos) return "?";
  StringRef rest = text.drop_front(at + 11);
  return rest.take_until([](char c) { return c == '(' || c == ' ' || c == '\n'; }).str();
}

} // namespace

TesterOptions TesterOptions::fromEnvironment() {
  TesterOptions o;
  if (const char *p = std::getenv("TLC_FUSION_PAIRS")) o.pairsPerSeed = std::atoi(p);
  if (const char *t = std::getenv("TLC_FUSION_TRIALS")) o.trials = std::max(1, std::atoi(t));
  return o;
}

std::vector<std::string> splitSeeds(StringRef text) {
  std::vector<std::string> out;
  SmallVector<StringRef> parts;
  text.split(parts, "// -----");
  for (StringRef p : parts)
    if (p.contains("func.func")) out.push_back(p.str());
  return out;
}

TesterReport testFusionPass(MLIRContext &context, StringRef pass,
                            const std::vector<std::string> &seeds, const TesterOptions &options) {
  TesterReport report;
  report.pass = pass.str();
  // Diagnostics of invalid mutations and of the pass's remarks are noise here.
  ScopedDiagnosticHandler quiet(&context, [](Diagnostic &) { return success(); });
  CaseRunner runner{context, pass, options, report};
  std::mt19937_64 rng(options.seed);
  for (const std::string &text : seeds) {
    OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(text, &context);
    if (!module) continue;
    ++report.seeds;
    std::string name = seedName(text);
    std::vector<Mutation> mutations = enumerateMutations(*module);
    runner.run(text, name, {});
    for (const Mutation &m : mutations) runner.run(text, name, {&m});
    for (int p = 0; p < options.pairsPerSeed && mutations.size() > 1; ++p) {
      const Mutation &a = mutations[rng() % mutations.size()];
      const Mutation &b = mutations[rng() % mutations.size()];
      if (&a != &b) runner.run(text, name, {&a, &b});
    }
  }
  return report;
}

std::string TesterReport::summary() const {
  std::string s = pass + ": " + std::to_string(seeds) + " seeds, " + std::to_string(cases) +
                  " valid cases (" + std::to_string(fused) + " fused by the pass, " +
                  std::to_string(invalid) + " invalid mutations skipped, " +
                  std::to_string(unevaluable) + " not evaluable), " +
                  std::to_string(failures.size()) + " mismatches";
  if (failures.empty()) return s;
  const TesterFailure *smallest = &failures.front();
  for (const TesterFailure &f : failures)
    if (f.ops < smallest->ops) smallest = &f;
  s += "\nsmallest failing case: seed @" + smallest->seed +
       (smallest->mutations.empty() ? "" : ", mutated: " + smallest->mutations) + "\n" +
       smallest->detail + "\n" + smallest->ir;
  return s;
}

std::vector<std::pair<std::string, std::vector<std::string>>>
discoverFusionSeeds(StringRef litDir) {
  std::map<std::string, std::vector<std::string>> byPass;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(litDir, ec), end; it != end && !ec; it.increment(ec)) {
    StringRef file = llvm::sys::path::filename(it->path());
    if (!file.starts_with("tl-fuse-") || !file.ends_with(".mlir")) continue;
    // The longest registered pass flag the file is named after.
    StringRef flag = file.drop_back(5);
    while (!flag.empty() && !PassInfo::lookup(flag)) {
      size_t dash = flag.rfind('-');
      flag = dash == StringRef::npos ? StringRef() : flag.take_front(dash);
    }
    if (flag.empty()) continue;
    auto buffer = llvm::MemoryBuffer::getFile(it->path());
    if (!buffer) continue;
    for (std::string &seed : splitSeeds((*buffer)->getBuffer()))
      byPass[flag.str()].push_back(std::move(seed));
  }
  return {byPass.begin(), byPass.end()};
}

} // namespace mlir::tl::validation
