// Input documents for tlrun prepare: which files --input names, and their
// documents in each text format, validated (UTF-8, no binary data) and cut
// into bounded segments so that any input streams in bounded memory.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace tlc::data {

enum class Format { Text, Jsonl, Fortune, Litpkd };
// Throws Error for an unknown name.
Format parseFormat(const std::string &name);
const char *formatName(Format f);

struct InputFile {
  std::string path;
  uint64_t bytes = 0;
};

// The files named by `args`: files as given, directories walked recursively
// in name order, skipping hidden entries, files already listed (symlinks to
// them included), paths under `skipDirs`, and for the fortune format the
// strfile indexes (*.dat). Empty files, missing paths and a LITPKDS file in a
// text format (or a text file given as LITPKDS) are Errors naming the file.
std::vector<InputFile> listInputs(const std::vector<std::string> &args, Format format,
                                  const std::vector<std::string> &skipDirs = {});

// True when the file starts with LITPKDS's magic.
bool isPackedFile(const std::string &path);

// A piece of a document's text. A document longer than the segment size is
// cut at a single space, which the next segment leaves out: SentencePiece's
// dummy prefix puts it back, so the ids are those of the whole document.
struct Segment {
  bool docStart = false;
  std::string text;
};

struct ChunkPolicy {
  size_t segmentBytes = 1 << 20;  // aim for segments of about this size
  size_t maxBytes = 64 << 20;     // cut anywhere (at a character) past this without a space
  bool keepSpace = false;         // the tokenizer adds no dummy prefix: keep the space
};

// Reads every document of `files` in `format` (not Litpkd) and passes its
// segments to `sink` in order. Bytes read so far are added to `bytesRead`.
// Throws Error naming the file (and line for JSON Lines) with the byte offset
// of invalid UTF-8 or binary data, a JSON line without a string "text", or a
// file without documents.
void readDocuments(const std::vector<InputFile> &files, Format format, const ChunkPolicy &policy,
                   const std::function<void(Segment &&)> &sink, std::atomic<uint64_t> *bytesRead);

// Offset of the first byte of `s` that is not valid UTF-8 (overlong forms,
// surrogates and code points past U+10FFFF included), or -1.
int64_t findInvalidUtf8(std::string_view s);

// Cuts `text` into lines of at most `maxBytes` bytes (at spaces where possible),
// for the tokenizer trainer.
void splitTrainingLines(std::string_view text, size_t maxBytes,
                        const std::function<void(std::string_view)> &sink);

}  // namespace tlc::data
