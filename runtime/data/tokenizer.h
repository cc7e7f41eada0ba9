// A SentencePiece tokenizer (Llama-2's kind): load a tokenizer.model, encode
// text to ids and decode ids back, or train a new one with Llama-2's settings.
// SentencePiece's headers stay out of this one.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tlc::data {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Tokenizer {
public:
  // Throws Error naming the file when it is missing or not a SentencePiece model.
  static Tokenizer load(const std::string &path);
  // `name` is used in error messages.
  static Tokenizer fromBytes(std::string modelBytes, const std::string &name);

  Tokenizer(Tokenizer &&) noexcept;
  Tokenizer &operator=(Tokenizer &&) noexcept;
  ~Tokenizer();

  // Ids of `text` without BOS/EOS (the model's normalizer and dummy prefix apply).
  std::vector<int> encode(std::string_view text) const;
  // Text of `ids`; control ids (BOS, EOS) decode to nothing.
  std::string decode(const std::vector<int> &ids) const;
  std::string piece(int id) const;

  int vocabSize() const;
  int bosId() const;  // -1 when the model has none
  int eosId() const;
  int unkId() const;
  int padId() const;
  // The serialized model, as written to tokenizer.model.
  const std::string &bytes() const;

private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Trains a SentencePiece BPE model on `sentences` with Llama-2's settings
// (byte_fallback, split_digits, identity normalization, dummy prefix, no
// whitespace collapsing, unk=0 bos=1 eos=2, no pad) and returns its bytes.
// `threads` <= 0 means all cores.
std::string trainTokenizer(const std::vector<std::string> &sentences, int vocabSize,
                           int threads = 0);

// The trainer options trainTokenizer passes, for the manifest and docs.
std::vector<std::pair<std::string, std::string>> tokenizerTrainingSettings(int vocabSize);

}  // namespace tlc::data
