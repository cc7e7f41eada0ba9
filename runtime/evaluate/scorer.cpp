#include "runtime/evaluate/scorer.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "formats/artifact.h"
#include "formats/half.h"
#include "runtime/data/tokenizer.h"
#include "runtime/evaluate/text.h"
#include "runtime/exec/device.h"
#include "runtime/exec/executor.h"

namespace tlc::evaluate {
void requireForwardLogits(const artifact::Artifact &a, const std::string &path) {
  if (!a.entry(artifact::kForwardLogits))
    throw artifact::Error(path + ": the artifact has no '" + std::string(artifact::kForwardLogits) +
                          "' entry point (compiled by an older tlc, or from a training step or a function that is "
                          "not a DSL model): recompile the model with tlc compile");
}

namespace {

// `a`, checked to have the entry point first (the executor would say less).
const artifact::Artifact &withForwardLogits(const artifact::Artifact &a, const std::string &path) {
  requireForwardLogits(a, path);
  return a;
}

}  // namespace

struct Scorer::Impl {
  Impl(const artifact::Artifact &a, Device &device, const std::string &path)
      : a(a), ex(withForwardLogits(a, path), device, 0, {artifact::kForwardLogits}) {
    entry = ex.entryIndex(artifact::kForwardLogits);
    const artifact::EntryPoint &e = a.entries[entry];
    auto bad = [&](const std::string &why) {
      return artifact::Error(path + ": forward_logits: " + why + ": recompile the model with tlc compile");
    };
    if (e.inputs.size() != 1 || e.inputs[0].dtype != artifact::DType::I32 || e.inputs[0].shape.size() != 2)
      throw bad("expected one input, tokens i32 [B, T]");
    B = e.inputs[0].shape[0], T = e.inputs[0].shape[1];
    size_t o = 0;
    while (o < e.outputs.size() && e.outputs[o].name != "logits") ++o;
    if (o == e.outputs.size()) throw bad("no output 'logits'");
    const artifact::Tensor &l = e.outputs[o];
    if (l.shape.size() != 3 || l.shape[0] != B || l.shape[1] != T || l.dtype == artifact::DType::I32)
      throw bad("output 'logits' is not a float [B, T, vocab]");
    logitsOut = o;
    V = l.shape[2];
    bf16 = l.dtype == artifact::DType::BF16;
    input.resize(B * T);
    logits.resize(T * V);  // one row's
    if (bf16) raw.resize(T * V);
  }

  // Runs rows [0, rows) of `input`.
  void forward(int64_t rows) {
    int64_t run = a.entries[entry].batch > 0 ? rows : 0;  // else the compiled rows, the rest padding
    ex.setInput(entry, 0, input.data(), run);
    ex.run(entry, run);
  }

  // The logits of positions [first, first + n) of row `row`, as f32 in
  // `logits`: only what is scored crosses to the host.
  const float *positions(int64_t row, int64_t first, int64_t n) {
    int64_t offset = (row * T + first) * V, count = n * V;
    if (bf16) {
      ex.getOutputBytes(entry, logitsOut, raw.data(), offset * 2, count * 2);
      for (int64_t i = 0; i < count; ++i) logits[i] = bf16ToFloat(raw[i]);
    } else {
      ex.getOutputBytes(entry, logitsOut, logits.data(), offset * 4, count * 4);
    }
    return logits.data();
  }

  const artifact::Artifact &a;
  Executor ex;
  size_t entry = 0, logitsOut = 0;
  int64_t B = 0, T = 0, V = 0;
  bool bf16 = false;
  std::vector<int32_t> input;
  std::vector<float> logits;
  std::vector<uint16_t> raw;
};

Scorer::Scorer(const artifact::Artifact &a, Device &device, const std::string &artifactPath)
    : impl_(std::make_unique<Impl>(a, device, artifactPath)) {}
Scorer::~Scorer() = default;

int64_t Scorer::batch() const { return impl_->B; }
int64_t Scorer::context() const { return impl_->T; }
int64_t Scorer::vocab() const { return impl_->V; }
void Scorer::checkTokenizer(const data::Tokenizer &tok, const std::string &path) const {
  if (tok.vocabSize() > impl_->V)
    throw TaskError(path + ": the tokenizer has " + std::to_string(tok.vocabSize()) +
                    " pieces but the model's vocabulary is " + std::to_string(impl_->V));
}

void Scorer::setParam(size_t i, const float *values) {
  const artifact::Tensor &p = impl_->a.params.at(i);
  if (p.dtype == artifact::DType::BF16) {
    std::vector<uint16_t> rounded(p.numel());
    for (int64_t k = 0; k < p.numel(); ++k) rounded[k] = floatToBf16(values[k]);
    impl_->ex.setParam(i, rounded.data());
  } else {
    impl_->ex.setParam(i, values);
  }
}

void Scorer::setParams(const std::vector<std::vector<float>> &values) {
  if (values.size() != impl_->a.params.size())
    throw std::invalid_argument("setParams: " + std::to_string(values.size()) + " tensors for " +
                                std::to_string(impl_->a.params.size()) + " parameters");
  for (size_t i = 0; i < values.size(); ++i) {
    if (static_cast<int64_t>(values[i].size()) != impl_->a.params[i].numel())
      throw std::invalid_argument("setParams: parameter '" + impl_->a.params[i].name + "' needs " +
                                  std::to_string(impl_->a.params[i].numel()) + " values");
    setParam(i, values[i].data());
  }
}

std::vector<SequenceScore> Scorer::score(const std::vector<Sequence> &sequences) {
  Impl &m = *impl_;
  const int64_t B = m.B, T = m.T, V = m.V;
  for (size_t s = 0; s < sequences.size(); ++s) {
    const Sequence &q = sequences[s];
    if (q.scored == 0 || q.scored >= q.tokens.size() || static_cast<int64_t>(q.scored) > T)
      throw TaskError("sequence " + std::to_string(s) + ": predicts " + std::to_string(q.scored) + " of its " +
                      std::to_string(q.tokens.size()) + " tokens; 1 to min(tokens - 1, T = " + std::to_string(T) +
                      ") can be scored");
    for (int id : q.tokens)
      if (id < 0 || id >= V) throw TaskError("sequence " + std::to_string(s) + ": token id " + std::to_string(id) +
                                             " outside the vocabulary of " + std::to_string(V));
  }
  std::vector<SequenceScore> out(sequences.size());
  for (size_t first = 0; first < sequences.size(); first += B) {
    int64_t rows = std::min<int64_t>(B, static_cast<int64_t>(sequences.size() - first));
    std::fill(m.input.begin(), m.input.end(), 0);  // padding after a row's tokens: causal, never read
    for (int64_t r = 0; r < rows; ++r) {
      const std::vector<int> &t = sequences[first + r].tokens;
      size_t keep = std::min<size_t>(t.size(), T + 1), start = t.size() - keep;  // the last T + 1
      std::copy(t.begin() + start, t.end() - 1, m.input.begin() + r * T);
    }
    m.forward(rows);
    for (int64_t r = 0; r < rows; ++r) {
      const Sequence &q = sequences[first + r];
      size_t keep = std::min<size_t>(q.tokens.size(), T + 1), start = q.tokens.size() - keep;
      SequenceScore &s = out[first + r];
      // Token j of the window is predicted by the logits at position j - 1.
      const size_t from = keep - q.scored;
      const float *rowLogits = m.positions(r, static_cast<int64_t>(from) - 1, static_cast<int64_t>(q.scored));
      for (size_t j = from; j < keep; ++j) {
        const float *l = rowLogits + (j - from) * V;
        int target = q.tokens[start + j];
        int64_t argmax = 0;
        for (int64_t v = 1; v < V; ++v)
          if (l[v] > l[argmax]) argmax = v;
        double sum = 0, max = l[argmax];
        for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(l[v]) - max);
        s.loglik += static_cast<double>(l[target]) - max - std::log(sum);
        s.greedy = s.greedy && argmax == target;
      }
    }
  }
  return out;
}

EncodedRequest encodeRequest(const data::Tokenizer &tok, const Request &r) {
  std::string context = r.context, continuation = r.continuation;
  if (size_t n = trailingSpaceBytes(context)) {
    continuation = context.substr(context.size() - n) + continuation;
    context.resize(context.size() - n);
  }
  std::vector<int> c = tok.encode(context), whole = tok.encode(context + continuation);
  EncodedRequest e;
  int prefix = tok.bosId() >= 0 ? tok.bosId() : tok.eosId();  // the harness's prefix_token_id
  if (prefix >= 0) e.context.push_back(prefix);
  e.context.insert(e.context.end(), c.begin(), c.end());
  e.continuation.assign(whole.begin() + std::min(c.size(), whole.size()), whole.end());
  return e;
}

TaskSet TaskSet::load(const std::vector<std::string> &items, int64_t limit) {
  TaskSet set;
  for (const auto &[name, file] : parseTaskList(items)) set.tasks.push_back(readTask(name, file, limit));
  return set;
}

namespace {

// The harness's stderr of a mean of 0/1 values: sample stddev / sqrt(n).
double meanStderr(double p, int64_t n) {
  if (n < 2) return std::numeric_limits<double>::quiet_NaN();
  return std::sqrt(p * (1 - p) / static_cast<double>(n - 1));
}

}  // namespace

TaskScore scoreTask(Scorer &scorer, const data::Tokenizer &tok, const Task &task, int64_t limit) {
  scorer.checkTokenizer(tok, "the tokenizer");
  size_t n = task.examples.size();
  if (limit > 0) n = std::min<size_t>(n, limit);
  std::vector<Sequence> sequences;
  std::vector<ExampleScore> samples(n);
  for (size_t i = 0; i < n; ++i) {
    const Example &e = task.examples[i];
    samples[i].line = e.line;
    samples[i].gold = e.gold;
    for (size_t c = 0; c < e.requests.size(); ++c) {
      EncodedRequest enc = encodeRequest(tok, e.requests[c]);
      std::string where = task.file + ":" + std::to_string(e.line) + ": " + task.name + ": choice " + std::to_string(c);
      if (enc.continuation.empty())
        throw TaskError(where + ": the continuation adds no tokens to the context's (nothing to score)");
      if (static_cast<int64_t>(enc.continuation.size()) > scorer.context())
        throw TaskError(where + ": the continuation is " + std::to_string(enc.continuation.size()) +
                        " tokens, more than the model's context of " + std::to_string(scorer.context()));
      Sequence q{enc.context, enc.continuation.size()};
      q.tokens.insert(q.tokens.end(), enc.continuation.begin(), enc.continuation.end());
      sequences.push_back(std::move(q));
      samples[i].choices.push_back({0, false, std::move(enc)});
    }
  }
  std::vector<SequenceScore> scores = scorer.score(sequences);
  TaskScore t;
  t.name = task.name, t.file = task.file, t.examples = static_cast<int64_t>(n);
  t.hasAccNorm = task.kind.accNorm;
  size_t k = 0, right = 0, rightNorm = 0;
  for (size_t i = 0; i < n; ++i) {
    ExampleScore &s = samples[i];
    const Example &e = task.examples[i];
    for (size_t c = 0; c < s.choices.size(); ++c, ++k) {
      s.choices[c].loglik = scores[k].loglik;
      s.choices[c].greedy = scores[k].greedy;
      double norm = scores[k].loglik / static_cast<double>(e.choiceChars[c]);
      double best = s.choices[s.predNorm].loglik / static_cast<double>(e.choiceChars[s.predNorm]);
      if (s.choices[c].loglik > s.choices[s.pred].loglik) s.pred = static_cast<int64_t>(c);
      if (norm > best) s.predNorm = static_cast<int64_t>(c);
    }
    right += s.pred == s.gold;
    rightNorm += s.predNorm == s.gold;
  }
  t.acc = static_cast<double>(right) / static_cast<double>(n);
  t.accStderr = meanStderr(t.acc, t.examples);
  t.accNorm = static_cast<double>(rightNorm) / static_cast<double>(n);
  t.accNormStderr = meanStderr(t.accNorm, t.examples);
  t.samples = std::move(samples);
  return t;
}

std::vector<TaskScore> scoreTasks(Scorer &scorer, const data::Tokenizer &tok, const TaskSet &tasks,
                                  int64_t limit) {
  std::vector<TaskScore> out;
  for (const Task &t : tasks.tasks) out.push_back(scoreTask(scorer, tok, t, limit));
  return out;
}

}  // namespace tlc::evaluate
