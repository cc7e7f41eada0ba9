// `tlrun train`, `tlrun plot` and `tlrun checkpoints` as CLI11 subcommands.
#pragma once

#include <vector>

#include "runtime/train/periodic.h"

namespace CLI {
class App;
}

namespace tlc::train {

// `work`: what the loop runs every N steps (samples, evaluations).
void addTrainCommand(CLI::App &tlrun, std::vector<WorkFactory> work = {});
void addPlotCommand(CLI::App &tlrun);
void addCheckpointsCommand(CLI::App &tlrun);


}  // namespace tlc::train
