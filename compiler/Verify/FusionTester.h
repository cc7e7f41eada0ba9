//===- FusionTester.h - differential testing of fusion passes ----*- C++ -*-===//
//
// Translation validation by construction: for a fusion pass, take seed
// functions (the split cases of its lit tests, tests/lit/compiler/Passes/
// <flag>*.mlir: the forms it matches and its near-misses), derive
// systematic mutations of each (every other value of every axis, dims,
// perm or start attribute, swapped operands of equal type, an extra
// transpose of two equal extents, scaled constants, eps and exponents,
// other comparison predicates, toggled matmul transposes), and run the
// reference evaluator on fresh random inputs before and after the pass. Any
// difference is a miscompile; the smallest failing function is reported.
//
// A new fusion pass is covered by adding its lit test under its flag's name.
//
//===----------------------------------------------------------------------===//
#ifndef TL_COMPILER_VERIFY_FUSIONTESTER_H
#define TL_COMPILER_VERIFY_FUSIONTESTER_H

#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mlir::tl::validation {

struct TesterOptions {
  /// Random pairs of mutations per seed, beyond every single mutation.
  int pairsPerSeed = 0;
  /// Random input draws per case.
  int trials = 1;
  uint64_t seed = 1;
  /// Reads TLC_FUSION_PAIRS and TLC_FUSION_TRIALS (more cases on demand).
  static TesterOptions fromEnvironment();
};

struct TesterFailure {
  std::string seed;      // the seed function's name
  std::string mutations; // what was changed, "" for the seed itself
  std::string ir;        // the failing function before the pass
  std::string detail;    // the largest difference, or the pass's error
  int ops = 0;
};

struct TesterReport {
  std::string pass;
  int seeds = 0, cases = 0, invalid = 0, unevaluable = 0;
  int fused = 0; // cases where the pass introduced an op (a fusion happened)
  std::vector<TesterFailure> failures;
  /// A paragraph: counts, and the smallest failing case with its IR.
  std::string summary() const;
};

/// The seed functions of `text` (a lit test file): its `// -----` splits.
std::vector<std::string> splitSeeds(llvm::StringRef text);

/// Runs `pass` (a pass pipeline, e.g. "tl-fuse-rmsnorm") on every seed and
/// every mutation of it.
TesterReport testFusionPass(MLIRContext &context, llvm::StringRef pass,
                            const std::vector<std::string> &seeds,
                            const TesterOptions &options);

/// The fusion passes with seeds in `litDir`: each `tl-fuse-*.mlir` file
/// named after a registered pass's flag, with the files `<flag>-*.mlir`
/// added to its seeds. Pairs of (flag, seeds).
std::vector<std::pair<std::string, std::vector<std::string>>>
discoverFusionSeeds(llvm::StringRef litDir);

} // namespace mlir::tl::validation

#endif
