// tlc: the compiler driver (see `tlc --help`). Each subcommand adds itself,
// its options and its work with one function (compiler/Driver/Tlc.cpp);
// the conventions are cli/cli.h's.
#include "compiler/Driver/Tlc.h"
#include "cli/cli.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/PrettyStackTrace.h"
#include "llvm/Support/Signals.h"

int main(int argc, char **argv) {
  // A crash is a bug: say so, with a stack trace, rather than die silently.
  llvm::setBugReportMsg("tlc crashed: this is a bug in tlc. Please report it with the command line and the input "
                        "file, and the stack trace below.\n");
  llvm::sys::PrintStackTraceOnErrorSignal(argv[0]);
  CLI::App tlc{"tlc: compile TinyLlama-class models written in the C++ DSL", "tlc"};
  ::tlc::cli::configureTool(tlc);
  mlir::tl::addEmitCommand(tlc);
  mlir::tl::addInfoCommand(tlc);
  mlir::tl::addCompileCommand(tlc);
  mlir::tl::addEvalCommand(tlc);
  return ::tlc::cli::run(tlc, argc, argv);
}
