// tlc: the compiler driver (see `tlc --help`). Each subcommand adds itself,
// its options and its work with one function (compiler/Driver/Tlc.cpp);
// the conventions are runtime/cli.h's.
#include "compiler/Driver/Tlc.h"
#include "runtime/cli.h"

int main(int argc, char **argv) {
  CLI::App tlc{"tlc: compile TinyLlama-class models written in the C++ DSL", "tlc"};
  ::tlc::cli::configureTool(tlc);
  mlir::tl::addEmitCommand(tlc);
  mlir::tl::addInfoCommand(tlc);
  mlir::tl::addCompileCommand(tlc);
  mlir::tl::addEvalCommand(tlc);
  return ::tlc::cli::run(tlc, argc, argv);
}
