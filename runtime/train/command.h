// `tlrun train`, `tlrun plot` and `tlrun checkpoints` as CLI11 subcommands.
#pragma once

namespace CLI {
class App;
}

namespace tlc::train {

void addTrainCommand(CLI::App &tlrun);
void addPlotCommand(CLI::App &tlrun);
void addCheckpointsCommand(CLI::App &tlrun);


}  // namespace tlc::train
