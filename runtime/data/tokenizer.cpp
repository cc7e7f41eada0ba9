#include "runtime/data/tokenizer.h"

#include <fstream>
#include <regex>
#include <sstream>
#include <thread>
#include <unordered_map>

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

namespace tlc::data {

namespace spm = sentencepiece;
// Calls below are qualified (sp.spm::SentencePieceProcessor::Encode) so they
// bind to the library's symbols by name rather than by vtable slot: the GPU
// machine's libsentencepiece is a newer release than the headers built against.
using SP = spm::SentencePieceProcessor;

struct Tokenizer::Impl {
  SP sp;
  std::string bytes, name;
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer &&) noexcept = default;
Tokenizer &Tokenizer::operator=(Tokenizer &&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open the tokenizer model");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return fromBytes(bytes.str(), path);
}

Tokenizer Tokenizer::fromBytes(std::string modelBytes, const std::string &name) {
  auto impl = std::make_unique<Impl>();
  impl->bytes = std::move(modelBytes);
  impl->name = name;
  // An empty protobuf parses as an empty model; say so plainly.
  if (impl->bytes.empty()) throw Error(name + ": empty file, not a SentencePiece model");
  spm::util::Status s = impl->sp.SP::LoadFromSerializedProto(impl->bytes);
  if (!s.ok()) throw Error(name + ": not a SentencePiece model (" + s.ToString() + ")");
  if (impl->sp.SP::GetPieceSize() <= 0) throw Error(name + ": SentencePiece model without pieces");
  return Tokenizer(std::move(impl));
}

std::vector<int> Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  spm::util::Status s = impl_->sp.SP::Encode(text, &ids);
  if (!s.ok()) throw Error(impl_->name + ": encoding failed: " + s.ToString());
  return ids;
}

std::string Tokenizer::decode(const std::vector<int> &ids) const {
  int n = vocabSize();
  for (int id : ids)
    if (id < 0 || id >= n)
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary of " +
                  std::to_string(n) + " (" + impl_->name + ")");
  std::string text;
  spm::util::Status s = impl_->sp.SP::Decode(ids, &text);
  if (!s.ok()) throw Error(impl_->name + ": decoding failed: " + s.ToString());
  return text;
}

std::string Tokenizer::piece(int id) const {
  if (id < 0 || id >= vocabSize())
    throw Error("token id " + std::to_string(id) + " is outside the vocabulary (" + impl_->name + ")");
  return impl_->sp.SP::IdToPiece(id);
}

int Tokenizer::vocabSize() const { return impl_->sp.SP::GetPieceSize(); }
int Tokenizer::bosId() const { return impl_->sp.SP::bos_id(); }
int Tokenizer::eosId() const { return impl_->sp.SP::eos_id(); }
int Tokenizer::unkId() const { return impl_->sp.SP::unk_id(); }
int Tokenizer::padId() const { return impl_->sp.SP::pad_id(); }
const std::string &Tokenizer::bytes() const { return impl_->bytes; }

std::vector<std::pair<std::string, std::string>> tokenizerTrainingSettings(int vocabSize) {
  // Llama-2's tokenizer.model trainer_spec / normalizer_spec, except that the
  // input is sampled by tlrun prepare (input_sentence_size=0: use all given).
  return {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(vocabSize)},
      {"character_coverage", "0.99995"},
      {"byte_fallback", "true"},
      {"split_digits", "true"},
      {"split_by_unicode_script", "true"},
      {"split_by_whitespace", "true"},
      {"split_by_number", "true"},
      {"max_sentencepiece_length", "16"},
      {"max_sentence_length", "4192"},
      {"allow_whitespace_only_pieces", "true"},
      {"normalization_rule_name", "identity"},
      {"add_dummy_prefix", "true"},
      {"remove_extra_whitespaces", "false"},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      {"hard_vocab_limit", "true"},
      {"input_sentence_size", "0"},
  };
}

namespace {
class VectorIterator : public spm::SentenceIterator {
public:
  explicit VectorIterator(const std::vector<std::string> &v) : v_(v) {}
  bool done() const override { return i_ >= v_.size(); }
  void Next() override { ++i_; }
  const std::string &value() const override { return v_[i_]; }
  spm::util::Status status() const override { return spm::util::Status(); }

private:
  const std::vector<std::string> &v_;
  size_t i_ = 0;
};
}  // namespace

std::string trainTokenizer(const std::vector<std::string> &sentences, int vocabSize, int threads) {
  if (sentences.empty()) throw Error("no text to train the tokenizer on");
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::unordered_map<std::string, std::string> kwargs;
  for (const auto &[k, v] : tokenizerTrainingSettings(vocabSize)) kwargs[k] = v;
  kwargs["num_threads"] = std::to_string(threads);
  kwargs["minloglevel"] = "1";  // the trainer logs every merge at INFO
  VectorIterator it(sentences);
  std::string model;
  spm::util::Status s = spm::SentencePieceTrainer::Train(kwargs, &it, &model);
  if (!s.ok()) {
    // SentencePiece's advice names its own flags (--character_coverage);
    // say it in tlrun's terms.
    std::string why = s.ToString();
    std::smatch m;
    if (std::regex_search(why, m, std::regex(R"(smaller than required_chars\. (\d+) vs (\d+))")))
      throw Error("--train-tokenizer " + m[1].str() + " is too small for this text: it needs at least " + m[2].str() +
                  " pieces (256 byte-fallback pieces, <unk>, <s>, </s> and every character of the text); give "
                  "--train-tokenizer " + m[2].str() + " or more");
    std::regex tooLarge(R"(Vocabulary size (?:is )?too (?:large|high).*Please set it to a value <= (\d+))");
    if (std::regex_search(why, m, tooLarge))
      throw Error("--train-tokenizer " + std::to_string(vocabSize) + " is too large for this text: at most " +
                  m[1].str() + " pieces can be learned from it; give --train-tokenizer " + m[1].str() +
                  " or less, or more text");
    throw Error("training the tokenizer failed: " + why);
  }
  return model;
}

}  // namespace tlc::data
