#include "runtime/evaluate/perplexity.h"

#include <cmath>
#include <cstdio>

#include "runtime/data/sources.h"
#include "runtime/data/tokenizer.h"
#include "runtime/evaluate/text.h"

namespace tlc::evaluate {

double TextScore::tokenPerplexity() const { return std::exp(-loglik / static_cast<double>(tokens)); }
double TextScore::wordPerplexity() const { return std::exp(-loglik / static_cast<double>(words)); }
double TextScore::bytePerplexity() const { return std::exp(-loglik / static_cast<double>(bytes)); }
double TextScore::bitsPerByte() const { return -loglik / static_cast<double>(bytes) / std::log(2.0); }

std::vector<Sequence> rollingWindows(const std::vector<int> &tokens, int prefix, int64_t context) {
  std::vector<Sequence> out;
  const size_t n = tokens.size(), T = static_cast<size_t>(context);
  if (n == 0) return out;
  // The first window predicts its tokens from the prefix onwards.
  size_t predicted = std::min(n, T);
  Sequence first{{prefix}, predicted};
  first.tokens.insert(first.tokens.end(), tokens.begin(), tokens.begin() + predicted);
  out.push_back(std::move(first));
  // Each later one predicts up to T more, given the T tokens before the last.
  while (predicted < n) {
    size_t count = std::min(n - predicted, T), end = predicted + count;
    out.push_back({std::vector<int>(tokens.begin() + (end - T - 1), tokens.begin() + end), count});
    predicted = end;
  }
  return out;
}

TextScore scoreText(Scorer &scorer, const data::Tokenizer &tok, const std::string &file, const std::string &text) {
  scorer.checkTokenizer(tok, "the tokenizer");
  std::vector<int> ids = tok.encode(text);
  if (ids.empty()) throw TaskError(file + ": no text to score (empty)");
  int prefix = tok.bosId() >= 0 ? tok.bosId() : tok.eosId();
  if (prefix < 0) throw TaskError(file + ": the tokenizer has neither BOS nor EOS to predict the first token from");
  TextScore s{file, static_cast<int64_t>(ids.size()), pythonWordCount(text), static_cast<int64_t>(text.size())};
  for (const SequenceScore &w : scorer.score(rollingWindows(ids, prefix, scorer.context()))) s.loglik += w.loglik;
  return s;
}

std::string readTextFile(const std::string &file) {
  std::string s = readWholeFile(file, "--text file");
  if (int64_t bad = data::findInvalidUtf8(s); bad >= 0) {
    char byte[8];
    std::snprintf(byte, sizeof byte, "0x%02x", static_cast<unsigned char>(s[bad]));
    throw TaskError(file + ": not valid UTF-8: byte " + std::string(byte) + " at byte offset " + std::to_string(bad));
  }
  return s;
}

}  // namespace tlc::evaluate
