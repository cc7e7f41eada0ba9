#include "formats/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "formats/half.h"

namespace tlc::safetensors {
namespace {

struct DTypeEntry {
  DType dtype;
  const char *name;
  size_t size;
};
constexpr DTypeEntry kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::I16, "I16", 2}, {DType::I8, "I8", 1},   {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
};

// The header is JSON of a few KB per hundred tensors; anything near this
// limit is corrupt, not large.
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

[[noreturn]] void fail(const std::string &path, const std::string &what) {
  throw Error(path + ": " + what);
}

template <typename T>
T load(const uint8_t *p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

const char *dtypeName(DType d) {
  for (const auto &e : kDTypes)
    if (e.dtype == d) return e.name;
  return "?";
}
size_t dtypeSize(DType d) {
  for (const auto &e : kDTypes)
    if (e.dtype == d) return e.size;
  return 0;
}
bool parseDType(const std::string &name, DType *out) {
  for (const auto &e : kDTypes)
    if (name == e.name) {
      *out = e.dtype;
      return true;
    }
  return false;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

File::File(File &&o) noexcept { *this = std::move(o); }
File &File::operator=(File &&o) noexcept {
  if (this != &o) {
    if (map_) munmap(map_, mapSize_);
    path_ = std::move(o.path_);
    map_ = o.map_;
    mapSize_ = o.mapSize_;
    dataStart_ = o.dataStart_;
    tensors_ = std::move(o.tensors_);
    metadata_ = std::move(o.metadata_);
    o.map_ = nullptr;
    o.mapSize_ = 0;
  }
  return *this;
}
File::~File() {
  if (map_) munmap(map_, mapSize_);
}

File File::open(const std::string &path) {
  File f;
  f.path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file");
  }
  size_t size = static_cast<size_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    fail(path, "too short to be safetensors (" + std::to_string(size) + " bytes)");
  }
  void *map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) fail(path, std::string("mmap failed: ") + std::strerror(errno));
  f.map_ = map;
  f.mapSize_ = size;
  const auto *bytes = static_cast<const uint8_t *>(map);

  uint64_t headerLen = load<uint64_t>(bytes);
  if (headerLen > kMaxHeaderBytes || headerLen > size - 8)
    fail(path, "header length " + std::to_string(headerLen) + " exceeds the file size " +
                   std::to_string(size));
  f.dataStart_ = bytes + 8 + headerLen;
  uint64_t dataSize = size - 8 - headerLen;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes + 8, bytes + 8 + headerLen);
  } catch (const nlohmann::json::exception &e) {
    fail(path, std::string("malformed JSON header: ") + e.what());
  }
  if (!header.is_object()) fail(path, "header is not a JSON object");

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string &name = it.key();
    const nlohmann::json &v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(path, "__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) fail(path, "__metadata__ value '" + m.key() + "' is not a string");
        f.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "': ";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") ||
        !v.contains("data_offsets"))
      fail(path, where + "needs dtype, shape and data_offsets");
    TensorInfo t;
    t.name = name;
    if (!v["dtype"].is_string() || !parseDType(v["dtype"].get<std::string>(), &t.dtype))
      fail(path, where + "unsupported dtype " + v["dtype"].dump());
    if (!v["shape"].is_array()) fail(path, where + "shape is not an array");
    for (const auto &d : v["shape"]) {
      if (!d.is_number_unsigned()) fail(path, where + "shape entry " + d.dump() + " is not a size");
      t.shape.push_back(d.get<int64_t>());
    }
    const auto &off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned())
      fail(path, where + "data_offsets must be two unsigned integers");
    t.begin = off[0].get<uint64_t>();
    t.end = off[1].get<uint64_t>();
    if (t.begin > t.end || t.end > dataSize)
      fail(path, where + "data_offsets [" + std::to_string(t.begin) + ", " +
                     std::to_string(t.end) + ") lie outside the " + std::to_string(dataSize) +
                     "-byte data section");
    uint64_t expect = static_cast<uint64_t>(t.numel()) * dtypeSize(t.dtype);
    if (t.end - t.begin != expect)
      fail(path, where + "holds " + std::to_string(t.end - t.begin) + " bytes but its shape and dtype need " +
                     std::to_string(expect));
    f.tensors_.push_back(std::move(t));
  }
  // Tensors must not overlap.
  std::vector<const TensorInfo *> byOffset;
  for (const auto &t : f.tensors_) byOffset.push_back(&t);
  std::sort(byOffset.begin(), byOffset.end(),
            [](const TensorInfo *a, const TensorInfo *b) { return a->begin < b->begin; });
  for (size_t i = 1; i < byOffset.size(); ++i)
    if (byOffset[i]->begin < byOffset[i - 1]->end && byOffset[i]->begin != byOffset[i]->end)
      fail(path, "tensors '" + byOffset[i - 1]->name + "' and '" + byOffset[i]->name + "' overlap");
  return f;
}

const TensorInfo *File::find(const std::string &name) const {
  for (const auto &t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

const TensorInfo &File::get(const std::string &name) const {
  if (const TensorInfo *t = find(name)) return *t;
  fail(path_, "no tensor named '" + name + "'");
}

std::vector<double> File::toDoubles(const TensorInfo &t) const {
  std::vector<double> out(static_cast<size_t>(t.numel()));
  const uint8_t *p = data(t);
  size_t es = dtypeSize(t.dtype);
  for (size_t i = 0; i < out.size(); ++i, p += es) {
    switch (t.dtype) {
      case DType::F64: out[i] = load<double>(p); break;
      case DType::F32: out[i] = load<float>(p); break;
      case DType::F16: out[i] = f16ToFloat(load<uint16_t>(p)); break;
      case DType::BF16: out[i] = bf16ToFloat(load<uint16_t>(p)); break;
      case DType::I64: out[i] = static_cast<double>(load<int64_t>(p)); break;
      case DType::I32: out[i] = load<int32_t>(p); break;
      case DType::I16: out[i] = load<int16_t>(p); break;
      case DType::I8: out[i] = load<int8_t>(p); break;
      case DType::U8: out[i] = load<uint8_t>(p); break;
      case DType::BOOL: out[i] = load<uint8_t>(p) != 0; break;
    }
  }
  return out;
}

StreamWriter::StreamWriter(const std::string &path, const std::vector<TensorRef> &tensors,
                           const std::map<std::string, std::string> &metadata)
    : path_(path), tmp_(path + ".tmp." + std::to_string(getpid())) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  for (const auto &t : tensors) {
    if (t.name.empty() || t.name == "__metadata__") fail(path, "invalid tensor name '" + t.name + "'");
    if (header.contains(t.name)) fail(path, "duplicate tensor name '" + t.name + "'");
    int64_t n = 1;
    for (int64_t d : t.shape) {
      if (d < 0) fail(path, "tensor '" + t.name + "' has a negative dimension");
      n *= d;
    }
    uint64_t bytes = static_cast<uint64_t>(n) * dtypeSize(t.dtype);
    header[t.name] = {{"dtype", dtypeName(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {expected_, expected_ + bytes}}};
    expected_ += bytes;
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // keep the data 8-byte aligned
  out_ = std::fopen(tmp_.c_str(), "wb");
  if (!out_) fail(path, std::string("cannot write: ") + std::strerror(errno));  // the user's path, not tmp
  uint64_t len = json.size();
  if (std::fwrite(&len, 8, 1, out_) != 1 || std::fwrite(json.data(), 1, json.size(), out_) != json.size()) {
    std::string why = std::strerror(errno);
    std::fclose(out_);
    out_ = nullptr;
    std::remove(tmp_.c_str());
    fail(path, "write failed: " + why);
  }
}

StreamWriter::~StreamWriter() {
  if (!out_) return;
  std::fclose(out_);
  std::remove(tmp_.c_str());
}

void StreamWriter::append(const void *bytes, size_t n) {
  if (!out_) fail(path_, "internal: append after finish");
  if (written_ + n > expected_) fail(path_, "internal: more data than the header's tensors");
  if (n && std::fwrite(bytes, 1, n, out_) != n) fail(path_, std::string("write failed: ") + std::strerror(errno));
  written_ += n;
}

void StreamWriter::finish() {
  if (!out_) fail(path_, "internal: finish twice");
  if (written_ != expected_)
    fail(path_, "internal: " + std::to_string(written_) + " of " + std::to_string(expected_) + " data bytes written");
  bool ok = std::fflush(out_) == 0 && fsync(fileno(out_)) == 0;
  ok &= std::fclose(out_) == 0;
  out_ = nullptr;
  if (!ok || std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    std::string why = std::strerror(errno);
    std::remove(tmp_.c_str());
    fail(path_, "write failed: " + why);
  }
}

void write(const std::string &path, const std::vector<TensorRef> &tensors,
           const std::map<std::string, std::string> &metadata) {
  StreamWriter w(path, tensors, metadata);
  for (const auto &t : tensors) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    w.append(t.data, static_cast<size_t>(n) * dtypeSize(t.dtype));
  }
  w.finish();
}

}  // namespace tlc::safetensors
