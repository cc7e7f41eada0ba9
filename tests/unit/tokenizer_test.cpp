// The SentencePiece tokenizer: Llama-2's settings, exact round trips, and
// agreement with Debian's spm_encode on the same model.
#include "DataTestSupport.h"

#include <cstdio>
#include <random>
#include <sstream>

namespace dt = tlc::data;
using namespace datatest;

namespace {

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) s += char(cp);
  else if (cp < 0x800) s += char(0xC0 | cp >> 6), s += char(0x80 | (cp & 0x3F));
  else if (cp < 0x10000)
    s += char(0xE0 | cp >> 12), s += char(0x80 | (cp >> 6 & 0x3F)), s += char(0x80 | (cp & 0x3F));
  else
    s += char(0xF0 | cp >> 18), s += char(0x80 | (cp >> 12 & 0x3F)), s += char(0x80 | (cp >> 6 & 0x3F)),
        s += char(0x80 | (cp & 0x3F));
  return s;
}

// Text that stresses a tokenizer. U+2581 is left out: SentencePiece uses it
// as its space and decodes it as ' ' (see the test below).
const std::vector<std::string> &unusualTexts() {
  static const std::vector<std::string> texts = {
      "", " ", "  ", "   x", "x   ", "\t", "\n", "\n\n", " \n ", "a\tb\r\nc",
      "\x01\x02\x1b[31mred\x1b[0m\x7f", "emoji 😀 👩‍👩‍👧‍👦 🇩🇪 👍🏽",
      "e\xCC\x81 vs \xC3\xA9; a\xCC\x8A\xCC\x81\xCC\xA3 Z\xCD\x91\xCD\x8C\xCD\x9B" "al\xCD\x8E" "go",
      "日本語のテキスト、中文文本，한국어 텍스트", "ﬁ ligature, full-width ＡＢＣ１２３, NBSP\xC2\xA0here",
      "\xEF\xBB\xBF" "BOM first", "\xEF\xBF\xBF\xF4\x8F\xBF\xBF noncharacters", "RTL: שלום عربى",
      "1234567890 3.14159 1e-5 0x1F", "trailing space ", " leading space",
      "tabs\t\tand  double  spaces", "<s> </s> <unk> <0x41> pieces as text",
  };
  return texts;
}

TEST(Tokenizer, TrainsWithLlama2Settings) {
  const dt::Tokenizer &tok = testTokenizer();
  EXPECT_EQ(tok.vocabSize(), 512);
  EXPECT_EQ(tok.unkId(), 0);
  EXPECT_EQ(tok.bosId(), 1);
  EXPECT_EQ(tok.eosId(), 2);
  EXPECT_EQ(tok.padId(), -1);
  EXPECT_EQ(tok.piece(0), "<unk>");
  EXPECT_EQ(tok.piece(1), "<s>");
  EXPECT_EQ(tok.piece(2), "</s>");
  // byte_fallback: the 256 byte pieces follow the specials, as in Llama-2.
  EXPECT_EQ(tok.piece(3), "<0x00>");
  EXPECT_EQ(tok.piece(3 + 0x41), "<0x41>");
  EXPECT_EQ(tok.piece(258), "<0xFF>");
  // split_digits: every digit is a piece of its own.
  std::vector<int> ids = tok.encode("2024");
  std::string pieces;
  for (int id : ids) pieces += tok.piece(id) + "|";
  EXPECT_EQ(pieces, "\xE2\x96\x81|2|0|2|4|");
  // Identity normalization, no whitespace collapsing: NFKC would fold the
  // ligature and full-width letters, remove_extra_whitespaces the spaces.
  EXPECT_EQ(tok.decode(tok.encode("ﬁ  ＡＢ")), "ﬁ  ＡＢ");
  // An unseen character falls back to bytes, not <unk>.
  for (int id : tok.encode("\xF0\x9F\xA6\x80")) EXPECT_NE(id, tok.unkId());
}

TEST(Tokenizer, RoundTripsTheCorpus) {
  const dt::Tokenizer &tok = testTokenizer();
  std::vector<std::string> docs = corpusDocs();
  ASSERT_GT(docs.size(), 500u);
  size_t tokens = 0;
  for (const auto &d : docs) {
    std::vector<int> ids = tok.encode(d);
    tokens += ids.size();
    ASSERT_EQ(tok.decode(ids), d);
  }
  EXPECT_LT(tokens, 143000u);  // the BPE compresses: fewer tokens than bytes
}

TEST(Tokenizer, RoundTripsUnusualUnicode) {
  const dt::Tokenizer &tok = testTokenizer();
  for (const auto &s : unusualTexts()) EXPECT_EQ(tok.decode(tok.encode(s)), s) << s;
  // Fresh random strings over all planes (no surrogates, NUL or U+2581).
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> len(1, 40), plane(0, 4);
  for (int n = 0; n < 300; ++n) {
    std::string s;
    for (int i = len(rng); i > 0; --i) {
      uint32_t hi[] = {0x7F, 0x7FF, 0xFFFF, 0x10FFFF, 0x20};
      uint32_t cp = std::uniform_int_distribution<uint32_t>(1, hi[plane(rng)])(rng);
      if ((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0x2581) cp = ' ';
      s += utf8(cp);
    }
    ASSERT_EQ(tok.decode(tok.encode(s)), s);
  }
  // SentencePiece's own space symbol comes back as a space (Llama-2 alike).
  EXPECT_EQ(tok.decode(tok.encode("a\xE2\x96\x81" "b")), "a b");
  // BOS and EOS decode to nothing.
  std::vector<int> ids = tok.encode("hello");
  ids.insert(ids.begin(), tok.bosId());
  ids.push_back(tok.eosId());
  EXPECT_EQ(tok.decode(ids), "hello");
  EXPECT_THROW(tok.decode({512}), dt::Error);
}

TEST(Tokenizer, AgreesWithSpmEncode) {
  const dt::Tokenizer &tok = testTokenizer();
  std::string dir = tempDir("spm") + "/";
  ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
  writeFile(dir + "m.model", tok.bytes());
  std::vector<std::string> lines;
  for (const auto &d : corpusDocs()) {
    std::istringstream in(d);
    std::string l;
    while (std::getline(in, l)) lines.push_back(l);
  }
  for (const auto &s : unusualTexts())
    if (s.find_first_of("\r\n") == std::string::npos) lines.push_back(s);
  std::string input;
  for (const auto &l : lines) input += l + "\n";
  writeFile(dir + "in.txt", input);
  std::string cmd = "spm_encode --model=" + dir + "m.model --output_format=id --input=" + dir +
                    "in.txt --output=" + dir + "out.txt";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::istringstream out(slurp(dir + "out.txt"));
  std::string got;
  size_t n = 0;
  for (; std::getline(out, got); ++n) {
    ASSERT_LT(n, lines.size());
    std::string want;
    for (int id : tok.encode(lines[n])) want += (want.empty() ? "" : " ") + std::to_string(id);
    ASSERT_EQ(got, want) << "line " << n << ": " << lines[n];
  }
  EXPECT_EQ(n, lines.size());
}

TEST(Tokenizer, RejectsFilesThatAreNotModels) {
  std::string dir = tempDir("badmodel") + "/";
  ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
  writeFile(dir + "text.model", "this is plain text, not a protobuf\n");
  writeFile(dir + "empty.model", "");
  std::string junk;
  std::mt19937 rng(std::random_device{}());
  for (int i = 0; i < 4096; ++i) junk += char(rng());
  writeFile(dir + "junk.model", junk);
  for (const char *name : {"text.model", "empty.model", "junk.model", "missing.model"}) {
    try {
      dt::Tokenizer::load(dir + name);
      ADD_FAILURE() << name << " loaded";
    } catch (const dt::Error &e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(dir + name), std::string::npos) << msg;
      if (std::string(name) != "missing.model")
        EXPECT_NE(msg.find("not a SentencePiece model"), std::string::npos) << msg;
    }
  }
}

// SentencePiece's vocabulary-size errors, in tlrun's terms (its own advice
// names --character_coverage, which tlrun does not have).
TEST(Tokenizer, TrainingErrorsAreReported) {
  std::vector<std::string> lines = {"tiny corpus", "with few characters"};
  auto errorOf = [&](int vocab) -> std::string {
    try {
      dt::trainTokenizer(lines, vocab, 1);
    } catch (const dt::Error &e) {
      return e.what();
    }
    return "(trained)";
  };
  std::string large = errorOf(100000);
  EXPECT_NE(large.find("--train-tokenizer 100000 is too large for this text: at most "), std::string::npos) << large;
  // 256 byte pieces, <unk>, <s>, </s>, the 15 letters and the space marker.
  std::string small = errorOf(260);
  EXPECT_NE(small.find("--train-tokenizer 260 is too small for this text: it needs at least 275 pieces"),
            std::string::npos) << small;
  EXPECT_EQ(small.find("character_coverage"), std::string::npos) << small;
}

}  // namespace
