// Python's string semantics where lm-evaluation-harness relies on them:
// what str.isspace() calls whitespace (strip, rstrip, re.split(r"\s+")),
// str.capitalize() and len() (code points). Text is UTF-8 (checked by the
// readers before it gets here).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tlc::evaluate {

// Python's str.isspace() for one code point (tab, newline, vertical tab,
// form feed, carriage return, U+001C..U+001F, space, U+0085, U+00A0, U+1680,
// U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000).
bool isPythonSpace(uint32_t codePoint);

// The bytes of trailing whitespace at the end of `s` (len(s) - len(s.rstrip())).
size_t trailingSpaceBytes(std::string_view s);
// s.strip().
std::string strip(std::string_view s);
// len(s): code points.
int64_t codePoints(std::string_view s);
// len(re.split(r"\s+", s)): the maximal runs of whitespace plus one, so that
// leading and trailing whitespace each count an (empty) word, as the
// harness's word perplexity counts them.
int64_t pythonWordCount(std::string_view s);
// The bytes of `path`; throws TaskError "PATH: cannot read the WHAT: <reason>"
// (missing, a directory, unreadable).
std::string readWholeFile(const std::string &path, const std::string &what);

// s.capitalize() for ASCII letters: the first upper-cased, the rest
// lower-cased; other characters unchanged (Python also case-maps non-ASCII
// letters).
std::string capitalize(std::string_view s);

}  // namespace tlc::evaluate
