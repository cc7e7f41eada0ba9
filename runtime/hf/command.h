// `tlrun export`: a checkpoint as a Hugging Face Llama directory.
// Every tlrun subcommand lives in its folder's command.h/.cpp and adds
// itself with one function (tools/tlrun.cpp calls them; cli/cli.h holds the
// conventions).
#pragma once

namespace CLI {
class App;
}

namespace tlc::hf {

void addExportCommand(CLI::App &tlrun);

}  // namespace tlc::hf
