// Reading checkpoints (checkpoint.h): state.json, the layout check, the
// weights (model.safetensors or sharded range files) and the moments, all
// in chunks read with pread.
#include "runtime/train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include "formats/safetensors.h"
#include "runtime/comm/sharding.h"
#include "runtime/train/checkpoint_ref.h"

namespace tlc::train {
namespace {

[[noreturn]] void fail(const std::string &path, const std::string &what) { throw CheckpointError(path + ": " + what); }

std::string rangeText(int64_t begin, int64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + ")";
}

// Reads elements [first, first + n) of tensor `t` of `f` with pread into `out`.
void readElements(const safetensors::File &f, const safetensors::TensorInfo &t, int64_t first, int64_t n, float *out) {
  int fd = ::open(f.path().c_str(), O_RDONLY);
  if (fd < 0) fail(f.path(), std::string("cannot read: ") + std::strerror(errno));
  char *dst = reinterpret_cast<char *>(out);
  size_t want = static_cast<size_t>(n) * 4, done = 0;
  off_t at = static_cast<off_t>(f.fileOffset(t) + static_cast<uint64_t>(first) * 4);
  while (done < want) {
    ssize_t got = ::pread(fd, dst + done, want - done, at + static_cast<off_t>(done));
    if (got <= 0) {
      int err = errno;
      ::close(fd);
      fail(f.path(), got == 0 ? std::string("ends early: truncated") : std::string("read error: ") + std::strerror(err));
    }
    done += static_cast<size_t>(got);
  }
  ::close(fd);
}

std::vector<Range> rangesOf(const std::vector<RangePart> &parts) {
  std::vector<Range> saved;
  for (const RangePart &p : parts) saved.push_back({p.begin, p.end});
  return saved;
}

// The range files state.json lists under `key`, in flat order: they must
// tile [0, flatElements) and be listed under "files" (so that their
// checksums are checked). `what` names them in messages.
std::vector<RangePart> rangeParts(const CheckpointManifest &m, const char *key, const std::string &what, const Layout &l) {
  std::string statePath = m.dir + "/state.json";
  std::vector<RangePart> parts;
  for (const auto &part : m.state.at(key))
    parts.push_back({part.at("file").get<std::string>(), part.at("begin").get<int64_t>(), part.at("end").get<int64_t>()});
  std::sort(parts.begin(), parts.end(), [](const RangePart &x, const RangePart &y) { return x.begin < y.begin; });
  int64_t covered = 0;
  for (const RangePart &p : parts) {
    if (p.begin < 0 || p.end > l.flatElements || p.begin > p.end) fail(m.dir + "/" + p.file, "range outside the flat buffers");
    if (std::none_of(m.files.begin(), m.files.end(), [&](const CheckpointFile &f) { return f.name == p.file; }))
      fail(statePath, "lists no " + p.file + " under 'files'");
    covered += p.end - p.begin;
  }
  if (covered != l.flatElements)
    fail(statePath, "the " + what + " ranges cover " + std::to_string(covered) + " of " + std::to_string(l.flatElements) +
                        " elements");
  try {
    shard::reshard(rangesOf(parts), l.flatElements, {0, l.flatElements});
  } catch (const shard::ShardError &e) {
    fail(statePath, "the " + what + " ranges overlap or leave a gap: " + e.what());
  }
  return parts;
}

// Headers only: each range file holds f32 tensors `names` over its range.
void checkRangeFiles(const std::string &dir, const std::vector<RangePart> &parts, const std::vector<const char *> &names) {
  for (const RangePart &p : parts) {
    safetensors::File f = safetensors::File::open(dir + "/" + p.file);
    for (const char *name : names) {
      const safetensors::TensorInfo &info = f.get(name);
      if (info.dtype != safetensors::DType::F32 || info.numel() != p.end - p.begin)
        fail(f.path(), std::string("'") + name + "' does not hold f32 elements " + rangeText(p.begin, p.end));
    }
  }
}

// What every reader takes from a manifest: the state, the checkpoint's own
// layout and its weights' form, the weight files' headers checked.
Snapshot parseCheckpoint(const CheckpointManifest &m) {
  std::string statePath = m.dir + "/state.json";
  const nlohmann::json &state = m.state;
  Snapshot snap;
  try {
    snap.layout = Layout::fromJson(state.at("layout"));
    for (const TensorSlot &t : snap.layout.tensors) {
      int64_t numel = 1;
      for (int64_t d : t.shape) numel *= d;
      if (t.offset < 0 || t.numel != numel || t.offset + t.numel > snap.layout.flatElements)
        fail(statePath, "malformed layout: tensor '" + t.name + "' of shape " + shapeText(t.shape) + " at " +
                            rangeText(t.offset, t.offset + t.numel) + " of " +
                            std::to_string(snap.layout.flatElements) + " elements");
    }
    TrainerState &s = snap.state;
    s.step = state.at("step").get<int64_t>();
    s.adamStep = state.at("adam_step").get<int64_t>();
    s.skippedSteps = state.at("skipped_steps").get<int64_t>();
    s.nonfiniteInARow = state.at("nonfinite_in_a_row").get<int64_t>();
    s.data = {state.at("data").at("epoch").get<int64_t>(), state.at("data").at("micro_batch").get<int64_t>()};
    s.config = state.at("config");
    if (state.contains("loss") && state["loss"].is_number()) s.loss = state["loss"].get<double>();
    if (state.contains("weights")) snap.weightParts = rangeParts(m, "weights", "weight", snap.layout);
  } catch (const nlohmann::json::exception &e) {
    fail(statePath, std::string("malformed: ") + e.what());
  }
  try {
    // Headers only here: the data is read in chunks (readMasterChunks).
    if (!snap.weightParts.empty()) {
      checkRangeFiles(m.dir, snap.weightParts, {"master"});
      return snap;
    }
    safetensors::File model = safetensors::File::open(m.dir + "/model.safetensors");
    for (const TensorSlot &t : snap.layout.tensors) {
      const safetensors::TensorInfo &info = model.get(t.name);
      if (info.dtype != safetensors::DType::F32 || info.numel() != t.numel)
        fail(model.path(), "tensor '" + t.name + "' is not f32 of " + std::to_string(t.numel) + " elements");
    }
  } catch (const safetensors::Error &e) {
    throw CheckpointError(e.what());
  }
  return snap;
}

// Why a checkpoint's layout is not the artifact's, for the message.
std::string layoutDifference(const Layout &saved, const Layout &expected) {
  if (saved.tensors.size() != expected.tensors.size())
    return std::to_string(saved.tensors.size()) + " parameter tensors, the model has " +
           std::to_string(expected.tensors.size());
  if (saved.batch != expected.batch || saved.seq != expected.seq)
    return "micro-batch " + std::to_string(saved.batch) + "x" + std::to_string(saved.seq) + ", the model's is " +
           std::to_string(expected.batch) + "x" + std::to_string(expected.seq);
  for (size_t i = 0; i < expected.tensors.size(); ++i)
    if (saved.tensors[i].name != expected.tensors[i].name)
      return "tensor '" + saved.tensors[i].name + "' where the model has '" + expected.tensors[i].name + "'";
    else if (saved.tensors[i].shape != expected.tensors[i].shape)
      return "'" + expected.tensors[i].name + "' of shape " + shapeText(saved.tensors[i].shape) + ", the model's is " +
             shapeText(expected.tensors[i].shape);
  return "a different model layout";
}

// The files master weights come from during one walk, each opened (its
// header parsed) at its first use.
class MasterSource {
 public:
  MasterSource(const std::string &dir, const Snapshot &s) : dir_(dir), s_(s), saved_(rangesOf(s.weightParts)) {
    files_.resize(std::max<size_t>(1, s.weightParts.size()));
  }

  // Tensor t's elements [from, to) (counted within t), `chunk` at a time.
  void read(const TensorSlot &t, const FlatVisit &visit, int64_t chunk, int64_t from, int64_t to) {
    try {
      for (int64_t b = from; b < to; b += chunk) {
        int64_t n = std::min(chunk, to - b);
        buf_.resize(static_cast<size_t>(n));
        if (s_.weightParts.empty()) {
          const safetensors::File &model = file(0);
          readElements(model, model.get(t.name), b, n, buf_.data());
        } else {
          for (const shard::Read &r : shard::reshard(saved_, s_.layout.flatElements, {t.offset + b, t.offset + b + n})) {
            const safetensors::File &f = file(static_cast<size_t>(r.file));
            readElements(f, f.get("master"), r.fileElement, r.count, buf_.data() + r.destElement);
          }
        }
        visit(t.offset + b, t.offset + b + n, buf_.data());
      }
    } catch (const safetensors::Error &e) {
      throw CheckpointError(e.what());
    } catch (const shard::ShardError &e) {
      throw CheckpointError(dir_ + "/state.json: the weight ranges overlap or leave a gap: " + e.what());
    }
  }

 private:
  const safetensors::File &file(size_t i) {
    if (!files_[i])
      files_[i].emplace(safetensors::File::open(dir_ + "/" +
                                                (s_.weightParts.empty() ? "model.safetensors" : s_.weightParts[i].file)));
    return *files_[i];
  }

  std::string dir_;
  const Snapshot &s_;
  std::vector<Range> saved_;
  std::vector<std::optional<safetensors::File>> files_;  // model.safetensors, or the range files
  std::vector<float> buf_;
};

}  // namespace

std::string shapeText(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

nlohmann::json readCheckpointConfig(const std::string &dir) {
  std::string statePath = dir + "/state.json";
  std::ifstream f(statePath, std::ios::binary);
  if (!f) fail(statePath, "cannot read");
  std::stringstream text;
  text << f.rdbuf();
  try {
    return nlohmann::json::parse(text.str()).at("config");
  } catch (const nlohmann::json::exception &e) {
    fail(statePath, std::string("corrupt (not valid JSON or no config): ") + e.what());
  }
}

void readMasterTensor(const std::string &dir, const Snapshot &s, const TensorSlot &t, const FlatVisit &visit,
                      int64_t chunk) {
  MasterSource(dir, s).read(t, visit, chunk, 0, t.numel);
}

void readMasterChunks(const std::string &dir, const Snapshot &s, Range want, const FlatVisit &visit,
                      int64_t chunk) {
  MasterSource source(dir, s);
  for (const TensorSlot &t : s.layout.tensors) {
    int64_t from = std::max<int64_t>(0, want.begin - t.offset), to = std::min(t.numel, want.end - t.offset);
    if (from < to) source.read(t, visit, chunk, from, to);
  }
}

void readMomentChunks(const std::string &dir, const Snapshot &s, int64_t wantBegin, int64_t wantEnd, const FlatVisit &m,
                      const FlatVisit &v, int64_t chunk) {
  try {
    std::vector<shard::Read> reads = shard::reshard(rangesOf(s.parts), s.layout.flatElements, {wantBegin, wantEnd});
    std::vector<float> buf;
    for (const shard::Read &r : reads) {
      const OptimizerPart &p = s.parts[static_cast<size_t>(r.file)];
      safetensors::File f = safetensors::File::open(dir + "/" + p.file);
      for (auto [name, visit] : {std::pair{"exp_avg", &m}, std::pair{"exp_avg_sq", &v}})
        for (int64_t k = 0; k < r.count; k += chunk) {
          int64_t n = std::min(chunk, r.count - k);
          buf.resize(static_cast<size_t>(n));
          readElements(f, f.get(name), r.fileElement + k, n, buf.data());
          int64_t flat = wantBegin + r.destElement + k;
          (*visit)(flat, flat + n, buf.data());
        }
    }
  } catch (const safetensors::Error &e) {
    throw CheckpointError(e.what());
  } catch (const shard::ShardError &e) {
    throw CheckpointError(dir + "/state.json: the optimizer ranges overlap or leave a gap: " + e.what());
  }
}

Snapshot readCheckpointWeights(const std::string &dir) {
  CheckpointManifest m = readCheckpointManifest(dir);
  // Presence and sizes of what is read (the checksums: verifyCheckpointWeights).
  for (const std::string &name : checkpointWeightFiles(m))
    for (const CheckpointFile &f : m.files)
      if (f.name == name)
        if (std::string problem = checkCheckpointFile(dir, f, false); !problem.empty()) fail(dir + "/" + name, problem);
  return parseCheckpoint(m);
}

Snapshot readCheckpoint(const std::string &dir, const Layout &expected, int64_t wantBegin, int64_t wantEnd, bool verify,
                        bool withData) {
  std::string statePath = dir + "/state.json";
  CheckpointManifest manifest = readCheckpointManifest(dir);
  for (const CheckpointFile &f : manifest.files) {
    // Without `verify`, presence and size only (another rank checks the sums).
    std::string problem = checkCheckpointFile(dir, f, verify);
    if (!problem.empty()) fail(dir + "/" + f.name, problem);
  }
  Snapshot snap = parseCheckpoint(manifest);
  const Layout &l = snap.layout;
  if (l.identity() != expected.identity())
    fail(statePath, "incompatible with this artifact: the checkpoint was written for " + layoutDifference(l, expected));
  if (wantEnd < 0) wantBegin = 0, wantEnd = l.flatElements;
  if (wantBegin < 0 || wantEnd > l.flatElements || wantBegin > wantEnd)
    fail(statePath, "range " + rangeText(wantBegin, wantEnd) + " outside the flat buffers");
  snap.rangeBegin = wantBegin;
  try {
    snap.parts = rangeParts(manifest, "optimizer", "optimizer", l);
    checkRangeFiles(dir, snap.parts, {"exp_avg", "exp_avg_sq"});
  } catch (const safetensors::Error &e) {
    throw CheckpointError(e.what());
  } catch (const nlohmann::json::exception &e) {
    fail(statePath, std::string("malformed: ") + e.what());
  }
  if (!withData) return snap;
  snap.master.assign(static_cast<size_t>(l.flatElements), 0.0f);
  readMasterChunks(dir, snap, {0, l.flatElements}, [&](int64_t b, int64_t e, const float *v) {
    std::memcpy(snap.master.data() + b, v, static_cast<size_t>(e - b) * 4);
  });
  snap.m.assign(static_cast<size_t>(wantEnd - wantBegin), 0.0f);
  snap.v.assign(static_cast<size_t>(wantEnd - wantBegin), 0.0f);
  auto into = [&](std::vector<float> &dst) {
    return [&dst, wantBegin](int64_t b, int64_t e, const float *v) {
      std::memcpy(dst.data() + (b - wantBegin), v, static_cast<size_t>(e - b) * 4);
    };
  };
  readMomentChunks(dir, snap, wantBegin, wantEnd, into(snap.m), into(snap.v));
  return snap;
}

}  // namespace tlc::train
