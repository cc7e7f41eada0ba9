// `tlrun train` and `tlrun plot` as CLI11 subcommands.
#pragma once

namespace CLI {
class App;
}

namespace tlc::train {

void addTrainCommand(CLI::App &tlrun);
void addPlotCommand(CLI::App &tlrun);


}  // namespace tlc::train
