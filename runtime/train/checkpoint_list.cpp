#include "runtime/train/checkpoint_list.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>

#include "runtime/train/checkpoint.h"
#include "runtime/train/checkpoint_ref.h"

namespace fs = std::filesystem;

namespace tlc::train {
namespace {

bool isStepName(const std::string &name) {
  return !name.empty() && name.size() < 19 &&
         std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string utcOf(const fs::path &p) {
  std::error_code ec;
  fs::file_time_type t = fs::last_write_time(p, ec);
  if (ec) return "";
  auto sys = std::chrono::time_point_cast<std::chrono::system_clock::duration>(
      t - fs::file_time_type::clock::now() + std::chrono::system_clock::now());
  std::time_t tt = std::chrono::system_clock::to_time_t(sys);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Training losses by step from metrics.jsonl, for checkpoints written before
// state.json recorded the loss. Best effort: a bad line is skipped.
std::map<int64_t, double> loggedLosses(const std::string &runDir) {
  std::map<int64_t, double> losses;
  std::ifstream f(runDir + "/metrics.jsonl");
  std::string line;
  while (std::getline(f, line)) {
    nlohmann::json e = nlohmann::json::parse(line, nullptr, false);
    if (e.is_object() && e.contains("step") && e["step"].is_number_integer() && e.contains("loss") &&
        e["loss"].is_number())
      losses[e["step"].get<int64_t>()] = e["loss"].get<double>();
  }
  return losses;
}

std::string sizeText(uint64_t bytes) {
  const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

CheckpointEntry inspect(const fs::path &dir, int64_t step, bool verify) {
  CheckpointEntry e;
  e.step = step;
  e.dir = dir.string();
  std::error_code ec;
  for (const auto &f : fs::directory_iterator(dir, ec))
    if (f.is_regular_file(ec)) e.bytes += f.file_size(ec);
  CheckpointManifest m;
  try {
    m = readCheckpointManifest(e.dir);
  } catch (const CheckpointError &err) {
    e.problems.push_back(err.what());
    return e;
  }
  e.savedAt = m.state.value("saved_at", "");
  if (e.savedAt.empty()) e.savedAt = utcOf(dir / "state.json");
  if (m.state.contains("loss") && m.state["loss"].is_number()) e.loss = m.state["loss"].get<double>();
  try {
    e.weightFiles = checkpointWeightFiles(m);
    e.shardedWeights = m.state.contains("weights");
  } catch (const CheckpointError &err) {
    e.problems.push_back(err.what());
  }
  if (m.state.contains("step") && m.state["step"] != step)
    e.problems.push_back(e.dir + "/state.json: records step " + m.state["step"].dump() + ", not " + std::to_string(step));
  for (const CheckpointFile &f : m.files) {
    std::string problem = checkCheckpointFile(e.dir, f, verify);
    if (!problem.empty()) e.problems.push_back(e.dir + "/" + f.name + ": " + problem);
  }
  e.verified = verify && e.problems.empty();
  return e;
}

}  // namespace

CheckpointListing listCheckpoints(const std::string &runDir, bool verify) {
  CheckpointListing l;
  fs::path run(runDir);
  if (run.filename().empty()) run = run.parent_path();
  if (run.filename() == "checkpoints" && !fs::is_directory(run / "checkpoints")) run = run.parent_path();
  if (run.empty()) run = ".";
  l.runDir = run.string();
  fs::path checkpoints = run / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(checkpoints, ec)) {
    if (!fs::exists(run, ec)) throw CheckpointError(runDir + ": does not exist");
    throw CheckpointError(runDir + ": has no checkpoints/ folder (not a run directory of tlrun train, or no "
                          "checkpoint written yet)");
  }
  std::vector<std::pair<int64_t, fs::path>> dirs;
  for (const auto &e : fs::directory_iterator(checkpoints, ec)) {
    std::string name = e.path().filename().string();
    if (e.is_directory(ec) && isStepName(name)) dirs.push_back({std::stoll(name), e.path()});
    else if (name.rfind(".tmp-", 0) == 0) ++l.temporaries;
  }
  std::sort(dirs.begin(), dirs.end());
  for (const auto &[step, dir] : dirs) l.entries.push_back(inspect(dir, step, verify));

  std::map<int64_t, double> logged;
  bool needLogged = std::any_of(l.entries.begin(), l.entries.end(), [](const CheckpointEntry &e) {
    return std::isnan(e.loss);
  });
  if (needLogged) logged = loggedLosses(l.runDir);
  for (CheckpointEntry &e : l.entries)
    if (std::isnan(e.loss) && logged.count(e.step)) e.loss = logged[e.step];

  fs::path latest = checkpoints / "latest";
  if (!fs::exists(latest, ec)) {
    if (!l.entries.empty()) l.latestProblem = latest.string() + ": missing";
  } else {
    try {
      CheckpointRef ref = resolveCheckpointRef(latest.string());
      auto it = std::find_if(l.entries.begin(), l.entries.end(), [&](const CheckpointEntry &e) { return e.step == ref.step; });
      if (it == l.entries.end()) l.latestProblem = latest.string() + ": names step " + std::to_string(ref.step) + ", not listed";
      else it->latest = true;
    } catch (const CheckpointError &err) {
      l.latestProblem = err.what();
    }
  }
  return l;
}

bool listingIntact(const CheckpointListing &l) {
  return l.latestProblem.empty() &&
         std::all_of(l.entries.begin(), l.entries.end(), [](const CheckpointEntry &e) { return e.problems.empty(); });
}

std::string formatListing(const CheckpointListing &l, bool verify) {
  std::string out = l.runDir + ": " + std::to_string(l.entries.size()) +
                    (l.entries.size() == 1 ? " checkpoint" : " checkpoints") + "\n";
  if (l.entries.empty()) return out;
  char line[256];
  std::snprintf(line, sizeof(line), "  %10s  %-20s  %9s  %10s  %-10s  %s\n", "step", "saved (UTC)", "loss", "size",
                "weights", "status");
  out += line;
  int64_t newestIntact = -1;
  for (const CheckpointEntry &e : l.entries) {
    std::string loss = std::isnan(e.loss) ? "-" : "";
    if (loss.empty()) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.4f", e.loss);
      loss = buf;
    }
    std::string status = !e.problems.empty() ? "DAMAGED" : verify ? "verified" : "ok";
    if (e.latest) status += " (latest)";
    if (e.problems.empty()) newestIntact = e.step;
    // Sharded weights: how many range files (one per rank that wrote them).
    std::string weights = e.weightFiles.empty() ? "-"
                          : e.shardedWeights  ? std::to_string(e.weightFiles.size()) +
                                                    (e.weightFiles.size() == 1 ? " range" : " ranges")
                                              : "full";
    std::snprintf(line, sizeof(line), "  %10lld  %-20s  %9s  %10s  %-10s  %s\n", static_cast<long long>(e.step),
                  e.savedAt.empty() ? "-" : e.savedAt.c_str(), loss.c_str(), sizeText(e.bytes).c_str(), weights.c_str(),
                  status.c_str());
    out += line;
    for (const std::string &p : e.problems) out += "              " + p + "\n";
  }
  if (!l.latestProblem.empty()) out += "latest: " + l.latestProblem + "\n";
  if (l.temporaries > 0)
    out += std::to_string(l.temporaries) + " unfinished save(s) in checkpoints/.tmp-* (removed by the next tlrun train "
           "in this directory)\n";
  out += verify ? "Every file's size and FNV-1a 64 checksum checked.\n"
                : "Files present with their recorded sizes; --verify also checks every checksum (reads every file).\n";
  if (newestIntact >= 0)
    out += "Resume with: tlrun train MODEL.tlx --data DATA --out " + l.runDir + " --resume=" + l.runDir + ":" +
           std::to_string(newestIntact) + "\n";
  return out;
}

nlohmann::json listingJson(const CheckpointListing &l) {
  nlohmann::json entries = nlohmann::json::array();
  for (const CheckpointEntry &e : l.entries)
    entries.push_back({{"step", e.step},
                       {"dir", e.dir},
                       {"saved_at", e.savedAt},
                       {"loss", std::isnan(e.loss) ? nlohmann::json() : nlohmann::json(e.loss)},
                       {"bytes", e.bytes},
                       {"weights", e.weightFiles.empty() ? nlohmann::json()
                                                         : nlohmann::json(e.shardedWeights ? "sharded" : "full")},
                       {"weight_files", e.weightFiles},
                       {"latest", e.latest},
                       {"intact", e.problems.empty()},
                       {"verified", e.verified},
                       {"problems", e.problems}});
  return {{"run_dir", l.runDir},
          {"checkpoints", entries},
          {"latest_problem", l.latestProblem.empty() ? nlohmann::json() : nlohmann::json(l.latestProblem)},
          {"unfinished_saves", l.temporaries}};
}

}  // namespace tlc::train
