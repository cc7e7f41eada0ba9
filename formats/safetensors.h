// Safetensors: an 8-byte little-endian header length, a JSON header mapping
// tensor names to {dtype, shape, data_offsets}, then raw little-endian data.
// No MLIR here: used by the compiler tools, the runtime and the tests.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace tlc::safetensors {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

const char *dtypeName(DType d);
size_t dtypeSize(DType d);
// Returns false for an unknown name.
bool parseDType(const std::string &name, DType *out);

// Every failure (unreadable file, malformed header, bad offsets) is reported
// as this, with the file name in the message.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range within the data section
  int64_t numel() const;
};

// A read-only, memory-mapped safetensors file.
class File {
 public:
  static File open(const std::string &path);
  File(File &&) noexcept;
  File &operator=(File &&) noexcept;
  ~File();

  const std::string &path() const { return path_; }
  const std::vector<TensorInfo> &tensors() const { return tensors_; }
  const std::map<std::string, std::string> &metadata() const { return metadata_; }
  // nullptr when absent.
  const TensorInfo *find(const std::string &name) const;
  // Throws Error when absent.
  const TensorInfo &get(const std::string &name) const;
  const uint8_t *data(const TensorInfo &t) const { return dataStart_ + t.begin; }
  // Where t's bytes start in the file (for reading it in chunks with pread
  // instead of touching the mapping: bounded resident memory).
  uint64_t fileOffset(const TensorInfo &t) const {
    return static_cast<uint64_t>(dataStart_ - static_cast<const uint8_t *>(map_)) + t.begin;
  }
  // Converts any float or integer tensor to doubles.
  std::vector<double> toDoubles(const TensorInfo &t) const;

 private:
  File() = default;
  std::string path_;
  void *map_ = nullptr;
  size_t mapSize_ = 0;
  const uint8_t *dataStart_ = nullptr;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A tensor to write: `data` holds numel * dtypeSize(dtype) bytes.
struct TensorRef {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void *data;
};

// Writes atomically: the data goes to a temporary file beside `path`, which
// replaces `path` only once it is complete, so a failure never destroys an
// existing file.
void write(const std::string &path, const std::vector<TensorRef> &tensors,
           const std::map<std::string, std::string> &metadata = {});

// The same in pieces, for files larger than the memory one wants to spend:
// the header from the tensors' names, dtypes and shapes (`data` unused),
// then the tensors' bytes in order through append() in any chunks, then
// finish() (fsync, rename). Destroyed unfinished, it removes the temporary.
class StreamWriter {
 public:
  StreamWriter(const std::string &path, const std::vector<TensorRef> &tensors,
               const std::map<std::string, std::string> &metadata = {});
  ~StreamWriter();
  StreamWriter(const StreamWriter &) = delete;
  StreamWriter &operator=(const StreamWriter &) = delete;
  void append(const void *bytes, size_t n);
  void finish();

 private:
  std::string path_, tmp_;
  FILE *out_ = nullptr;
  uint64_t expected_ = 0, written_ = 0;
};

}  // namespace tlc::safetensors
