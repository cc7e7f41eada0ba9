// tlrun's commands (the tool's main stays a one-line call).
#pragma once

namespace tlc {
int runTlrun(int argc, char **argv);
}
