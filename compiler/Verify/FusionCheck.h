//===- FusionCheck.h - translation validation of each fusion -----*- C++ -*-===//
//
// `tlc compile --verify-fusion` and `tlc-opt --verify-fusion`: every fusion a
// fusion pass makes on the model at hand is checked before it is applied.
// The fused region is cut out with its own (real) shapes: the ops the
// rewrite replaces, back to the values the fused op reads, become
// `@before`; the fused op on the same arguments becomes `@after`. Both run
// through the reference evaluator on random inputs; a difference is an error
// at the fusion's location and the fusion is not made. Identical regions
// (every layer's norm) are checked once; a region too large to evaluate on
// the host is skipped and counted.
//
//===----------------------------------------------------------------------===//
#ifndef TL_COMPILER_VERIFY_FUSIONCHECK_H
#define TL_COMPILER_VERIFY_FUSIONCHECK_H

#include "compiler/Passes/Matchers.h"

#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"

#include <string>

namespace mlir::tl::validation {

class RegionChecker : public match::FusionChecker {
public:
  /// Regions whose evaluation holds more than 64M tensor elements (about
  /// 512 MB of doubles; TLC_VERIFY_FUSION_ELEMENTS overrides) are skipped
  /// with a warning.
  RegionChecker();

  bool check(Operation *root, StringRef pass, RewriteCopy rewrite) override;

  int fusions = 0;   // fusions seen
  int checked = 0;   // of which verified equal (directly or as a duplicate)
  int distinct = 0;  // distinct regions evaluated
  int skipped = 0;   // too large, or not reproducible on a copy
  int mismatches = 0;

  /// One line: what was checked, skipped and found.
  std::string summary() const;

private:
  int64_t budget;
  llvm::StringMap<bool> verdicts; // region text -> equal
  llvm::StringSet<> tooLarge;
};

/// Runs `pm` on `module`; with `verify`, every fusion is checked by a
/// RegionChecker and its summary goes to stderr. Fails when the passes fail
/// or a fusion changed the numbers.
LogicalResult runWithFusionChecking(PassManager &pm, ModuleOp module, bool verify);

/// Installs `checker` for the lifetime of this object.
class ScopedFusionChecking {
public:
  explicit ScopedFusionChecking(match::FusionChecker *checker) {
    match::setFusionChecker(checker);
  }
  ~ScopedFusionChecking() { match::setFusionChecker(nullptr); }
};

} // namespace mlir::tl::validation

#endif
