// tlrun: run compiled .tlx training steps (see `tlrun --help`). No MLIR.
#include "runtime/tlrun.h"

int main(int argc, char **argv) { return tlc::runTlrun(argc, argv); }
