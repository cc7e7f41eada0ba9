#include "cli/inputs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "formats/safetensors.h"
#include "formats/tokens.h"

namespace tlc::inputs {
namespace {

std::string shapeString(const std::vector<int64_t> &s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::string label(const std::string &option, const std::string &path) {
  return option.empty() ? path : option + " " + path;
}

std::string parentDirectory(const std::string &path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// 0 when a file can be created in directory `dir` (a probe, created and
// removed), else the errno: access(W_OK) alone passes for root on /proc or
// a read-only mount.
int probeCreate(const std::string &dir) {
  if (::access(dir.c_str(), W_OK | X_OK) != 0) return errno;
  std::string probe = dir + "/.tlc-probe-" + std::to_string(::getpid());
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return errno == EEXIST ? 0 : errno;
  ::close(fd);
  ::unlink(probe.c_str());
  return 0;
}

}  // namespace

FileKind detect(const std::string &path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return FileKind::Missing;
  if (S_ISDIR(st.st_mode)) return FileKind::Directory;
  std::unique_ptr<FILE, int (*)(FILE *)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f) return FileKind::Missing;
  unsigned char head[4096];
  size_t n = std::fread(head, 1, sizeof head, f.get());
  if (n == 0) return FileKind::Empty;
  if (n >= 4 && std::memcmp(head, "TLX\x01", 4) == 0) return FileKind::Artifact;
  int32_t magic = 0;
  if (n >= 4) std::memcpy(&magic, head, 4);
  if (magic == tokens::kShardMagic) return FileKind::TokenShard;
  uint64_t headerBytes = 0;
  if (n >= 9) std::memcpy(&headerBytes, head, 8);
  if (n >= 9 && head[8] == '{' && headerBytes >= 2 &&
      headerBytes <= static_cast<uint64_t>(st.st_size) - 8)
    return FileKind::Safetensors;
  if (std::memchr(head, 0, n) == nullptr) return FileKind::Text;
  return FileKind::Binary;
}

std::string describe(FileKind kind) {
  switch (kind) {
    case FileKind::Missing: return "a missing file";
    case FileKind::Directory: return "a directory";
    case FileKind::Empty: return "an empty file";
    case FileKind::Artifact: return "a .tlx artifact";
    case FileKind::TokenShard: return "an llm.c token shard";
    case FileKind::Safetensors: return "a safetensors file";
    case FileKind::Text: return "a text file";
    case FileKind::Binary: return "a binary file of unknown format";
  }
  return "?";
}

void expectKind(const std::string &path, FileKind expected, const std::string &option) {
  if (path == "-" && expected == FileKind::Text) return;
  FileKind kind = detect(path);
  if (kind == expected) return;
  if (kind == FileKind::Missing) {
    struct stat st;
    int err = ::stat(path.c_str(), &st) != 0 ? errno : EACCES;
    throw Error(label(option, path) + ": cannot open: " + std::strerror(err));
  }
  std::string want = expected == FileKind::Text ? "MLIR text (a .mlir file from tlc emit)"
                     : expected == FileKind::Artifact ? "a .tlx artifact (from tlc compile)"
                                                      : describe(expected);
  std::string hint;
  if (expected == FileKind::Artifact && kind == FileKind::Text)
    hint = "; compile the model first: tlc compile FILE.mlir -o FILE.tlx";
  if (expected == FileKind::Text && kind == FileKind::Artifact)
    hint = "; give the .mlir it was compiled from, or run it with tlrun";
  throw Error(label(option, path) + ": given " + describe(kind) + ", expected " + want + hint);
}

void expectWritable(const std::string &path, const std::string &option) {
  if (path == "-") return;
  if (path.empty()) throw Error(option + ": empty output path");
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode))
      throw Error(label(option, path) + ": given a directory, expected a file path to write");
    if (::access(path.c_str(), W_OK) != 0)
      throw Error(label(option, path) + ": cannot write: " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) return;  // /dev/null, a pipe: written in place
  }
  // Files are written beside their final path, then renamed over it.
  std::string dir = parentDirectory(path);
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw Error(label(option, path) + ": directory " + dir + " does not exist");
  if (int err = probeCreate(dir))
    throw Error(label(option, path) + ": cannot write in " + dir + ": " + std::strerror(err));
}

void expectWritableDirectory(const std::string &path, const std::string &option) {
  if (path.empty()) throw Error(option + ": empty directory path");
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode))
      throw Error(label(option, path) + ": given " + describe(detect(path)) +
                  ", expected a directory");
    if (int err = probeCreate(path))
      throw Error(label(option, path) + ": cannot write: " + std::strerror(err));
    return;
  }
  // Will be created (with its missing parents): the nearest existing
  // ancestor must be a writable directory.
  std::string dir = path;
  while (::stat(dir.c_str(), &st) != 0) {
    std::string up = parentDirectory(dir);
    if (up == dir) break;
    dir = up;
  }
  if (!S_ISDIR(st.st_mode))
    throw Error(label(option, path) + ": " + dir + " is not a directory");
  if (int err = probeCreate(dir))
    throw Error(label(option, path) + ": cannot create it in " + dir + ": " + std::strerror(err));
}

bool sameFile(const std::string &a, const std::string &b) {
  if (a == "-" || b == "-") return false;
  struct stat sa, sb;
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

void checkWeights(const safetensors::File &weights, const std::vector<ParamSpec> &params) {
  for (const ParamSpec &p : params) {
    const safetensors::TensorInfo &t = weights.get(p.name);  // names the missing tensor
    if (t.shape != p.shape)
      throw Error(weights.path() + ": tensor '" + p.name + "' has shape " + shapeString(t.shape) +
                  " but the model needs " + shapeString(p.shape));
    bool isFloat = t.dtype == safetensors::DType::F64 || t.dtype == safetensors::DType::F32 ||
                   t.dtype == safetensors::DType::F16 || t.dtype == safetensors::DType::BF16;
    if (!isFloat)
      throw Error(weights.path() + ": tensor '" + p.name + "' has dtype " +
                  safetensors::dtypeName(t.dtype) + ", expected a float dtype (F64, F32, F16 or "
                  "BF16) for the model's " + p.dtype + " parameter");
  }
}

void checkTokenIds(const std::string &path, const std::vector<uint16_t> &tokens,
                   size_t microBatches, int64_t batch, int64_t seq, int64_t vocab) {
  if (vocab <= 0 || microBatches == 0) return;
  size_t span = static_cast<size_t>(batch) * static_cast<size_t>(seq);
  size_t last = microBatches * span;  // the final target
  for (size_t i = 0; i <= last && i < tokens.size(); ++i) {
    if (tokens[i] < vocab) continue;
    size_t mb = i / span;
    std::string k = std::to_string(mb), previous = std::to_string(mb == 0 ? 0 : mb - 1);
    std::string role = i == 0               ? "an input of micro-batch 0"
                       : i == last          ? "the last target, of micro-batch " + previous
                       : i % span == 0      ? "an input of micro-batch " + k +
                                             " and a target of micro-batch " + previous
                                            : "an input and a target of micro-batch " + k;
    throw Error(path + ": token id " + std::to_string(tokens[i]) + " at position " +
                std::to_string(i) + " is outside the model's vocabulary of " +
                std::to_string(vocab) + " (used as " + role + ")");
  }
}

}  // namespace tlc::inputs
