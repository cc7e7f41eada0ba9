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

bool isStepName(const std::string &name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; });
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

namespace {

// A range file: each named flat tensor over part's range in turn, streamed
// in flat order, with the range in the metadata.
void writeRangeFile(const std::string &tmp, const RangePart &part,
                    const std::vector<std::pair<const char *, const FlatFill *>> &tensors, int64_t chunk) {
  int64_t n = part.end - part.begin;
  std::vector<safetensors::TensorRef> refs;
  for (const auto &t : tensors) refs.push_back({t.first, safetensors::DType::F32, {n}, nullptr});
  safetensors::StreamWriter w(tmp + "/" + part.file, refs,
                              {{"range_begin", std::to_string(part.begin)}, {"range_end", std::to_string(part.end)}});
  std::vector<float> buf;
  for (const auto &t : tensors)
    for (int64_t b = part.begin; b < part.end; b += chunk) {
      int64_t e = std::min(part.end, b + chunk);
      buf.resize(static_cast<size_t>(e - b));
      (*t.second)(b, e, buf.data());
      w.append(buf.data(), buf.size() * 4);
    }
  w.finish();
}

}  // namespace

std::string optimizerFileName(int rank, int world) {
  return world == 1 ? "optimizer.safetensors"
                    : "optimizer-" + std::to_string(rank) + "-of-" + std::to_string(world) + ".safetensors";
}

std::string weightFileName(int rank, int world) {
  return "master-" + std::to_string(rank) + "-of-" + std::to_string(world) + ".safetensors";
}

void writeOptimizerFile(const std::string &tmp, const OptimizerPart &part, const FlatFill &m, const FlatFill &v,
                        int64_t chunk) {
  writeRangeFile(tmp, part, {{"exp_avg", &m}, {"exp_avg_sq", &v}}, chunk);
}

void writeWeightFile(const std::string &tmp, const RangePart &part, const FlatFill &fill, int64_t chunk) {
  writeRangeFile(tmp, part, {{"master", &fill}}, chunk);
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
                              const std::vector<OptimizerPart> &parts, int64_t keep,
                              const std::vector<RangePart> &weightParts) {
  std::string checkpoints = runDir + "/checkpoints";
  std::string step = std::to_string(s.step);
  std::string final = checkpoints + "/" + step;
  std::error_code ec;
  try {
    nlohmann::json files = nlohmann::json::object(), optimizer = nlohmann::json::array(),
                   weights = nlohmann::json::array();
    std::vector<std::string> names;
    if (weightParts.empty()) names.push_back("model.safetensors");
    auto list = [&names](const std::vector<RangePart> &ps, nlohmann::json &into) {
      for (const RangePart &p : ps) {
        names.push_back(p.file);
        into.push_back({{"file", p.file}, {"begin", p.begin}, {"end", p.end}});
      }
    };
    list(weightParts, weights);
    list(parts, optimizer);
    for (const std::string &name : names) {
      auto [bytes, sum] = fileChecksum(tmp + "/" + name);
      files[name] = {{"bytes", bytes}, {"fnv1a64", sum}};
    }
    nlohmann::json state = {
        {"format", "tlc-checkpoint"},
        {"version", weightParts.empty() ? kFullWeightsFormatVersion : kCheckpointFormatVersion},
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
    if (!weightParts.empty()) state["weights"] = weights;
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
    if (snap.weightParts.empty()) writeModelFile(tmp, snap.layout, snap.master.data());
    for (const RangePart &p : snap.weightParts)
      writeWeightFile(tmp, p, [&](int64_t b, int64_t e, float *into) {
        std::memcpy(into, snap.master.data() + b, static_cast<size_t>(e - b) * 4);
      });
    writeOptimizerFile(tmp, part, snap.m.data(), snap.v.data());
  } catch (const std::exception &e) {
    discardCheckpointTemp(tmp);
    throw CheckpointError("saving checkpoint " + runDir + "/checkpoints/" + std::to_string(snap.state.step) +
                          " failed: " + e.what());
  }
  return publishCheckpoint(runDir, tmp, snap.state, snap.layout, {part}, keep, snap.weightParts);
}

}  // namespace tlc::train
