// tlc: the compiler driver (emit, info, eval; see `tlc --help`).
#include "compiler/Driver/Tlc.h"

int main(int argc, char **argv) { return mlir::tl::runTlc(argc, argv); }
