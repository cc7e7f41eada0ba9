// TinyLlama's packed token files (lit-gpt's PackedDatasetBuilder): b"LITPKDS",
// u64 version (1), u8 dtype code, u64 chunk size, then exactly chunk-size
// tokens, little-endian. The builder pads a last chunk with its separator.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

namespace tlc::data {

struct PackedHeader {
  uint64_t version = 0;
  uint8_t dtype = 0;  // 1 u8, 2 i8, 3 i16, 4 i32, 5 i64, 6 f32, 7 f64, 8 u16
  uint64_t chunkSize = 0;
};
constexpr size_t kPackedHeaderBytes = 24;

// Checks the header and that the file holds exactly chunkSize tokens of an
// integer dtype; throws Error naming the file.
PackedHeader readPackedHeader(const std::string &path);

// Streams the file's tokens in blocks; negative ids are an Error.
void readPackedTokens(const std::string &path, const std::function<void(const int *, size_t)> &sink,
                      std::atomic<uint64_t> *bytesRead);

}  // namespace tlc::data
