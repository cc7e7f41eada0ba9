// `tlrun train` and `tlrun plot` as CLI11 subcommands.
#pragma once

namespace CLI {
class App;
}

namespace tlc::train {

void addTrainCommand(CLI::App &tlrun);
void addPlotCommand(CLI::App &tlrun);

// Parses argv (argv[1] is "train", "plot" or "export") with these subcommands and runs
// it; returns the exit status (2 for usage errors).
int runCli(int argc, char **argv);

}  // namespace tlc::train
