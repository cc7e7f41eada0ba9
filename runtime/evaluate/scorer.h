// Scoring text with a compiled model's "forward_logits" entry point, in the
// sense of lm-evaluation-harness: the log-likelihood of a continuation is
// the sum over its tokens of log softmax(logits at the previous position)
// [token]; a continuation is greedy when every one of its tokens is the
// argmax there. Requests are batched into the compiled [B, T] (the last
// batch runs fewer rows where the artifact allows); a sequence longer than
// T + 1 tokens keeps its last T + 1, as the harness truncates contexts from
// the left. Only the logits of scored positions come to the host (as f32);
// log-softmax is in double.
//
// The trainer uses it too (eval_every): load a TaskSet and construct a
// Scorer once; before each evaluation set the parameters (setParam, f32 in
// artifact order), then call scoreTasks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/evaluate/tasks.h"

namespace tlc {
class Device;
namespace artifact {
struct Artifact;
}
namespace data {
class Tokenizer;
}
}  // namespace tlc

namespace tlc::evaluate {

// Tokens of one scored row: the last `scored` are predicted, each from those
// before it (so scored < tokens.size()).
struct Sequence {
  std::vector<int> tokens;
  size_t scored = 0;
};

struct SequenceScore {
  double loglik = 0;
  bool greedy = true;
};

// Throws artifact::Error naming `artifactPath` ("recompile with tlc
// compile") when the artifact has no forward_logits entry point.
void requireForwardLogits(const artifact::Artifact &a, const std::string &artifactPath);

class Scorer {
 public:
  // Throws artifact::Error naming `artifactPath` when the artifact has no
  // forward_logits entry point ("recompile with tlc compile") or it is not
  // tokens [B, T] -> logits [B, T, vocab]. `a` and `device` must outlive
  // the scorer. Parameters start at zero.
  Scorer(const artifact::Artifact &a, Device &device, const std::string &artifactPath);
  ~Scorer();
  Scorer(const Scorer &) = delete;
  Scorer &operator=(const Scorer &) = delete;

  // Parameter i (artifact order) from f32 values, rounded to the compute dtype.
  void setParam(size_t i, const float *values);
  // Every parameter, in artifact order.
  void setParams(const std::vector<std::vector<float>> &values);

  int64_t batch() const;    // B
  int64_t context() const;  // T
  int64_t vocab() const;
  // Throws TaskError naming `path` when `tok` has more pieces than vocab().
  void checkTokenizer(const data::Tokenizer &tok, const std::string &path) const;

  // One score per sequence, in order. Throws TaskError for a sequence that
  // predicts more than T tokens or none, or holds an id outside the vocabulary.
  std::vector<SequenceScore> score(const std::vector<Sequence> &sequences);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The harness's tokenization of a request: trailing whitespace of the
// context moves to the start of the continuation; then context tokens =
// [BOS] + encode(context) and continuation tokens = encode(context +
// continuation) after as many tokens as encode(context) has.
struct EncodedRequest {
  std::vector<int> context, continuation;
};
EncodedRequest encodeRequest(const data::Tokenizer &tok, const Request &r);

struct ChoiceScore {
  double loglik = 0;
  bool greedy = false;
  EncodedRequest tokens;
};

struct ExampleScore {
  int64_t line = 0, gold = 0;
  int64_t pred = 0;      // argmax of loglik (the first on ties)
  int64_t predNorm = 0;  // argmax of loglik / the choice's length in characters
  std::vector<ChoiceScore> choices;
};

struct TaskScore {
  std::string name, file;
  int64_t examples = 0;
  double acc = 0, accStderr = 0;  // stderr: sqrt(p (1 - p) / (n - 1)); NaN for n = 1
  bool hasAccNorm = false;        // HellaSwag, PIQA, ARC, OpenBookQA (as the harness reports)
  double accNorm = 0, accNormStderr = 0;
  std::vector<ExampleScore> samples;
};

// Loaded task files, for repeated evaluation.
struct TaskSet {
  std::vector<Task> tasks;
  // "NAME=FILE,..." items (see parseTaskList); the first `limit` examples of
  // each (0: all). Throws TaskSpecError / TaskError.
  static TaskSet load(const std::vector<std::string> &items, int64_t limit = 0);
};

// Scores the first `limit` examples (0: all) of one task, the requests
// tokenized with `tok` (the one the model was trained with).
TaskScore scoreTask(Scorer &scorer, const data::Tokenizer &tok, const Task &task, int64_t limit = 0);
// The same for every task of the set.
std::vector<TaskScore> scoreTasks(Scorer &scorer, const data::Tokenizer &tok, const TaskSet &tasks,
                                  int64_t limit = 0);

}  // namespace tlc::evaluate
