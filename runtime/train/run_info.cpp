#include "runtime/train/run_info.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace tlc::train {
namespace {

constexpr int kVersion = 1;

std::string absolute(const std::string &path) {
  std::error_code ec;
  fs::path p = fs::absolute(path, ec);
  return ec ? path : p.lexically_normal().string();
}

}  // namespace

void writeTextAtomic(const std::string &path, const std::string &text) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  FILE *f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw RunInfoError(path + ": cannot create (" + std::strerror(errno) + ")");
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok &= std::fclose(f) == 0;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw RunInfoError(path + ": cannot write (" + std::strerror(errno) + ")");
  }
}

void writeRunInfo(const std::string &runDir, const RunInfo &info) {
  nlohmann::json j = {{"format", "tlc-run"},
                      {"version", kVersion},
                      {"model", absolute(info.model)},
                      {"model_config", info.modelConfig},
                      {"param_dtype", info.paramDType},
                      {"data", absolute(info.dataDir)}};
  writeTextAtomic(runDir + "/run.json", j.dump(2) + "\n");
}

RunInfo readRunInfo(const std::string &runDir) {
  std::string path = runDir + "/run.json";
  std::ifstream in(path);
  if (!in) throw RunInfoError(path + ": cannot read (a run directory of tlrun train holds one)");
  RunInfo info;
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    if (j.value("format", "") != "tlc-run") throw RunInfoError(path + ": not a tlc run description (key 'format')");
    if (j.value("version", 0) != kVersion)
      throw RunInfoError(path + ": version " + j.value("version", nlohmann::json()).dump() + ", this tlrun reads " +
                         std::to_string(kVersion));
    info.model = j.at("model").get<std::string>();
    info.dataDir = j.at("data").get<std::string>();
    info.modelConfig = j.at("model_config");
    info.paramDType = j.at("param_dtype").get<std::string>();
    if (!info.modelConfig.is_object()) throw RunInfoError(path + ": key 'model_config' is not an object");
  } catch (const nlohmann::json::exception &e) {
    throw RunInfoError(path + ": malformed: " + e.what());
  }
  return info;
}

std::string runDirOfCheckpoint(const std::string &checkpointDir) {
  fs::path p = fs::path(absolute(checkpointDir));
  if (p.filename().empty()) p = p.parent_path();  // a trailing slash
  fs::path checkpoints = p.parent_path();
  if (checkpoints.filename() != "checkpoints") return "";
  fs::path run = checkpoints.parent_path();
  return fs::exists(run / "run.json") ? run.string() : "";
}

}  // namespace tlc::train
