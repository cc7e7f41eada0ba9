// FNV-1a, 64-bit: the artifact's and checkpoints' checksums, layout
// identities and the kernel caches' keys. Not cryptographic: it detects
// corruption and names cache entries.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tlc {

constexpr uint64_t kFnv1a64Basis = 0xcbf29ce484222325ull;

// `h` continues a hash over data given in pieces.
inline uint64_t fnv1a64(const void *data, size_t bytes, uint64_t h = kFnv1a64Basis) {
  const unsigned char *p = static_cast<const unsigned char *>(data);
  for (size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

inline uint64_t fnv1a64(std::string_view text) { return fnv1a64(text.data(), text.size()); }

}  // namespace tlc
