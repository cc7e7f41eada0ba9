#include "runtime/data/litpkd.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "runtime/data/tokenizer.h"  // Error

namespace tlc::data {
namespace {
size_t itemSize(uint8_t code) {
  switch (code) {
  case 1: case 2: return 1;
  case 3: case 8: return 2;
  case 4: return 4;
  case 5: return 8;
  default: return 0;  // floats (6, 7) and unknown codes
  }
}

template <typename T> int64_t load(const unsigned char *p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return static_cast<int64_t>(v);
}

int64_t tokenAt(uint8_t code, const unsigned char *p) {
  switch (code) {
  case 1: return load<uint8_t>(p);
  case 2: return load<int8_t>(p);
  case 3: return load<int16_t>(p);
  case 4: return load<int32_t>(p);
  case 5: return load<int64_t>(p);
  default: return load<uint16_t>(p);
  }
}

using File = std::unique_ptr<FILE, int (*)(FILE *)>;
}  // namespace

PackedHeader readPackedHeader(const std::string &path) {
  File f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f) throw Error(path + ": cannot open: " + std::strerror(errno));
  unsigned char h[kPackedHeaderBytes];
  if (std::fread(h, 1, sizeof h, f.get()) != sizeof h || std::memcmp(h, "LITPKDS", 7) != 0)
    throw Error(path + ": not a LITPKDS file (no 24-byte header starting with \"LITPKDS\")");
  PackedHeader hdr;
  std::memcpy(&hdr.version, h + 7, 8);
  hdr.dtype = h[15];
  std::memcpy(&hdr.chunkSize, h + 16, 8);
  if (hdr.version != 1)
    throw Error(path + ": LITPKDS version " + std::to_string(hdr.version) + " (this reader knows 1)");
  if (itemSize(hdr.dtype) == 0)
    throw Error(path + ": LITPKDS dtype code " + std::to_string(hdr.dtype) +
                " is not an integer type (1-5 or 8; uint16 is 8)");
  std::fseek(f.get(), 0, SEEK_END);
  uint64_t size = static_cast<uint64_t>(std::ftell(f.get()));
  uint64_t want = kPackedHeaderBytes + hdr.chunkSize * itemSize(hdr.dtype);
  if (size != want)
    throw Error(path + ": " + std::to_string(size) + " bytes, but the header's chunk of " +
                std::to_string(hdr.chunkSize) + " tokens needs " + std::to_string(want));
  return hdr;
}

void readPackedTokens(const std::string &path, const std::function<void(const int *, size_t)> &sink,
                      std::atomic<uint64_t> *bytesRead) {
  PackedHeader hdr = readPackedHeader(path);
  size_t item = itemSize(hdr.dtype);
  File f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f || std::fseek(f.get(), kPackedHeaderBytes, SEEK_SET) != 0) throw Error(path + ": cannot read");
  if (bytesRead) *bytesRead += kPackedHeaderBytes;
  std::vector<unsigned char> block((1 << 20) * item);
  std::vector<int> ids;
  uint64_t index = 0;
  size_t n;
  while ((n = std::fread(block.data(), item, block.size() / item, f.get())) > 0) {
    ids.resize(n);
    for (size_t i = 0; i < n; ++i, ++index) {
      int64_t t = tokenAt(hdr.dtype, &block[i * item]);
      if (t < 0 || t > INT32_MAX)
        throw Error(path + ": token " + std::to_string(index) + " is " + std::to_string(t) +
                    ", not a token id");
      ids[i] = static_cast<int>(t);
    }
    sink(ids.data(), n);
    if (bytesRead) *bytesRead += n * item;
  }
  if (std::ferror(f.get())) throw Error(path + ": read error");
}

}  // namespace tlc::data
