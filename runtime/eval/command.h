// tlrun eval: run a compiled step on weights and a token shard.
#pragma once

#include "cli/cli.h"

namespace tlc {
// Adds `eval` with its options and work to tlrun.
void addEvalCommand(CLI::App &tlrun);
}
