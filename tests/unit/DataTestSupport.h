// Shared by the data tests: a small fortune corpus (Debian's `fortunes`) and
// a 512-piece tokenizer trained on it once per test binary.
#pragma once

#include "runtime/data/tokenizer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace datatest {

inline const char *kFortuneDir = "/usr/share/games/fortunes";

inline std::vector<std::string> fortuneFiles() {
  std::vector<std::string> out;
  for (const char *n : {"debian", "food", "goedel", "kids", "love", "magic", "medicine", "pets"})
    out.push_back(std::string(kFortuneDir) + "/" + n);
  return out;
}

inline std::string slurp(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The documents of a fortune file, parsed independently of runtime/data: text
// between lines holding only '%', without leading and trailing blank lines.
inline std::vector<std::string> fortuneDocs(const std::string &path) {
  std::vector<std::string> docs;
  std::istringstream in(slurp(path));
  std::vector<std::string> lines;
  auto flush = [&] {
    while (!lines.empty() && lines.back().empty()) lines.pop_back();
    size_t b = 0;
    while (b < lines.size() && lines[b].empty()) ++b;
    std::string doc;
    for (size_t i = b; i < lines.size(); ++i) doc += (i > b ? "\n" : "") + lines[i];
    if (!doc.empty()) docs.push_back(doc);
    lines.clear();
  };
  std::string line;
  while (std::getline(in, line)) {
    if (line == "%") flush();
    else lines.push_back(line);
  }
  flush();
  return docs;
}

inline std::vector<std::string> corpusDocs() {
  std::vector<std::string> all;
  for (const auto &f : fortuneFiles())
    for (auto &d : fortuneDocs(f)) all.push_back(std::move(d));
  return all;
}

// Lines of the corpus, as the tokenizer trainer sees text.
inline const tlc::data::Tokenizer &testTokenizer() {
  static tlc::data::Tokenizer tok = [] {
    std::vector<std::string> lines;
    for (const auto &d : corpusDocs()) {
      std::istringstream in(d);
      std::string l;
      while (std::getline(in, l))
        if (!l.empty()) lines.push_back(l);
    }
    return tlc::data::Tokenizer::fromBytes(tlc::data::trainTokenizer(lines, 512, 2), "test tokenizer");
  }();
  return tok;
}

inline std::string tempDir(const std::string &name) {
  std::string d = ::testing::TempDir() + "tl_data_" + name;
  std::string cmd = "rm -rf '" + d + "'";
  if (std::system(cmd.c_str()) != 0) ADD_FAILURE() << cmd;
  return d;
}

inline void writeFile(const std::string &path, const std::string &bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

}  // namespace datatest
