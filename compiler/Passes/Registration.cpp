#include "compiler/Passes/Passes.h"
void mlir::tl::registerTlPasses() {}
