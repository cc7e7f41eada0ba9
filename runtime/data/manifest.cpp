#include "runtime/data/manifest.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "runtime/data/tokenizer.h"  // Error
#include "formats/tokens.h"

namespace tlc::data {
namespace fs = std::filesystem;
using nlohmann::json;

uint64_t Manifest::tokens(const std::string &split) const {
  uint64_t n = 0;
  for (const auto &s : shards) n += s.split == split ? s.tokens : 0;
  return n;
}

uint64_t Manifest::documents(const std::string &split) const {
  uint64_t n = 0;
  for (const auto &s : shards) n += s.split == split ? s.documents : 0;
  return n;
}

std::vector<std::string> Manifest::shardPaths(const std::string &dir, const std::string &split) const {
  std::vector<std::string> out;
  for (const auto &s : shards)
    if (s.split == split) out.push_back((fs::path(dir) / s.file).string());
  return out;
}

void writeManifest(const std::string &path, const Manifest &m) {
  json shards = json::array();
  json splits = json::object();
  for (const char *split : {"train", "val"}) {
    json files = json::array();
    for (const auto &s : m.shards)
      if (s.split == split) files.push_back(s.file);
    splits[split] = {{"tokens", m.tokens(split)}, {"documents", m.documents(split)}, {"shards", files}};
  }
  for (const auto &s : m.shards)
    shards.push_back({{"file", s.file}, {"split", s.split}, {"tokens", s.tokens}, {"documents", s.documents}});
  json settings = json::object();
  for (const auto &[k, v] : m.tokenizerSettings) settings[k] = v;
  json j = {
      {"version", Manifest::kVersion},
      {"vocab_size", m.vocabSize},
      {"bos_id", m.bosId},
      {"eos_id", m.eosId},
      {"unk_id", m.unkId},
      {"pad_id", m.padId},
      {"tokenizer", {{"file", m.tokenizerFile}, {"trained", m.tokenizerTrained}, {"settings", settings}}},
      {"format", m.format},
      {"sources", m.sources},
      {"val_fraction", m.valFraction},
      {"shard_tokens", m.shardTokens},
      {"dtype", "uint16"},
      {"splits", splits},
      {"shards", shards},
  };
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(tmp);
    out << j.dump(2) << "\n";
    if (!out.flush()) throw Error(path + ": write failed");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp);
    throw Error(path + ": " + ec.message());
  }
}

Manifest readManifest(const std::string &dir) {
  std::string path = (fs::path(dir) / "manifest.json").string();
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open (is " + dir + " a directory made by tlrun prepare?)");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception &e) {
    throw Error(path + ": not JSON: " + e.what());
  }
  auto field = [&](const json &obj, const char *key, const std::string &where) -> const json & {
    auto it = obj.find(key);
    if (it == obj.end()) throw Error(path + ": missing key '" + where + key + "'");
    return *it;
  };
  Manifest m;
  try {
    int version = field(j, "version", "").get<int>();
    if (version != Manifest::kVersion)
      throw Error(path + ": manifest version " + std::to_string(version) + ", this tlrun reads " +
                  std::to_string(Manifest::kVersion));
    m.vocabSize = field(j, "vocab_size", "").get<int>();
    m.bosId = field(j, "bos_id", "").get<int>();
    m.eosId = field(j, "eos_id", "").get<int>();
    m.unkId = field(j, "unk_id", "").get<int>();
    m.padId = j.value("pad_id", -1);
    const json &tok = field(j, "tokenizer", "");
    m.tokenizerFile = field(tok, "file", "tokenizer.").get<std::string>();
    m.tokenizerTrained = tok.value("trained", false);
    if (tok.contains("settings"))
      for (const auto &[k, v] : tok["settings"].items()) m.tokenizerSettings.push_back({k, v.get<std::string>()});
    m.format = field(j, "format", "").get<std::string>();
    m.sources = field(j, "sources", "").get<std::vector<std::string>>();
    m.valFraction = j.value("val_fraction", 0.0);
    m.shardTokens = j.value("shard_tokens", uint64_t(0));
    for (const auto &s : field(j, "shards", "")) {
      ShardEntry e{field(s, "file", "shards[].").get<std::string>(),
                   field(s, "split", "shards[].").get<std::string>(),
                   field(s, "tokens", "shards[].").get<uint64_t>(),
                   field(s, "documents", "shards[].").get<uint64_t>()};
      if (e.split != "train" && e.split != "val")
        throw Error(path + ": shard " + e.file + " has split '" + e.split + "' (train or val)");
      m.shards.push_back(std::move(e));
    }
  } catch (const json::exception &e) {
    throw Error(path + ": " + e.what());
  }
  if (m.vocabSize <= 0 || m.vocabSize > 65536)
    throw Error(path + ": vocab_size " + std::to_string(m.vocabSize) + " is not in 1..65536");
  for (const auto &s : m.shards) {
    fs::path p = fs::path(dir) / s.file;
    std::error_code ec;
    uintmax_t size = fs::file_size(p, ec);
    if (ec) throw Error(p.string() + ": listed in " + path + " but " + ec.message());
    uintmax_t want = tokens::kHeaderInts * sizeof(int32_t) + s.tokens * sizeof(uint16_t);
    if (size != want)
      throw Error(p.string() + ": " + std::to_string(size) + " bytes, but " + path + " says " +
                  std::to_string(s.tokens) + " tokens (" + std::to_string(want) + " bytes)");
  }
  return m;
}

std::string tokenizerPathOf(const std::string &dir) {
  std::error_code ec;
  std::string file = std::filesystem::is_regular_file(dir + "/manifest.json", ec) ? readManifest(dir).tokenizerFile
                                                                                   : "tokenizer.model";
  std::string path = dir + "/" + file;
  return std::filesystem::is_regular_file(path, ec) ? path : "";
}

}  // namespace tlc::data
