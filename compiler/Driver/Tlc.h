//===- Tlc.h - the tlc command-line driver -----------------------*- C++ -*-===//
#ifndef TL_COMPILER_DRIVER_TLC_H
#define TL_COMPILER_DRIVER_TLC_H

namespace CLI {
class App;
}

namespace mlir::tl {
/// Each adds one subcommand, its options and its work to tlc (conventions:
/// cli/cli.h).
void addEmitCommand(CLI::App &tlc);
void addInfoCommand(CLI::App &tlc);
void addCompileCommand(CLI::App &tlc);
void addEvalCommand(CLI::App &tlc);
} // namespace mlir::tl

#endif
