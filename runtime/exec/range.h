// A half-open range of elements of the flat parameter/gradient buffers: what
// the training state uploads, the optimizer updates and a rank owns.
#pragma once

#include <cstdint>

namespace tlc {

struct Range {
  int64_t begin = 0, end = 0;  // elements of the flat buffers
  int64_t size() const { return end - begin; }
};

}  // namespace tlc
