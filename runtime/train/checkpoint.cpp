#include "runtime/train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "runtime/comm/sharding.h"
#include "runtime/train/checkpoint_ref.h"
#include "formats/safetensors.h"

namespace fs = std::filesystem;

namespace tlc::train {
namespace {

[[noreturn]] void fail(const std::string &path, const std::string &what) { throw CheckpointError(path + ": " + what); }

void fsyncPath(const std::string &path, bool directory) {
  int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) fail(path, std::string("cannot open to sync: ") + std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) fail(path, std::string("fsync failed: ") + std::strerror(err));
}

std::string hex(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// Size and checksum of a file as it is on disk.
std::pair<uint64_t, std::string> fileChecksum(const std::string &path) {
  uint64_t bytes = 0;
  uint64_t h = fileFnv1a64(path, &bytes);
  return {bytes, hex(h)};
}

// Writes `text` to `path` through a temporary file in the same directory,
// fsync'd, then renamed; the directory is fsync'd too.
void writeFileAtomic(const std::string &path, const std::string &text) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  FILE *f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(path, "cannot create " + tmp + ": " + std::strerror(errno));
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok &= std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
  int err = errno;
  ok &= std::fclose(f) == 0;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    if (ok) err = errno;
    std::remove(tmp.c_str());
    fail(path, std::string("write failed: ") + std::strerror(err));
  }
  fsyncPath(fs::path(path).parent_path().string(), true);
}

std::string shapeText(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool isStepName(const std::string &name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string readText(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, "cannot read");
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// ISO 8601, UTC, to the second.
std::string utcNow() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void prune(const std::string &checkpoints, int64_t current, int64_t keep) {
  if (keep <= 0) return;
  std::vector<int64_t> older;
  for (const auto &e : fs::directory_iterator(checkpoints)) {
    std::string name = e.path().filename().string();
    if (e.is_directory() && isStepName(name) && std::stoll(name) < current) older.push_back(std::stoll(name));
  }
  std::sort(older.rbegin(), older.rend());
  std::error_code ec;  // pruning is best effort: the new checkpoint is complete
  for (size_t i = static_cast<size_t>(keep - 1); i < older.size(); ++i)
    fs::remove_all(checkpoints + "/" + std::to_string(older[i]), ec);
}

}  // namespace

uint64_t fileFnv1a64(const std::string &path, uint64_t *bytes) {
  std::unique_ptr<FILE, int (*)(FILE *)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f) fail(path, std::string("cannot read: ") + std::strerror(errno));
  std::vector<char> buf(1 << 20);
  uint64_t h = kFnv1a64Basis, total = 0;
  while (size_t n = std::fread(buf.data(), 1, buf.size(), f.get())) {
    h = fnv1a64(buf.data(), n, h);
    total += n;
  }
  if (std::ferror(f.get())) fail(path, "read error");
  if (bytes) *bytes = total;
  return h;
}

nlohmann::json Layout::toJson() const {
  nlohmann::json tensors = nlohmann::json::array();
  for (const TensorSlot &t : this->tensors)
    tensors.push_back({{"name", t.name}, {"shape", t.shape}, {"offset", t.offset}, {"numel", t.numel}});
  return {{"tensors", tensors}, {"flat_elements", flatElements}, {"micro_batch", batch}, {"seq", seq}};
}

Layout Layout::fromJson(const nlohmann::json &j) {
  Layout l;
  for (const auto &t : j.at("tensors"))
    l.tensors.push_back({t.at("name").get<std::string>(), t.at("shape").get<std::vector<int64_t>>(),
                         t.at("offset").get<int64_t>(), t.at("numel").get<int64_t>()});
  l.flatElements = j.at("flat_elements").get<int64_t>();
  l.batch = j.at("micro_batch").get<int64_t>();
  l.seq = j.at("seq").get<int64_t>();
  return l;
}

std::string Layout::identity() const {
  std::string canonical = toJson().dump();
  return hex(fnv1a64(canonical.data(), canonical.size()));
}

void removeStaleTemporaries(const std::string &runDir) {
  std::string checkpoints = runDir + "/checkpoints";
  std::error_code ec;
  if (!fs::is_directory(checkpoints, ec)) return;
  for (const auto &e : fs::directory_iterator(checkpoints, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind(".tmp-", 0) == 0 || name.rfind(".trash-", 0) == 0 || name.rfind("latest.tmp.", 0) == 0)
      fs::remove_all(e.path(), ec);
  }
}

std::string checkpointTempDir(const std::string &runDir, int64_t step, long tag) {
  return runDir + "/checkpoints/.tmp-" + std::to_string(step) + "-" + std::to_string(tag);
}

void createCheckpointTemp(const std::string &tmp) {
  std::string checkpoints = fs::path(tmp).parent_path().string();
  std::error_code ec;
  fs::create_directories(checkpoints, ec);
  if (ec) fail(checkpoints, "cannot create: " + ec.message());
  fs::remove_all(tmp, ec);
  if (!fs::create_directory(tmp, ec)) fail(tmp, "cannot create: " + (ec ? ec.message() : "exists"));
}

void discardCheckpointTemp(const std::string &tmp) {
  std::error_code ec;
  fs::remove_all(tmp, ec);
}

void forEachModelChunk(const Layout &l, int64_t chunk, const std::function<void(int64_t, int64_t)> &visit) {
  for (const TensorSlot &t : l.tensors)
    for (int64_t b = t.offset; b < t.offset + t.numel; b += chunk) visit(b, std::min(t.offset + t.numel, b + chunk));
}

void writeModelFile(const std::string &tmp, const Layout &l, const FlatFill &fill, int64_t chunk) {
  std::vector<safetensors::TensorRef> weights;
  for (const TensorSlot &t : l.tensors) weights.push_back({t.name, safetensors::DType::F32, t.shape, nullptr});
  safetensors::StreamWriter w(tmp + "/model.safetensors", weights, {{"format", "pt"}});
  std::vector<float> buf;
  // After a write error the walk goes on without writing: `fill` may hold
  // collectives that every rank must complete. The error is thrown after.
  std::string error;
  forEachModelChunk(l, chunk, [&](int64_t b, int64_t e) {
    buf.resize(static_cast<size_t>(e - b));
    fill(b, e, buf.data());
    if (error.empty()) try {
        w.append(buf.data(), buf.size() * 4);
      } catch (const safetensors::Error &err) {
        error = err.what();
      }
  });
  if (!error.empty()) throw safetensors::Error(error);
  w.finish();
}

void writeModelFile(const std::string &tmp, const Layout &l, const float *master) {
  writeModelFile(tmp, l, [&](int64_t b, int64_t e, float *into) {
    std::memcpy(into, master + b, static_cast<size_t>(e - b) * 4);
  });
}

void writeOptimizerFile(const std::string &tmp, const OptimizerPart &part, const FlatFill &m, const FlatFill &v,
                        int64_t chunk) {
  int64_t n = part.end - part.begin;
  std::vector<safetensors::TensorRef> moments = {{"exp_avg", safetensors::DType::F32, {n}, nullptr},
                                                 {"exp_avg_sq", safetensors::DType::F32, {n}, nullptr}};
  safetensors::StreamWriter w(tmp + "/" + part.file, moments,
                              {{"range_begin", std::to_string(part.begin)}, {"range_end", std::to_string(part.end)}});
  std::vector<float> buf;
  for (const FlatFill *fill : {&m, &v})
    for (int64_t b = part.begin; b < part.end; b += chunk) {
      int64_t e = std::min(part.end, b + chunk);
      buf.resize(static_cast<size_t>(e - b));
      (*fill)(b, e, buf.data());
      w.append(buf.data(), buf.size() * 4);
    }
  w.finish();
}

void writeOptimizerFile(const std::string &tmp, const OptimizerPart &part, const float *m, const float *v) {
  auto from = [&](const float *base) {
    return [base, &part](int64_t b, int64_t e, float *into) {
      std::memcpy(into, base + (b - part.begin), static_cast<size_t>(e - b) * 4);
    };
  };
  writeOptimizerFile(tmp, part, from(m), from(v));
}

std::string publishCheckpoint(const std::string &runDir, const std::string &tmp, const TrainerState &s, const Layout &l,
                              const std::vector<OptimizerPart> &parts, int64_t keep) {
  std::string checkpoints = runDir + "/checkpoints";
  std::string step = std::to_string(s.step);
  std::string final = checkpoints + "/" + step;
  std::error_code ec;
  try {
    nlohmann::json files = nlohmann::json::object(), optimizer = nlohmann::json::array();
    std::vector<std::string> names = {"model.safetensors"};
    for (const OptimizerPart &p : parts) {
      names.push_back(p.file);
      optimizer.push_back({{"file", p.file}, {"begin", p.begin}, {"end", p.end}});
    }
    for (const std::string &name : names) {
      auto [bytes, sum] = fileChecksum(tmp + "/" + name);
      files[name] = {{"bytes", bytes}, {"fnv1a64", sum}};
    }
    nlohmann::json state = {
        {"format", "tlc-checkpoint"},
        {"version", kCheckpointFormatVersion},
        {"step", s.step},
        {"adam_step", s.adamStep},
        {"skipped_steps", s.skippedSteps},
        {"nonfinite_in_a_row", s.nonfiniteInARow},
        {"data", {{"epoch", s.data.epoch}, {"micro_batch", s.data.index}}},
        // The data order and fresh weights are pure functions of the seed
        // and the position: that is the whole RNG state.
        {"rng", {{"seed", s.config.value("seed", int64_t{0})}, {"epoch", s.data.epoch}}},
        {"config", s.config},
        {"loss", std::isfinite(s.loss) ? nlohmann::json(s.loss) : nlohmann::json()},
        {"saved_at", utcNow()},
        {"layout", l.toJson()},
        {"layout_identity", l.identity()},
        {"optimizer", optimizer},
        {"files", files}};
    std::string text = state.dump(2) + "\n";
    std::string statePath = tmp + "/state.json";
    FILE *f = std::fopen(statePath.c_str(), "wb");
    if (!f) fail(statePath, std::string("cannot create: ") + std::strerror(errno));
    bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    ok &= std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
    int err = errno;
    ok &= std::fclose(f) == 0;
    if (!ok) fail(statePath, std::string("write failed: ") + std::strerror(err));
    fsyncPath(tmp, true);

    // A checkpoint of this step from an abandoned trajectory is replaced.
    std::string trash = checkpoints + "/.trash-" + step + "-" + std::to_string(getpid());
    bool replaced = fs::exists(final);
    if (replaced && std::rename(final.c_str(), trash.c_str()) != 0)
      fail(final, std::string("cannot move the old checkpoint aside: ") + std::strerror(errno));
    if (std::rename(tmp.c_str(), final.c_str()) != 0) fail(final, std::string("cannot rename into place: ") + std::strerror(errno));
    fsyncPath(checkpoints, true);
    writeFileAtomic(checkpoints + "/latest", step + "\n");
    if (replaced) fs::remove_all(trash, ec);
  } catch (const std::exception &e) {
    fs::remove_all(tmp, ec);
    std::string what = e.what();
    throw CheckpointError("saving checkpoint " + final + " failed: " + what);
  }
  prune(checkpoints, s.step, keep);
  return final;
}

std::string writeCheckpoint(const std::string &runDir, const Snapshot &snap, int64_t keep) {
  std::string tmp = checkpointTempDir(runDir, snap.state.step, getpid());
  createCheckpointTemp(tmp);
  OptimizerPart part{"optimizer.safetensors", snap.rangeBegin, snap.rangeBegin + static_cast<int64_t>(snap.m.size())};
  try {
    writeModelFile(tmp, snap.layout, snap.master.data());
    writeOptimizerFile(tmp, part, snap.m.data(), snap.v.data());
  } catch (const std::exception &e) {
    discardCheckpointTemp(tmp);
    throw CheckpointError("saving checkpoint " + runDir + "/checkpoints/" + std::to_string(snap.state.step) +
                          " failed: " + e.what());
  }
  return publishCheckpoint(runDir, tmp, snap.state, snap.layout, {part}, keep);
}

nlohmann::json readCheckpointConfig(const std::string &dir) {
  std::string statePath = dir + "/state.json";
  try {
    nlohmann::json state = nlohmann::json::parse(readText(statePath));
    return state.at("config");
  } catch (const nlohmann::json::exception &e) {
    fail(statePath, std::string("corrupt (not valid JSON or no config): ") + e.what());
  }
}

namespace {

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

}  // namespace

void readMasterChunks(const std::string &dir, const Snapshot &s, const FlatVisit &visit, int64_t chunk) {
  try {
    safetensors::File model = safetensors::File::open(dir + "/model.safetensors");
    std::vector<float> buf;
    for (const TensorSlot &t : s.layout.tensors) {
      const safetensors::TensorInfo &info = model.get(t.name);
      for (int64_t b = 0; b < t.numel; b += chunk) {
        int64_t n = std::min(chunk, t.numel - b);
        buf.resize(static_cast<size_t>(n));
        readElements(model, info, b, n, buf.data());
        visit(t.offset + b, t.offset + b + n, buf.data());
      }
    }
  } catch (const safetensors::Error &e) {
    throw CheckpointError(e.what());
  }
}

void readMomentChunks(const std::string &dir, const Snapshot &s, int64_t wantBegin, int64_t wantEnd, const FlatVisit &m,
                      const FlatVisit &v, int64_t chunk) {
  std::vector<Range> saved;
  for (const OptimizerPart &p : s.parts) saved.push_back({p.begin, p.end});
  try {
    std::vector<shard::Read> reads = shard::reshard(saved, s.layout.flatElements, {wantBegin, wantEnd});
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

Snapshot readCheckpoint(const std::string &dir, const Layout &expected, int64_t wantBegin, int64_t wantEnd, bool verify,
                        bool withData) {
  std::string statePath = dir + "/state.json";
  CheckpointManifest manifest = readCheckpointManifest(dir);
  const nlohmann::json &state = manifest.state;
  Snapshot snap;
  try {
    for (const CheckpointFile &f : manifest.files) {
      // Without `verify`, presence and size only (another rank checks the sums).
      std::string problem = checkCheckpointFile(dir, f, verify);
      if (!problem.empty()) fail(dir + "/" + f.name, problem);
    }
    snap.layout = Layout::fromJson(state.at("layout"));
    if (snap.layout.identity() != expected.identity()) {
      std::string why = "a different model layout";
      if (snap.layout.tensors.size() != expected.tensors.size()) why = std::to_string(snap.layout.tensors.size()) +
          " parameter tensors, the model has " + std::to_string(expected.tensors.size());
      else if (snap.layout.batch != expected.batch || snap.layout.seq != expected.seq)
        why = "micro-batch " + std::to_string(snap.layout.batch) + "x" + std::to_string(snap.layout.seq) +
              ", the model's is " + std::to_string(expected.batch) + "x" + std::to_string(expected.seq);
      else
        for (size_t i = 0; i < expected.tensors.size(); ++i)
          if (snap.layout.tensors[i].name != expected.tensors[i].name) {
            why = "tensor '" + snap.layout.tensors[i].name + "' where the model has '" + expected.tensors[i].name + "'";
            break;
          } else if (snap.layout.tensors[i].shape != expected.tensors[i].shape) {
            why = "'" + expected.tensors[i].name + "' of shape " + shapeText(snap.layout.tensors[i].shape) +
                  ", the model's is " + shapeText(expected.tensors[i].shape);
            break;
          }
      fail(statePath, "incompatible with this artifact: the checkpoint was written for " + why);
    }
    TrainerState &s = snap.state;
    s.step = state.at("step").get<int64_t>();
    s.adamStep = state.at("adam_step").get<int64_t>();
    s.skippedSteps = state.at("skipped_steps").get<int64_t>();
    s.nonfiniteInARow = state.at("nonfinite_in_a_row").get<int64_t>();
    s.data = {state.at("data").at("epoch").get<int64_t>(), state.at("data").at("micro_batch").get<int64_t>()};
    s.config = state.at("config");
    if (state.contains("loss") && state["loss"].is_number()) s.loss = state["loss"].get<double>();
  } catch (const nlohmann::json::exception &e) {
    fail(statePath, std::string("malformed: ") + e.what());
  }

  const Layout &l = snap.layout;
  try {
    // Headers only here: the data is read in chunks below (or by the trainer).
    safetensors::File model = safetensors::File::open(dir + "/model.safetensors");
    for (const TensorSlot &t : l.tensors) {
      const safetensors::TensorInfo &info = model.get(t.name);
      if (info.dtype != safetensors::DType::F32 || info.numel() != t.numel)
        fail(model.path(), "tensor '" + t.name + "' is not f32 of " + std::to_string(t.numel) + " elements");
    }
    if (wantEnd < 0) wantBegin = 0, wantEnd = l.flatElements;
    if (wantBegin < 0 || wantEnd > l.flatElements || wantBegin > wantEnd)
      fail(statePath, "range [" + std::to_string(wantBegin) + ", " + std::to_string(wantEnd) + ") outside the flat buffers");
    snap.rangeBegin = wantBegin;
    // The range files in flat order; they must tile [0, flatElements).
    std::vector<OptimizerPart> &parts = snap.parts;
    for (const auto &part : state.at("optimizer"))
      parts.push_back({part.at("file").get<std::string>(), part.at("begin").get<int64_t>(), part.at("end").get<int64_t>()});
    std::sort(parts.begin(), parts.end(), [](const OptimizerPart &x, const OptimizerPart &y) { return x.begin < y.begin; });
    std::vector<Range> saved;
    int64_t covered = 0;
    for (const OptimizerPart &p : parts) {
      if (p.begin < 0 || p.end > l.flatElements || p.begin > p.end)
        fail(dir + "/" + p.file, "range outside the flat buffers");
      saved.push_back({p.begin, p.end});
      covered += p.end - p.begin;
    }
    if (covered != l.flatElements)
      fail(statePath, "the optimizer ranges cover " + std::to_string(covered) + " of " + std::to_string(l.flatElements) +
                          " elements");
    try {
      shard::reshard(saved, l.flatElements, {wantBegin, wantEnd});
    } catch (const shard::ShardError &e) {
      fail(statePath, std::string("the optimizer ranges overlap or leave a gap: ") + e.what());
    }
    for (const OptimizerPart &p : parts) {
      safetensors::File f = safetensors::File::open(dir + "/" + p.file);
      for (const char *name : {"exp_avg", "exp_avg_sq"}) {
        const safetensors::TensorInfo &info = f.get(name);
        if (info.dtype != safetensors::DType::F32 || info.numel() != p.end - p.begin)
          fail(f.path(), std::string("'") + name + "' does not hold f32 elements [" + std::to_string(p.begin) + ", " +
                             std::to_string(p.end) + ")");
      }
    }
  } catch (const safetensors::Error &e) {
    throw CheckpointError(e.what());
  } catch (const nlohmann::json::exception &e) {
    fail(statePath, std::string("malformed: ") + e.what());
  }
  if (!withData) return snap;
  snap.master.assign(static_cast<size_t>(l.flatElements), 0.0f);
  readMasterChunks(dir, snap, [&](int64_t b, int64_t e, const float *v) {
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
