// A dense row-major host tensor of doubles: the value type of the reference
// evaluator. Integer and boolean tensors hold exact integral values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tlc {

struct HostTensor {
  std::vector<int64_t> shape;
  std::vector<double> data;

  HostTensor() = default;
  explicit HostTensor(std::vector<int64_t> s, double fill = 0.0)
      : shape(std::move(s)), data(static_cast<size_t>(count(shape)), fill) {}
  HostTensor(std::vector<int64_t> s, std::vector<double> d)
      : shape(std::move(s)), data(std::move(d)) {}

  int64_t numel() const { return static_cast<int64_t>(data.size()); }
  int64_t rank() const { return static_cast<int64_t>(shape.size()); }

  static int64_t count(const std::vector<int64_t> &shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

}  // namespace tlc
