// Checks on the files a command is given, shared by `tlc eval` and `tlrun
// eval` (and by the trainer): what a file is (by content, not by name),
// whether an output path can be written, and whether weights and token data
// fit the model. Every check runs before any work and throws Error with a
// message naming the file: "given X, expected Y". No MLIR here.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace tlc::safetensors {
class File;
}

namespace tlc::inputs {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class FileKind {
  Missing,      // no such path (or unreadable)
  Directory,
  Empty,        // a zero-byte file
  Artifact,     // a .tlx ("TLX\x01")
  TokenShard,   // llm.c's token shard (int32 magic 20240520)
  Safetensors,  // u64 header length, then '{'
  Text,         // no NUL byte in the first 4 KiB: MLIR, JSON, TOML...
  Binary,       // anything else
};

// What `path` holds, judged by its first bytes.
FileKind detect(const std::string &path);
// "a directory", "a .tlx artifact", "an llm.c token shard", ...
std::string describe(FileKind kind);

// Throws Error "<option> <path>: given <kind>, expected <what>" unless
// `path` is of kind `expected` (Text for MLIR; "-", stdin, passes as Text).
// A missing file is reported with the system's reason.
void expectKind(const std::string &path, FileKind expected, const std::string &option);

// Throws Error unless `path` can be created or replaced: it is not a
// directory, an existing file is writable, and its directory exists and is
// writable (outputs are written to a temporary file there, then renamed):
// a probe file is created there and removed, since access() says yes to
// root on /proc or a read-only mount. "-" (stdout) and writable devices or
// pipes pass. Leaves nothing behind.
void expectWritable(const std::string &path, const std::string &option);
// The same for a directory that will be created (or filled) at `path`.
void expectWritableDirectory(const std::string &path, const std::string &option);

// True when `a` and `b` name the same existing file (by device and inode:
// through links too); "-" is never the same file.
bool sameFile(const std::string &a, const std::string &b);

// One parameter the model expects: its name, shape and storage dtype
// ("f32", "bf16", "f16", "f64").
struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype;
};

// Every parameter must be in the file with its shape and a float dtype
// (F64, F32, F16 or BF16: they are converted); integer or bool tensors are
// refused. Throws Error naming the file, the tensor and what was expected.
void checkWeights(const safetensors::File &weights, const std::vector<ParamSpec> &params);

// Every token the first `microBatches` micro-batches of [batch, seq] read
// (inputs and targets: tokens[0 .. microBatches*batch*seq]) must be below
// `vocab`; throws Error naming the file, the position, the id and whether it
// is an input or only a target. `vocab` <= 0 skips the check.
void checkTokenIds(const std::string &path, const std::vector<uint16_t> &tokens,
                   size_t microBatches, int64_t batch, int64_t seq, int64_t vocab);

}  // namespace tlc::inputs
