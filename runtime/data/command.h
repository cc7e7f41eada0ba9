// `tlrun prepare`: text or token files into llm.c shards.
// Every tlrun subcommand lives in its folder's command.h/.cpp and adds
// itself with one function (tools/tlrun.cpp calls them; cli/cli.h holds the
// conventions).
#pragma once

namespace CLI {
class App;
}

namespace tlc::data {

void addPrepareCommand(CLI::App &tlrun);

}  // namespace tlc::data
