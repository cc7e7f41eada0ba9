// Perplexity of text files as lm-evaluation-harness's loglikelihood_rolling
// scores a document: its tokens (no BOS) cut into disjoint windows of the
// model's context T, the first predicted from the prefix token (BOS) and
// every later window from the T tokens before it, so every token is
// predicted exactly once. Reported per file: token perplexity, and as the
// harness's wikitext task does, word perplexity, byte perplexity and bits
// per byte.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/evaluate/scorer.h"

namespace tlc::evaluate {

struct TextScore {
  std::string file;
  int64_t tokens = 0, words = 0, bytes = 0;  // words: len(re.split(r"\s+", text)); bytes: UTF-8
  double loglik = 0;                         // natural log, summed over every token
  double tokenPerplexity() const;            // exp(-loglik / tokens)
  double wordPerplexity() const;             // exp(-loglik / words)
  double bytePerplexity() const;             // exp(-loglik / bytes)
  double bitsPerByte() const;                // -loglik / bytes / ln 2
};

// The rolling windows of `tokens` for a context of `context` tokens, each
// as a Sequence (the prefix or the preceding tokens, then the predicted ones).
std::vector<Sequence> rollingWindows(const std::vector<int> &tokens, int prefix, int64_t context);

// Scores `text` (UTF-8) tokenized with `tok`; `file` names it in the result and errors. Throws
// TaskError when it has no tokens.
TextScore scoreText(Scorer &scorer, const data::Tokenizer &tok, const std::string &file, const std::string &text);
// The text of `file`, checked to be UTF-8; throws TaskError naming the file
// (and the byte offset of a bad byte).
std::string readTextFile(const std::string &file);

}  // namespace tlc::evaluate
