// Downstream evaluation during training (eval_every, eval_tasks,
// eval_limit): every N steps rank 0 scores the tasks with the current
// weights through the artifact's forward_logits entry point, prints one line
// and adds eval_<task>_acc (and _acc_norm where the task has it) to the
// step's metrics.jsonl entry.
#pragma once

#include "runtime/train/periodic.h"

namespace tlc::evaluate {

// nullptr when eval_every is 0; throws when the artifact has no
// forward_logits, a task file is bad or the data has no tokenizer.
std::unique_ptr<train::PeriodicWork> makeTrainingEvaluation(const train::WorkContext &context);

}  // namespace tlc::evaluate
