// tlrun prepare's pieces: input validation, document segments, LITPKDS
// files, shards and the manifest, and whole runs checked token by token.
#include "DataTestSupport.h"

#include "runtime/data/litpkd.h"
#include "runtime/data/manifest.h"
#include "runtime/data/prepare.h"
#include "runtime/data/shard_writer.h"
#include "runtime/data/sources.h"
#include "formats/tokens.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <cstring>
#include <filesystem>
#include <random>

namespace dt = tlc::data;
namespace tk = tlc::tokens;
namespace fs = std::filesystem;
using namespace datatest;

namespace {

std::string errorOf(const std::function<void()> &f) {
  try {
    f();
  } catch (const dt::Error &e) {
    return e.what();
  }
  return "(no error)";
}

std::vector<dt::Segment> segmentsOf(const std::vector<std::string> &paths, dt::Format f,
                                    dt::ChunkPolicy policy = {}) {
  std::vector<dt::InputFile> files;
  for (const auto &p : paths) files.push_back({p, fs::file_size(p)});
  std::vector<dt::Segment> out;
  dt::readDocuments(files, f, policy, [&](dt::Segment &&s) { out.push_back(std::move(s)); }, nullptr);
  return out;
}

std::string mkdir(const std::string &name) {
  std::string d = tempDir(name);
  fs::create_directories(d);
  return d + "/";
}

TEST(DataSources, Utf8Validation) {
  EXPECT_EQ(dt::findInvalidUtf8("plain ascii"), -1);
  EXPECT_EQ(dt::findInvalidUtf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF"), -1);
  EXPECT_EQ(dt::findInvalidUtf8("ab\xC0\x80"), 2);          // overlong NUL
  EXPECT_EQ(dt::findInvalidUtf8("abc\xE0\x80\xAF"), 3);     // overlong '/'
  EXPECT_EQ(dt::findInvalidUtf8("a\xED\xA0\x80"), 1);       // surrogate U+D800
  EXPECT_EQ(dt::findInvalidUtf8("\xF4\x90\x80\x80"), 0);    // past U+10FFFF
  EXPECT_EQ(dt::findInvalidUtf8("ok\xE2\x82"), 2);          // cut short
  EXPECT_EQ(dt::findInvalidUtf8("\x80"), 0);                // lone continuation
  EXPECT_EQ(dt::findInvalidUtf8("xy\xFF"), 2);
}

TEST(DataSources, ReadsTheThreeTextFormats) {
  std::string d = mkdir("formats");
  writeFile(d + "a.txt", "whole file\n\nis one document\n");
  writeFile(d + "b.jsonl", "\xEF\xBB\xBF{\"text\": \"first\", \"meta\": 1}\n\n{\"text\": \"sec\\u00f6nd\\n\"}\r\n");
  writeFile(d + "c.fortune", "\none\n\ntwo lines\n\n%\n%\nthree\n%\n");
  auto text = segmentsOf({d + "a.txt"}, dt::Format::Text);
  ASSERT_EQ(text.size(), 1u);
  EXPECT_TRUE(text[0].docStart);
  EXPECT_EQ(text[0].text, "whole file\n\nis one document\n");
  auto jsonl = segmentsOf({d + "b.jsonl"}, dt::Format::Jsonl);
  ASSERT_EQ(jsonl.size(), 2u);
  EXPECT_EQ(jsonl[0].text, "first");  // after a UTF-8 BOM
  EXPECT_EQ(jsonl[1].text, "sec\xC3\xB6nd\n");
  auto fortune = segmentsOf({d + "c.fortune"}, dt::Format::Fortune);
  ASSERT_EQ(fortune.size(), 2u);
  EXPECT_EQ(fortune[0].text, "one\n\ntwo lines");
  EXPECT_EQ(fortune[1].text, "three");
  // The fortune parser agrees with the tests' own on real files.
  for (const auto &f : fortuneFiles()) {
    auto segs = segmentsOf({f}, dt::Format::Fortune);
    auto docs = fortuneDocs(f);
    ASSERT_EQ(segs.size(), docs.size()) << f;
    for (size_t i = 0; i < docs.size(); ++i) ASSERT_EQ(segs[i].text, docs[i]) << f;
  }
}

TEST(DataSources, BadInputIsNamedWithItsLocation) {
  std::string d = mkdir("badinput");
  writeFile(d + "empty.txt", "");
  writeFile(d + "binary.bin", std::string("\x7f" "ELF\x02\x01\x01\x00\x00\x00", 10));
  writeFile(d + "latin1.txt", "caf\xE9 au lait\n");
  writeFile(d + "late.txt", std::string(3000000, 'a') + "\xC3\x28");
  writeFile(d + "notext.jsonl", "{\"text\": \"ok\"}\n{\"body\": \"no text\"}\n");
  writeFile(d + "badjson.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"unterminated}\n");
  writeFile(d + "badutf8.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"\xFF\"}\n");
  writeFile(d + "nonstring.jsonl", "{\"text\": 42}\n");
  writeFile(d + "nodocs.fortune", "%\n\n%\n");
  auto listErr = [&](const std::string &p, dt::Format f) {
    return errorOf([&] { dt::listInputs({p}, f); });
  };
  auto readErr = [&](const std::string &p, dt::Format f) {
    return errorOf([&] { segmentsOf({p}, f); });
  };
  EXPECT_EQ(listErr(d + "empty.txt", dt::Format::Text), d + "empty.txt: empty input file");
  EXPECT_EQ(listErr(d + "missing.txt", dt::Format::Text), d + "missing.txt: no such file or directory");
  EXPECT_EQ(readErr(d + "binary.bin", dt::Format::Text),
            d + "binary.bin: binary data (NUL byte at byte offset 7), not text");
  EXPECT_EQ(readErr(d + "latin1.txt", dt::Format::Text), d + "latin1.txt: invalid UTF-8 at byte offset 3");
  EXPECT_EQ(readErr(d + "late.txt", dt::Format::Text), d + "late.txt: invalid UTF-8 at byte offset 3000000");
  EXPECT_EQ(readErr(d + "notext.jsonl", dt::Format::Jsonl), d + "notext.jsonl:2: no \"text\" field");
  EXPECT_EQ(readErr(d + "badjson.jsonl", dt::Format::Jsonl).rfind(d + "badjson.jsonl:2: not JSON", 0), 0u);
  EXPECT_EQ(readErr(d + "badutf8.jsonl", dt::Format::Jsonl),
            d + "badutf8.jsonl:2: invalid UTF-8 at byte offset 25");
  EXPECT_EQ(readErr(d + "nonstring.jsonl", dt::Format::Jsonl), d + "nonstring.jsonl:1: \"text\" is not a string");
  EXPECT_NE(readErr(d + "nodocs.fortune", dt::Format::Fortune).find("nodocs.fortune: no documents"),
            std::string::npos);
}

TEST(DataSources, LongDocumentsEncodeAsAWhole) {
  // Segments cut at spaces give exactly the ids of the whole document.
  const dt::Tokenizer &tok = testTokenizer();
  std::string d = mkdir("long");
  std::string doc;
  for (const auto &s : corpusDocs()) doc += s + (doc.size() % 3 ? " " : "\n");
  writeFile(d + "long.txt", doc);
  dt::ChunkPolicy policy;
  policy.segmentBytes = 997;
  auto segs = segmentsOf({d + "long.txt"}, dt::Format::Text, policy);
  ASSERT_GT(segs.size(), 100u);
  EXPECT_TRUE(segs[0].docStart);
  std::vector<int> pieced;
  for (size_t i = 0; i < segs.size(); ++i) {
    if (i) EXPECT_FALSE(segs[i].docStart);
    for (int id : tok.encode(segs[i].text)) pieced.push_back(id);
  }
  EXPECT_EQ(pieced, tok.encode(doc));
  // Without a space in maxBytes the text is cut anyway (bounded memory).
  writeFile(d + "nospace.txt", std::string(5000, 'x'));
  policy.maxBytes = 2000;
  EXPECT_GT(segmentsOf({d + "nospace.txt"}, dt::Format::Text, policy).size(), 2u);
}

TEST(DataSources, DirectoriesAreWalkedInOrder) {
  std::string d = mkdir("walk");
  fs::create_directories(d + "sub");
  writeFile(d + "b", "B\n%\n");
  writeFile(d + "a", "A\n%\n");
  writeFile(d + "sub/c", "C\n");
  writeFile(d + "a.dat", std::string("\0\0\0\x02", 4));  // strfile index
  writeFile(d + ".hidden", "H\n");
  fs::create_symlink(d + "a", d + "a.u8");
  auto files = dt::listInputs({d}, dt::Format::Fortune);
  std::vector<std::string> names;
  for (const auto &f : files) names.push_back(fs::path(f.path).filename());
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b", "c"}));
}

std::string packed(uint8_t dtype, const std::vector<int64_t> &tokens, size_t item, uint64_t chunk) {
  std::string s = "LITPKDS";
  uint64_t version = 1;
  s.append(reinterpret_cast<const char *>(&version), 8);
  s += char(dtype);
  s.append(reinterpret_cast<const char *>(&chunk), 8);
  for (int64_t t : tokens) s.append(reinterpret_cast<const char *>(&t), item);  // little-endian
  return s;
}

TEST(DataLitpkd, ReadsAndRejects) {
  std::string d = mkdir("litpkd");
  writeFile(d + "ok.bin", packed(8, {1, 300, 65535, 1, 7}, 2, 5));
  writeFile(d + "i32.bin", packed(4, {1, 70000}, 4, 2));
  writeFile(d + "float.bin", packed(6, {0}, 4, 1));
  writeFile(d + "short.bin", packed(8, {1, 2}, 2, 3));
  std::vector<int> got;
  dt::readPackedTokens(d + "ok.bin", [&](const int *p, size_t n) { got.insert(got.end(), p, p + n); }, nullptr);
  EXPECT_EQ(got, (std::vector<int>{1, 300, 65535, 1, 7}));
  got.clear();
  dt::readPackedTokens(d + "i32.bin", [&](const int *p, size_t n) { got.insert(got.end(), p, p + n); }, nullptr);
  EXPECT_EQ(got, (std::vector<int>{1, 70000}));
  EXPECT_NE(errorOf([&] { dt::readPackedHeader(d + "float.bin"); }).find("dtype code 6 is not an integer"),
            std::string::npos);
  EXPECT_NE(errorOf([&] { dt::readPackedHeader(d + "short.bin"); }).find("chunk of 3 tokens needs 30"),
            std::string::npos);
  EXPECT_TRUE(dt::isPackedFile(d + "ok.bin"));
  EXPECT_NE(errorOf([&] { dt::listInputs({d + "ok.bin"}, dt::Format::Text); }).find("--format litpkd"),
            std::string::npos);
}

TEST(DataShards, SplitRolloverAndTail) {
  std::string d = mkdir("shards");
  dt::ShardWriter w(d, 0.25, 10, 100);
  std::vector<std::vector<int>> docs;
  std::mt19937 rng(std::random_device{}());
  for (int i = 0; i < 12; ++i) {
    docs.push_back({1});
    for (int k = rng() % 7; k > 0; --k) docs.back().push_back(3 + rng() % 97);
    w.beginDocument();
    w.add(docs.back().data(), docs.back().size());
  }
  w.finish();
  std::vector<int> want[2];  // documents 3, 7, 11 go to validation (f = 1/4)
  for (int i = 0; i < 12; ++i)
    want[i % 4 == 3].insert(want[i % 4 == 3].end(), docs[i].begin(), docs[i].end());
  std::vector<int> got[2];
  uint64_t documents[2] = {0, 0};
  for (const auto &s : w.shards()) {
    int v = s.split == "val";
    EXPECT_EQ(s.file.find(s.split), 0u);
    auto tokens = tk::readShard(d + s.file);
    EXPECT_EQ(tokens.size(), s.tokens);
    EXPECT_GE(s.tokens, 3u);  // no tiny tail: appended to the previous shard
    got[v].insert(got[v].end(), tokens.begin(), tokens.end());
    documents[v] += s.documents;
  }
  EXPECT_EQ(got[0], want[0]);
  EXPECT_EQ(got[1], want[1]);
  EXPECT_EQ(documents[0], 9u);
  EXPECT_EQ(documents[1], 3u);
  std::vector<int> beyond = {100};
  EXPECT_THROW(w.add(beyond.data(), 1), dt::Error);
}

// Expected shard contents: [BOS] + ids of each document, split as the writer does.
void expectShards(const std::string &dir, const dt::Manifest &m,
                  const std::vector<std::vector<int>> &docIds) {
  std::vector<uint16_t> want[2];
  uint64_t docs[2] = {0, 0};
  for (size_t i = 0; i < docIds.size(); ++i) {
    double f = m.valFraction;
    int v = std::floor((i + 1) * f) > std::floor(i * f);
    want[v].push_back(static_cast<uint16_t>(m.bosId));
    for (int id : docIds[i]) want[v].push_back(static_cast<uint16_t>(id));
    ++docs[v];
  }
  const char *splits[] = {"train", "val"};
  for (int v = 0; v < 2; ++v) {
    std::vector<uint16_t> got;
    for (const auto &p : m.shardPaths(dir, splits[v])) {
      auto t = tk::readShard(p);
      got.insert(got.end(), t.begin(), t.end());
    }
    EXPECT_EQ(got, want[v]) << splits[v];
    EXPECT_EQ(m.tokens(splits[v]), want[v].size());
    EXPECT_EQ(m.documents(splits[v]), docs[v]);
  }
}

TEST(DataPrepare, FortuneCorpusWithATrainedTokenizer) {
  std::string out = tempDir("prep_fortune");
  dt::PrepareOptions o;
  o.inputs = fortuneFiles();
  o.out = out;
  o.trainVocab = 512;
  o.format = "fortune";
  o.valFraction = 0.05;
  o.shardTokens = 20000;
  o.progress = false;
  dt::Manifest m = dt::prepare(o);
  dt::Manifest r = dt::readManifest(out);
  EXPECT_EQ(r.vocabSize, 512);
  EXPECT_EQ(r.bosId, 1);
  EXPECT_EQ(r.eosId, 2);
  EXPECT_EQ(r.unkId, 0);
  EXPECT_EQ(r.format, "fortune");
  EXPECT_EQ(r.sources, fortuneFiles());
  EXPECT_TRUE(r.tokenizerTrained);
  EXPECT_GT(r.shardPaths(out, "train").size(), 2u);
  EXPECT_EQ(r.shardPaths(out, "val").size(), 1u);
  for (const auto &s : r.shards) EXPECT_NE(s.file.find(s.split), std::string::npos);
  // The shipped tokenizer encodes the documents into exactly the shards.
  dt::Tokenizer tok = dt::Tokenizer::load(out + "/tokenizer.model");
  std::vector<std::vector<int>> ids;
  for (const auto &d : corpusDocs()) ids.push_back(tok.encode(d));
  expectShards(out, r, ids);
  EXPECT_EQ(m.tokens("train") + m.tokens("val"), r.tokens("train") + r.tokens("val"));
}

std::vector<std::string> listing(const std::string &dir) {
  std::vector<std::string> names;
  for (const auto &e : fs::directory_iterator(dir)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

dt::PrepareOptions quiet(std::vector<std::string> inputs, std::string out) {
  dt::PrepareOptions o;
  o.inputs = std::move(inputs);
  o.out = std::move(out);
  o.progress = false;
  return o;
}

TEST(DataPrepare, JsonlWithAGivenTokenizerThenForce) {
  std::string d = mkdir("prep_jsonl_in"), out = tempDir("prep_jsonl");
  const dt::Tokenizer &tok = testTokenizer();
  writeFile(d + "tok.model", tok.bytes());
  std::vector<std::string> texts = {"first document", "  second, with  spaces  ", "日本語 😀",
                                    "line one\nline two", "fifth"};
  std::string jsonl;
  for (const auto &t : texts) jsonl += nlohmann::json{{"id", 7}, {"text", t}}.dump() + "\n";
  writeFile(d + "docs.jsonl", jsonl);
  dt::PrepareOptions o = quiet({d + "docs.jsonl"}, out);
  o.tokenizer = d + "tok.model";
  o.format = "jsonl";
  o.valFraction = 0.4;  // documents 1 and 4
  dt::prepare(o);
  dt::Manifest m = dt::readManifest(out);
  EXPECT_FALSE(m.tokenizerTrained);
  EXPECT_EQ(slurp(out + "/tokenizer.model"), tok.bytes());
  std::vector<std::vector<int>> ids;
  for (const auto &t : texts) ids.push_back(tok.encode(t));
  expectShards(out, m, ids);
  EXPECT_EQ(listing(out), (std::vector<std::string>{"manifest.json", "tokenizer.model",
                                                    "train_000000.bin", "val_000000.bin"}));

  // Prepared data is not replaced without --force, and stays as it was.
  std::string before = slurp(out + "/manifest.json");
  o.valFraction = 0;
  std::string err = errorOf([&] { dt::prepare(o); });
  EXPECT_NE(err.find("already holds prepared data"), std::string::npos) << err;
  EXPECT_NE(err.find("--force"), std::string::npos) << err;
  EXPECT_EQ(slurp(out + "/manifest.json"), before);
  // With --force it is, and the stale val shard goes.
  writeFile(out + "/notes.txt", "mine");
  o.force = true;
  dt::prepare(o);
  EXPECT_EQ(listing(out), (std::vector<std::string>{"manifest.json", "notes.txt", "tokenizer.model",
                                                    "train_000000.bin"}));
  EXPECT_EQ(dt::readManifest(out).documents("train"), texts.size());
}

TEST(DataPrepare, FailureLeavesExistingDataUntouched) {
  std::string d = mkdir("prep_fail_in"), out = tempDir("prep_fail");
  writeFile(d + "tok.model", testTokenizer().bytes());
  writeFile(d + "a.txt", "good text\n");
  writeFile(d + "b.txt", "more good text\n");
  dt::PrepareOptions o = quiet({d + "a.txt", d + "b.txt"}, out);
  o.tokenizer = d + "tok.model";
  dt::prepare(o);
  std::string shard = slurp(out + "/train_000000.bin"), manifest = slurp(out + "/manifest.json");
  writeFile(d + "b.txt", "more text, then a bad byte \xFE\n");
  o.force = true;
  EXPECT_EQ(errorOf([&] { dt::prepare(o); }), d + "b.txt: invalid UTF-8 at byte offset 27");
  EXPECT_EQ(slurp(out + "/train_000000.bin"), shard);
  EXPECT_EQ(slurp(out + "/manifest.json"), manifest);
  for (const auto &e : fs::directory_iterator(fs::path(out).parent_path()))
    EXPECT_EQ(e.path().filename().string().find(".tl_data_prep_fail.prepare"), std::string::npos);
}

// A SentencePiece model with `extra` more (normal) pieces, by appending
// protobuf records of ModelProto.pieces (field 1) to a real model.
std::string withExtraPieces(const std::string &model, int extra) {
  std::string out = model;
  for (int i = 0; i < extra; ++i) {
    std::string piece = "zz" + std::to_string(i);
    float score = -1000.0f - i;
    std::string msg;
    msg += char(0x0A), msg += char(piece.size()), msg += piece;        // piece = 1
    msg += char(0x15), msg.append(reinterpret_cast<char *>(&score), 4);  // score = 2
    out += char(0x0A), out += char(msg.size()), out += msg;
  }
  return out;
}

TEST(DataPrepare, RejectsVocabulariesBeyondUint16) {
  std::string d = mkdir("prep_vocab_in");
  writeFile(d + "a.txt", "some text\n");
  dt::PrepareOptions o = quiet({d + "a.txt"}, tempDir("prep_vocab"));
  o.trainVocab = 70000;
  EXPECT_EQ(errorOf([&] { dt::prepare(o); }),
            "--train-tokenizer must be in 260..65536, got 70000");
  std::string big = withExtraPieces(testTokenizer().bytes(), 65536 - 512 + 1);
  ASSERT_EQ(dt::Tokenizer::fromBytes(big, "big").vocabSize(), 65537);
  writeFile(d + "big.model", big);
  o.trainVocab = 0;
  o.tokenizer = d + "big.model";
  EXPECT_EQ(errorOf([&] { dt::prepare(o); }),
            d + "big.model: vocabulary of 65537 pieces does not fit uint16 shards (at most 65536)");
  EXPECT_FALSE(fs::exists(o.out));
  writeFile(d + "text.model", "not a model");
  o.tokenizer = d + "text.model";
  EXPECT_NE(errorOf([&] { dt::prepare(o); }).find("text.model: not a SentencePiece model"),
            std::string::npos);
}

// A pid no process has: a child that has exited and been reaped.
pid_t deadPid() {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  return pid;
}

TEST(DataPrepare, RemovesStaleTemporariesOfItsOutput) {
  std::string d = mkdir("prep_stale");
  writeFile(d + "a.txt", "some text to prepare\n");
  writeFile(d + "tok.model", testTokenizer().bytes());
  std::string dead = d + ".out.prepare-" + std::to_string(deadPid());
  std::string alive = d + ".out.prepare-1";  // init: a live process
  std::string other = d + ".other.prepare-" + std::to_string(deadPid());  // another --out's
  for (const std::string &t : {dead, alive, other}) {
    fs::create_directories(t);
    writeFile(t + "/train_000000.bin", "partial");
  }
  dt::PrepareOptions o = quiet({d + "a.txt"}, d + "out");
  o.tokenizer = d + "tok.model";
  dt::prepare(o);
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(alive));
  EXPECT_TRUE(fs::exists(other));
  EXPECT_TRUE(fs::exists(d + "out/manifest.json"));
}

TEST(DataPrepare, SigtermRemovesTheTemporaryDirectory) {
  std::string d = mkdir("prep_sigterm");
  writeFile(d + "tok.model", testTokenizer().bytes());
  // Enough text that encoding it on one thread outlasts the poll below.
  std::string text;
  for (const auto &doc : corpusDocs()) text += doc + "\n";
  std::string big;
  while (big.size() < (24u << 20)) big += text;
  writeFile(d + "big.txt", big);
  dt::PrepareOptions o = quiet({d + "big.txt"}, d + "out");
  o.tokenizer = d + "tok.model";
  o.threads = 1;
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    try {
      dt::prepare(o);
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(0);
  }
  std::string tmp = d + ".out.prepare-" + std::to_string(child);
  bool seen = false;
  for (int i = 0; i < 120000 && !seen; ++i) {
    seen = fs::exists(tmp + "/tokenizer.model");
    if (!seen) ::usleep(1000);
  }
  ::kill(child, SIGTERM);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(seen) << "the temporary directory never appeared";
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGTERM);
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_FALSE(fs::exists(d + "out"));
}

TEST(DataPrepare, ConvertsLitpkdFiles) {
  std::string d = mkdir("prep_litpkd_in"), out = tempDir("prep_litpkd");
  writeFile(d + "tok.model", testTokenizer().bytes());
  std::mt19937 rng(std::random_device{}());
  // 40 documents packed as TinyLlama does, across two chunk files; the last
  // chunk is padded with BOS.
  std::vector<std::vector<int>> docs;
  std::vector<int64_t> stream;
  size_t afterBos = 0;  // a cut just after the BOS of document 25
  for (int i = 0; i < 40; ++i) {
    docs.emplace_back();
    stream.push_back(1);
    if (i == 25) afterBos = stream.size();
    for (int k = 1 + rng() % 30; k > 0; --k) {
      docs.back().push_back(3 + rng() % 509);
      stream.push_back(docs.back().back());
    }
  }
  auto run = [&](size_t cut) {
    std::vector<int64_t> a(stream.begin(), stream.begin() + cut), b(stream.begin() + cut, stream.end());
    b.insert(b.end(), 5, 1);
    writeFile(d + "chunk_0.bin", packed(8, a, 2, a.size()));
    writeFile(d + "chunk_1.bin", packed(8, b, 2, b.size()));
    dt::PrepareOptions o = quiet({d + "chunk_0.bin", d + "chunk_1.bin"}, out);
    o.tokenizer = d + "tok.model";
    o.valFraction = 0.1;
    o.force = true;
    dt::prepare(o);  // detected: the first input starts with LITPKDS
    dt::Manifest m = dt::readManifest(out);
    EXPECT_EQ(m.format, "litpkd");
    expectShards(out, m, docs);
    return o;
  };
  run(afterBos - 3);  // inside a document
  run(afterBos);      // chunk_0 ends with a single BOS
  dt::PrepareOptions o = run(stream.size() / 2);

  std::vector<int64_t> bad = {1, 3, 600, 4};  // 600 is beyond the 512-piece vocabulary
  writeFile(d + "chunk_1.bin", packed(8, bad, 2, bad.size()));
  std::string err = errorOf([&] { dt::prepare(o); });
  EXPECT_EQ(err, d + "chunk_1.bin: token id 600 is outside the vocabulary of 512");
  o.format = "text";
  EXPECT_NE(errorOf([&] { dt::prepare(o); }).find("chunk_0.bin: a LITPKDS packed token file"),
            std::string::npos);
}

TEST(DataManifest, ReadErrorsNameTheProblem) {
  std::string d = mkdir("manifest");
  dt::Manifest m;
  m.format = "text";
  m.vocabSize = 32000, m.bosId = 1, m.eosId = 2, m.unkId = 0;
  m.shards.push_back({"train_000000.bin", "train", 5, 1});
  dt::writeManifest(d + "manifest.json", m);
  EXPECT_NE(errorOf([&] { dt::readManifest(d); }).find("train_000000.bin: listed in"), std::string::npos);
  tk::writeShard(d + "train_000000.bin", {1, 2, 3, 4, 5});
  dt::Manifest r = dt::readManifest(d);
  EXPECT_EQ(r.vocabSize, 32000);
  EXPECT_EQ(r.shardPaths(d, "train"), std::vector<std::string>{d + "train_000000.bin"});
  tk::writeShard(d + "train_000000.bin", {1, 2, 3});
  EXPECT_NE(errorOf([&] { dt::readManifest(d); }).find("says 5 tokens"), std::string::npos);
  writeFile(d + "manifest.json", "{\"version\": 1, \"vocab_size\": 10}");
  EXPECT_EQ(errorOf([&] { dt::readManifest(d); }), d + "manifest.json: missing key 'bos_id'");
}

}  // namespace
