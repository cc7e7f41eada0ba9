#include "runtime/data/sources.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>

#include "runtime/data/tokenizer.h"  // Error

namespace tlc::data {
namespace fs = std::filesystem;

namespace {
constexpr char kPackedMagic[] = "LITPKDS";

// Validates UTF-8 across blocks. feed() returns the stream offset of the first
// bad byte (a NUL counts as binary data) or -1.
class Utf8Stream {
public:
  enum class Problem { None, Nul, Invalid };
  explicit Utf8Stream(bool allowNul = false) : allowNul_(allowNul) {}

  int64_t feed(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; ++i, ++offset_) {
      unsigned c = p[i];
      if (need_ > 0) {
        if (c < lo_ || c > hi_) return fail(Problem::Invalid, start_);
        lo_ = 0x80, hi_ = 0xBF;
        --need_;
        continue;
      }
      start_ = offset_;
      if (c < 0x80) {
        if (c == 0 && !allowNul_) return fail(Problem::Nul, offset_);
        continue;
      }
      lo_ = 0x80, hi_ = 0xBF;
      if (c >= 0xC2 && c <= 0xDF) need_ = 1;
      else if (c == 0xE0) need_ = 2, lo_ = 0xA0;            // no overlong forms
      else if (c == 0xED) need_ = 2, hi_ = 0x9F;            // no surrogates
      else if (c >= 0xE1 && c <= 0xEF) need_ = 2;
      else if (c == 0xF0) need_ = 3, lo_ = 0x90;
      else if (c == 0xF4) need_ = 3, hi_ = 0x8F;            // <= U+10FFFF
      else if (c >= 0xF1 && c <= 0xF3) need_ = 3;
      else return fail(Problem::Invalid, offset_);
    }
    return -1;
  }
  // At the end of the stream: a sequence cut short is invalid.
  int64_t finish() { return need_ > 0 ? fail(Problem::Invalid, start_) : -1; }
  Problem problem() const { return problem_; }

private:
  int64_t fail(Problem p, uint64_t at) {
    problem_ = p;
    return static_cast<int64_t>(at);
  }
  uint64_t offset_ = 0, start_ = 0;
  int need_ = 0;
  unsigned lo_ = 0x80, hi_ = 0xBF;
  Problem problem_ = Problem::None;
  bool allowNul_;
};

[[noreturn]] void badBytes(const std::string &where, Utf8Stream::Problem p, int64_t offset) {
  if (p == Utf8Stream::Problem::Nul)
    throw Error(where + ": binary data (NUL byte at byte offset " + std::to_string(offset) +
                "), not text");
  throw Error(where + ": invalid UTF-8 at byte offset " + std::to_string(offset));
}

// Builds a document's segments as text arrives (see Segment).
class Chunker {
public:
  Chunker(const ChunkPolicy &policy, const std::function<void(Segment &&)> &sink)
      : policy_(policy), sink_(sink) {}

  void begin() {
    pending_.clear();
    docStart_ = true;
  }
  void append(std::string_view s) {
    pending_.append(s.data(), s.size());
    while (pending_.size() >= policy_.segmentBytes && cut()) {}
  }
  void end() { emit(pending_.size(), 0); }

private:
  // Emits the text before a single space (or anywhere past maxBytes).
  bool cut() {
    const std::string &t = pending_;
    auto splittable = [&](size_t p) { return t[p] == ' ' && t[p - 1] != ' ' && t[p + 1] != ' '; };
    size_t limit = std::min(policy_.segmentBytes, t.size() - 2);
    for (size_t p = limit; p >= 1; --p)
      if (splittable(p)) return emit(p, policy_.keepSpace ? 0 : 1);
    for (size_t p = limit + 1; p + 1 < t.size(); ++p)
      if (splittable(p)) return emit(p, policy_.keepSpace ? 0 : 1);
    if (t.size() < policy_.maxBytes) return false;
    size_t p = policy_.segmentBytes;
    while (p > 1 && (static_cast<unsigned char>(t[p]) & 0xC0) == 0x80) --p;  // a character start
    return emit(p, 0);
  }
  bool emit(size_t n, size_t skip) {
    sink_(Segment{docStart_, pending_.substr(0, n)});
    pending_.erase(0, n + skip);
    docStart_ = false;
    return true;
  }

  const ChunkPolicy &policy_;
  const std::function<void(Segment &&)> &sink_;
  std::string pending_;
  bool docStart_ = false;
};

using File = std::unique_ptr<FILE, int (*)(FILE *)>;

File openFile(const std::string &path) {
  File f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f) throw Error(path + ": cannot open: " + std::strerror(errno));
  return f;
}

// Calls `line` for every line (without its '\n', and a trailing '\r' kept)
// with its 1-based number, validating UTF-8 on the way.
void forEachLine(const InputFile &in, std::atomic<uint64_t> *bytesRead,
                 const std::function<void(std::string &, uint64_t)> &line) {
  std::ifstream f(in.path, std::ios::binary);
  if (!f) throw Error(in.path + ": cannot open: " + std::strerror(errno));
  Utf8Stream utf8;
  std::string s;
  uint64_t number = 0;
  while (std::getline(f, s)) {
    ++number;
    int64_t bad = utf8.feed(reinterpret_cast<const unsigned char *>(s.data()), s.size());
    if (bad < 0) bad = utf8.finish();  // a line ends every character
    if (bad >= 0) badBytes(in.path + ":" + std::to_string(number), utf8.problem(), bad);
    unsigned char nl = '\n';
    utf8.feed(&nl, 1);
    if (bytesRead) *bytesRead += s.size() + 1;
    line(s, number);
  }
  if (f.bad()) throw Error(in.path + ": read error");
}

void readText(const InputFile &in, Chunker &chunker, std::atomic<uint64_t> *bytesRead) {
  File f = openFile(in.path);
  Utf8Stream utf8;
  std::vector<unsigned char> block(1 << 20);
  chunker.begin();
  size_t n;
  while ((n = std::fread(block.data(), 1, block.size(), f.get())) > 0) {
    int64_t bad = utf8.feed(block.data(), n);
    if (bad >= 0) badBytes(in.path, utf8.problem(), bad);
    chunker.append(std::string_view(reinterpret_cast<const char *>(block.data()), n));
    if (bytesRead) *bytesRead += n;
  }
  if (std::ferror(f.get())) throw Error(in.path + ": read error");
  int64_t bad = utf8.finish();
  if (bad >= 0) badBytes(in.path, utf8.problem(), bad);
  chunker.end();
}

uint64_t readJsonl(const InputFile &in, Chunker &chunker, std::atomic<uint64_t> *bytesRead) {
  uint64_t docs = 0;
  forEachLine(in, bytesRead, [&](std::string &line, uint64_t number) {
    std::string where = in.path + ":" + std::to_string(number);
    if (line.find_first_not_of(" \t\r") == std::string::npos) return;  // blank line
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception &e) {
      throw Error(where + ": not JSON: " + e.what());
    }
    if (!j.is_object()) throw Error(where + ": expected a JSON object with a \"text\" field");
    auto it = j.find("text");
    if (it == j.end()) throw Error(where + ": no \"text\" field");
    if (!it->is_string()) throw Error(where + ": \"text\" is not a string");
    const std::string &text = it->get_ref<const std::string &>();
    if (text.empty()) return;
    if (text.find('\0') != std::string::npos) throw Error(where + ": \"text\" holds a NUL character");
    chunker.begin();
    chunker.append(text);
    chunker.end();
    ++docs;
  });
  return docs;
}

uint64_t readFortune(const InputFile &in, Chunker &chunker, std::atomic<uint64_t> *bytesRead) {
  uint64_t docs = 0, blank = 0;
  bool open = false;
  forEachLine(in, bytesRead, [&](std::string &line, uint64_t) {
    if (line == "%" || line == "%\r") {
      if (open) chunker.end(), ++docs;
      open = false, blank = 0;
    } else if (line.empty() || line == "\r") {
      blank += open;  // leading blank lines are dropped, inner ones kept
    } else {
      if (!open) chunker.begin(), open = true;
      else chunker.append(std::string(blank + 1, '\n'));
      blank = 0;
      chunker.append(line);
    }
  });
  if (open) chunker.end(), ++docs;
  return docs;
}
}  // namespace

Format parseFormat(const std::string &name) {
  if (name == "text") return Format::Text;
  if (name == "jsonl") return Format::Jsonl;
  if (name == "fortune") return Format::Fortune;
  if (name == "litpkd") return Format::Litpkd;
  throw Error("unknown format '" + name + "' (expected text, jsonl, fortune or litpkd)");
}

const char *formatName(Format f) {
  switch (f) {
  case Format::Text: return "text";
  case Format::Jsonl: return "jsonl";
  case Format::Fortune: return "fortune";
  case Format::Litpkd: return "litpkd";
  }
  return "?";
}

bool isPackedFile(const std::string &path) {
  char magic[sizeof(kPackedMagic) - 1] = {};
  std::ifstream f(path, std::ios::binary);
  return f.read(magic, sizeof magic) && std::memcmp(magic, kPackedMagic, sizeof magic) == 0;
}

std::vector<InputFile> listInputs(const std::vector<std::string> &args, Format format,
                                  const std::vector<std::string> &skipDirs) {
  std::vector<InputFile> files;
  std::set<std::pair<dev_t, ino_t>> seen;
  std::set<fs::path> skip;
  for (const auto &d : skipDirs) skip.insert(fs::weakly_canonical(d));

  auto add = [&](const fs::path &p, bool fromDir) {
    struct stat st;
    if (::stat(p.c_str(), &st) != 0) throw Error(p.string() + ": " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) {
      if (fromDir) return;
      throw Error(p.string() + ": not a regular file or directory");
    }
    if (!seen.insert({st.st_dev, st.st_ino}).second) return;
    if (fromDir && format == Format::Fortune && p.extension() == ".dat") return;
    if (st.st_size == 0) throw Error(p.string() + ": empty input file");
    bool packed = isPackedFile(p.string());
    if (packed && format != Format::Litpkd)
      throw Error(p.string() + ": a LITPKDS packed token file; convert it with --format litpkd "
                               "and the --tokenizer that made it");
    if (!packed && format == Format::Litpkd)
      throw Error(p.string() + ": not a LITPKDS file (it does not start with \"LITPKDS\")");
    files.push_back({p.string(), static_cast<uint64_t>(st.st_size)});
  };

  for (const auto &arg : args) {
    std::error_code ec;
    fs::file_status st = fs::status(arg, ec);
    if (ec || !fs::exists(st)) throw Error(arg + ": no such file or directory");
    if (!fs::is_directory(st)) {
      add(arg, false);
      continue;
    }
    std::vector<fs::path> found;
    auto it = fs::recursive_directory_iterator(arg, fs::directory_options::follow_directory_symlink);
    for (; it != fs::recursive_directory_iterator(); ++it) {
      const fs::path &p = it->path();
      bool hidden = p.filename().string().rfind('.', 0) == 0;
      if (hidden || (it->is_directory() && skip.count(fs::weakly_canonical(p)))) {
        if (it->is_directory()) it.disable_recursion_pending();
        continue;
      }
      if (!it->is_directory()) found.push_back(p);
    }
    std::sort(found.begin(), found.end());
    size_t before = files.size();
    for (const auto &p : found) add(p, true);
    if (files.size() == before) throw Error(arg + ": no input files in this directory");
  }
  if (files.empty()) throw Error("no input files");
  return files;
}

void readDocuments(const std::vector<InputFile> &files, Format format, const ChunkPolicy &policy,
                   const std::function<void(Segment &&)> &sink, std::atomic<uint64_t> *bytesRead) {
  Chunker chunker(policy, sink);
  for (const auto &in : files) {
    switch (format) {
    case Format::Text: readText(in, chunker, bytesRead); break;
    case Format::Jsonl:
      if (readJsonl(in, chunker, bytesRead) == 0)
        throw Error(in.path + ": no documents (every line is blank or has an empty \"text\")");
      break;
    case Format::Fortune:
      if (readFortune(in, chunker, bytesRead) == 0)
        throw Error(in.path + ": no documents (nothing but '%' separators and blank lines)");
      break;
    case Format::Litpkd: throw Error(in.path + ": LITPKDS files hold tokens, not documents");
    }
  }
}

int64_t findInvalidUtf8(std::string_view s) {
  Utf8Stream utf8(/*allowNul=*/true);
  int64_t bad = utf8.feed(reinterpret_cast<const unsigned char *>(s.data()), s.size());
  return bad >= 0 ? bad : utf8.finish();
}

void splitTrainingLines(std::string_view text, size_t maxBytes,
                        const std::function<void(std::string_view)> &sink) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    while (line.size() > maxBytes) {
      size_t cut = line.rfind(' ', maxBytes);
      if (cut == std::string_view::npos || cut == 0) {
        cut = maxBytes;
        while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
      }
      sink(line.substr(0, cut));
      line = line.substr(cut);
    }
    if (!line.empty()) sink(line);
  }
}

}  // namespace tlc::data
