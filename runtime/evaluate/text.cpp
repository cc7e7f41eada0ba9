#include "runtime/evaluate/text.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/evaluate/tasks.h"

namespace tlc::evaluate {
namespace {

// The code point starting at s[i] and its length in bytes (valid UTF-8).
uint32_t decodeAt(std::string_view s, size_t i, size_t *length) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  if (i + n > s.size()) n = 1;  // not reached on valid UTF-8
  uint32_t cp = n == 1 ? c : c & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  *length = n;
  return cp;
}

bool continuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

}  // namespace

bool isPythonSpace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

size_t trailingSpaceBytes(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && continuationByte(s[start])) --start;
    size_t n = 0;
    if (!isPythonSpace(decodeAt(s, start, &n))) break;
    end = start;
  }
  return s.size() - end;
}

std::string strip(std::string_view s) {
  s.remove_suffix(trailingSpaceBytes(s));
  size_t i = 0, n = 0;
  while (i < s.size() && isPythonSpace(decodeAt(s, i, &n))) i += n;
  return std::string(s.substr(i));
}

int64_t codePoints(std::string_view s) {
  int64_t count = 0;
  for (char c : s) count += !continuationByte(c);
  return count;
}

int64_t pythonWordCount(std::string_view s) {
  int64_t runs = 0;
  bool inSpace = false;
  for (size_t i = 0, n = 0; i < s.size(); i += n) {
    bool space = isPythonSpace(decodeAt(s, i, &n));
    if (space && !inSpace) ++runs;
    inSpace = space;
  }
  return runs + 1;
}

std::string readWholeFile(const std::string &path, const std::string &what) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw TaskError(path + ": cannot read the " + what + ": a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw TaskError(path + ": cannot read the " + what + ": " + std::strerror(errno));
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw TaskError(path + ": cannot read the " + what + ": read error");
  return s.str();
}

std::string capitalize(std::string_view s) {
  std::string out(s);
  for (size_t i = 0; i < out.size(); ++i) {
    char &c = out[i];
    if (i == 0 && c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (i > 0 && c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace tlc::evaluate
