//===- Tlc.h - the tlc command-line driver -----------------------*- C++ -*-===//
#ifndef TL_COMPILER_DRIVER_TLC_H
#define TL_COMPILER_DRIVER_TLC_H

namespace mlir::tl {
/// Runs `tlc <command> ...`; returns the process exit code.
int runTlc(int argc, char **argv);
} // namespace mlir::tl

#endif
