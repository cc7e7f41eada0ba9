// `tlrun evaluate`: zero-shot multiple-choice tasks and perplexity of a
// trained model (docs/evaluation.md).
#pragma once

namespace CLI {
class App;
}

namespace tlc::evaluate {

void addEvaluateCommand(CLI::App &tlrun);

}  // namespace tlc::evaluate
