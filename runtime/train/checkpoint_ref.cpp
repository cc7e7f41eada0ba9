#include "runtime/train/checkpoint_ref.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/train/checkpoint.h"

namespace fs = std::filesystem;

namespace tlc::train {

const char *const kCheckpointRefForms =
    "a run directory (its newest checkpoint), RUN_DIR/checkpoints, the file RUN_DIR/checkpoints/latest, "
    "a checkpoint directory (RUN_DIR/checkpoints/<step>, holding state.json) or RUN_DIR:STEP";

namespace {

[[noreturn]] void fail(const std::string &path, const std::string &what) { throw CheckpointError(path + ": " + what); }

bool isStepName(const std::string &name) {
  return !name.empty() && name.size() < 19 &&
         std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool isFile(const fs::path &p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

bool isDir(const fs::path &p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

// The steps of a checkpoints/ directory's complete checkpoints, ascending.
std::vector<int64_t> completeSteps(const fs::path &checkpoints) {
  std::vector<int64_t> steps;
  std::error_code ec;
  for (const auto &e : fs::directory_iterator(checkpoints, ec)) {
    std::string name = e.path().filename().string();
    if (isStepName(name) && isFile(e.path() / "state.json")) steps.push_back(std::stoll(name));
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

std::string stepList(const std::vector<int64_t> &steps) {
  if (steps.empty()) return "none";
  std::string s;
  for (int64_t step : steps) s += (s.empty() ? "" : ", ") + std::to_string(step);
  return s;
}

CheckpointRef refOf(const fs::path &dir) {
  CheckpointRef r;
  fs::path d = dir.lexically_normal();
  if (!d.has_filename()) d = d.parent_path();  // a trailing slash
  r.dir = d.string();
  std::string name = d.filename().string();
  if (isStepName(name)) r.step = std::stoll(name);
  if (d.parent_path().filename() == "checkpoints") {
    r.runDir = d.parent_path().parent_path().string();
    if (r.runDir.empty()) r.runDir = ".";
  }
  return r;
}

// The checkpoint a checkpoints/latest file names.
CheckpointRef latestOf(const fs::path &latest) {
  std::ifstream f(latest, std::ios::binary);
  if (!f) fail(latest.string(), "cannot read");
  std::stringstream s;
  s << f.rdbuf();
  std::string name = s.str();
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ' || name.back() == '\r')) name.pop_back();
  fs::path checkpoints = latest.parent_path().empty() ? fs::path(".") : latest.parent_path();
  if (!isStepName(name)) fail(latest.string(), "does not name a checkpoint step ('" + name + "')");
  fs::path dir = checkpoints / name;
  if (!isFile(dir / "state.json"))
    fail(latest.string(), "names " + dir.string() + ", which is not a complete checkpoint (complete ones: steps " +
                              stepList(completeSteps(checkpoints)) + ")");
  return refOf(dir);
}

// What `ref` is, for the error saying it is no checkpoint reference.
std::string describe(const std::string &ref) {
  std::error_code ec;
  fs::file_status st = fs::status(ref, ec);
  if (!fs::exists(st)) return "does not exist";
  if (fs::is_regular_file(st)) return "is a file of " + std::to_string(fs::file_size(ref, ec)) + " bytes";
  if (!fs::is_directory(st)) return "is neither a file nor a directory";
  std::vector<std::string> names;
  for (const auto &e : fs::directory_iterator(ref, ec)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  std::string held;
  for (size_t i = 0; i < names.size() && i < 6; ++i) held += (i ? ", " : "") + names[i];
  if (names.size() > 6) held += ", ... (" + std::to_string(names.size()) + " entries)";
  return "is a directory with neither state.json nor checkpoints/latest (it holds " + (held.empty() ? "nothing" : held) +
         ")";
}

}  // namespace

std::optional<CheckpointRef> findCheckpointRef(const std::string &ref) {
  if (ref.empty()) return std::nullopt;
  fs::path p(ref);
  std::error_code ec;
  if (fs::exists(p, ec)) {
    if (isDir(p)) {
      if (isFile(p / "state.json")) return refOf(p);
      if (isFile(p / "checkpoints" / "latest")) return latestOf(p / "checkpoints" / "latest");
      if (isFile(p / "latest")) return latestOf(p / "latest");  // RUN_DIR/checkpoints
      if (isDir(p / "checkpoints") || isFile(p / "run.json"))
        fail(ref, "is a run directory without a complete checkpoint yet (no checkpoints/latest)");
      return std::nullopt;
    }
    if (isFile(p) && p.filename() == "latest") return latestOf(p);
    return std::nullopt;
  }
  // RUN_DIR:STEP, when no file is named so.
  size_t colon = ref.rfind(':');
  if (colon == std::string::npos || colon == 0) return std::nullopt;
  std::string run = ref.substr(0, colon), step = ref.substr(colon + 1);
  if (!isStepName(step) && step != "latest") return std::nullopt;
  if (!isDir(run)) fail(run, "does not exist (the run directory of " + ref + ")");
  fs::path checkpoints = fs::path(run) / "checkpoints";
  if (step == "latest") {
    if (!isFile(checkpoints / "latest")) fail(run, "has no checkpoints/latest: no complete checkpoint yet");
    return latestOf(checkpoints / "latest");
  }
  fs::path dir = checkpoints / std::to_string(std::stoll(step));
  if (!isFile(dir / "state.json"))
    fail(ref, "there is no complete checkpoint of step " + std::to_string(std::stoll(step)) + " in " +
                  checkpoints.string() + " (its checkpoints: steps " + stepList(completeSteps(checkpoints)) + ")");
  return refOf(dir);
}

CheckpointRef resolveCheckpointRef(const std::string &ref, const std::string &alsoAccepted) {
  if (std::optional<CheckpointRef> r = findCheckpointRef(ref)) return *r;
  std::string expected = alsoAccepted.empty() ? std::string("a checkpoint reference is ") + kCheckpointRefForms
                                              : "expected " + alsoAccepted + ", or a checkpoint reference: " +
                                                    kCheckpointRefForms;
  fail(ref.empty() ? "''" : ref, describe(ref) + "; " + expected);
}

CheckpointManifest readCheckpointManifest(const std::string &dir) {
  CheckpointManifest m;
  m.dir = dir;
  std::string statePath = dir + "/state.json";
  std::ifstream f(statePath, std::ios::binary);
  if (!f) fail(statePath, "cannot read");
  try {
    m.state = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception &e) {
    fail(statePath, std::string("corrupt (not valid JSON): ") + e.what());
  }
  try {
    if (!m.state.is_object() || m.state.value("format", "") != "tlc-checkpoint") fail(statePath, "not a tlc checkpoint");
    const nlohmann::json &version = m.state.at("version");
    if (!version.is_number_integer() || version.get<int64_t>() < 1 || version.get<int64_t>() > kCheckpointFormatVersion)
      fail(statePath, "checkpoint format version " + version.dump() + " is not supported (this tlrun reads 1 to " +
                          std::to_string(kCheckpointFormatVersion) + ")");
    for (const auto &[name, entry] : m.state.at("files").items())
      m.files.push_back({name, entry.at("bytes").get<uint64_t>(), entry.at("fnv1a64").get<std::string>()});
  } catch (const nlohmann::json::exception &e) {
    fail(statePath, std::string("malformed: ") + e.what());
  }
  return m;
}

std::string checkCheckpointFile(const std::string &dir, const CheckpointFile &f, bool checksum) {
  std::string path = dir + "/" + f.name;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return "missing: the checkpoint is incomplete";
  uint64_t bytes = fs::file_size(path, ec);
  if (ec) return "cannot read: " + ec.message();
  if (bytes != f.bytes)
    return "has " + std::to_string(bytes) + " bytes, the checkpoint recorded " + std::to_string(f.bytes) +
           ": truncated or modified";
  if (!checksum) return "";
  uint64_t h = 0;
  try {
    h = fileFnv1a64(path, &bytes);
  } catch (const CheckpointError &e) {
    return e.what();
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h));
  if (bytes != f.bytes) return "changed while it was read";
  return hex == f.fnv1a64 ? "" : "checksum mismatch: the file is corrupt";
}

std::vector<std::string> verifyCheckpointFiles(const CheckpointManifest &m, const std::vector<std::string> &reading,
                                               const std::string &command) {
  for (const std::string &name : reading)
    if (std::none_of(m.files.begin(), m.files.end(), [&](const CheckpointFile &f) { return f.name == name; }))
      fail(m.dir + "/state.json", "lists no " + name + " under 'files'");
  std::vector<std::string> warnings;
  for (const CheckpointFile &f : m.files) {
    bool read = std::find(reading.begin(), reading.end(), f.name) != reading.end();
    std::string problem = checkCheckpointFile(m.dir, f, read);
    if (problem.empty()) continue;
    if (read) fail(m.dir + "/" + f.name, problem);
    warnings.push_back(m.dir + "/" + f.name + ": " + problem + " (" + command +
                       " does not read it, but the checkpoint cannot be resumed)");
    std::fprintf(stderr, "warning: %s\n", warnings.back().c_str());
  }
  return warnings;
}

std::vector<std::string> checkpointWeightFiles(const CheckpointManifest &m) {
  if (!m.state.contains("weights")) return {"model.safetensors"};
  std::vector<std::string> names;
  const nlohmann::json &parts = m.state["weights"];
  if (parts.is_array())
    for (const nlohmann::json &p : parts)
      if (p.is_object() && p.contains("file") && p["file"].is_string()) names.push_back(p["file"].get<std::string>());
  if (names.empty() || names.size() != parts.size())
    fail(m.dir + "/state.json", "malformed: 'weights' must list the weight range files as {file, begin, end}");
  return names;
}

std::string verifyCheckpointWeights(const std::string &dir, const std::string &command) {
  CheckpointManifest m = readCheckpointManifest(dir);
  verifyCheckpointFiles(m, checkpointWeightFiles(m), command);
  return m.state.contains("weights") ? dir : dir + "/model.safetensors";
}

std::string checkpointOfWeightsFile(const std::string &file) {
  fs::path p(file);
  fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  return p.filename() == "model.safetensors" && isFile(dir / "state.json") ? dir.string() : "";
}

}  // namespace tlc::train
