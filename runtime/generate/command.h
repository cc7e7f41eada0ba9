// `tlrun generate`: text from a trained model.
// Every tlrun subcommand lives in its folder's command.h/.cpp and adds
// itself with one function (tools/tlrun.cpp calls them; cli/cli.h holds the
// conventions).
#pragma once

namespace CLI {
class App;
}

namespace tlc::generate {

void addGenerateCommand(CLI::App &tlrun);

}  // namespace tlc::generate
