#include "runtime/hf/export.h"

#include "cli/cli.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "formats/artifact.h"
#include "runtime/hf/hf_config.h"
#include "formats/half.h"
#include "cli/inputs.h"
#include "formats/safetensors.h"
#include "runtime/train/checkpoint.h"
#include "runtime/train/checkpoint_ref.h"
#include "runtime/train/checkpoint_weights.h"
#include "runtime/train/run_info.h"

namespace fs = std::filesystem;

namespace tlc::hf {
namespace {

// Every file an export may write; a new export replaces all of them.
const char *const kOutputs[] = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.model",
                                "tokenizer_config.json"};

std::string readText(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot read");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

nlohmann::json parseJson(const std::string &path) {
  try {
    return nlohmann::json::parse(readText(path));
  } catch (const nlohmann::json::exception &e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
}

void writeSynced(const std::string &path, const std::string &bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw Error(path + ": cannot create (" + std::strerror(errno) + ")");
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      ::close(fd);
      throw Error(path + ": write failed (" + std::strerror(err) + ")");
    }
    done += static_cast<size_t>(n);
  }
  bool ok = ::fsync(fd) == 0;
  ok &= ::close(fd) == 0;
  if (!ok) throw Error(path + ": write failed (" + std::strerror(errno) + ")");
}

void fsyncPath(const std::string &path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

namespace {

struct Tokenizer {
  std::string file;  // empty: none
  int64_t bos = 1, eos = 2, pad = -1;
  std::string note;  // why there is none, or where the ids come from
};

// The tokenizer and its special ids from DATA/manifest.json (tlrun prepare).
Tokenizer findTokenizer(const std::string &dataDir, int64_t vocab) {
  Tokenizer t;
  if (dataDir.empty()) {
    t.note = "no data directory known (give --data DIR): exported without tokenizer.model; bos/eos ids are Llama's 1 and 2";
    return t;
  }
  std::string manifest = dataDir + "/manifest.json";
  if (!fs::exists(manifest)) {
    t.note = dataDir + " has no manifest.json (made by tlrun prepare): exported without tokenizer.model; bos/eos "
             "ids are Llama's 1 and 2";
    return t;
  }
  nlohmann::json m = parseJson(manifest);
  try {
    t.bos = m.at("bos_id").get<int64_t>();
    t.eos = m.at("eos_id").get<int64_t>();
    t.pad = m.value("pad_id", int64_t{-1});
    int64_t size = m.at("vocab_size").get<int64_t>();
    if (size > vocab)
      throw Error(manifest + ": the tokenizer's vocab_size " + std::to_string(size) + " exceeds the model's " +
                  std::to_string(vocab));
    std::string name = m.contains("tokenizer") ? m["tokenizer"].value("file", "tokenizer.model") : "tokenizer.model";
    std::string path = dataDir + "/" + name;
    if (fs::exists(path)) t.file = path;
    else t.note = manifest + " names tokenizer " + path + ", which does not exist: exported without tokenizer.model";
  } catch (const nlohmann::json::exception &e) {
    throw Error(manifest + ": " + e.what());
  }
  return t;
}

std::string torchDType(const std::string &d) {
  if (d == "f32") return "float32";
  if (d == "bf16") return "bfloat16";
  if (d == "f16") return "float16";
  throw Error("--dtype must be f32, bf16 or f16, got '" + d + "'");
}

// Checks the output directory and returns the files of kOutputs it holds.
std::vector<std::string> existingOutputs(const std::string &out) {
  std::vector<std::string> found;
  std::error_code ec;
  if (!fs::exists(out, ec)) return found;
  if (!fs::is_directory(out, ec)) throw Error(out + ": exists and is not a directory");
  for (const char *f : {"state.json", "run.json", "checkpoints"})
    if (fs::exists(fs::path(out) / f, ec))
      throw Error(out + ": holds " + f + ": a run or checkpoint directory is no export directory (even with --force)");
  for (const char *f : kOutputs)
    if (fs::exists(fs::path(out) / f, ec)) found.push_back(f);
  return found;
}

// model.safetensors in the export's dtype, streamed: each tensor read from
// the checkpoint in chunks, converted and appended. Returns the parameters.
int64_t writeWeights(const std::string &path, const train::CheckpointWeights &weights,
                     const std::vector<std::pair<std::string, std::vector<int64_t>>> &tensors, const std::string &dtype,
                     const std::map<std::string, std::string> &metadata) {
  safetensors::DType out = dtype == "f32" ? safetensors::DType::F32
                           : dtype == "bf16" ? safetensors::DType::BF16 : safetensors::DType::F16;
  std::vector<safetensors::TensorRef> refs;
  for (const auto &[name, shape] : tensors) refs.push_back({name, out, shape, nullptr});
  safetensors::StreamWriter w(path, refs, metadata);
  std::vector<uint16_t> halves;
  int64_t parameters = 0;
  for (const auto &[name, shape] : tensors) {
    const train::TensorSlot &t = *weights.find(name);
    parameters += t.numel;
    weights.read(t, [&](int64_t b, int64_t e, const float *v) {
      size_t n = static_cast<size_t>(e - b);
      if (out == safetensors::DType::F32) return w.append(v, n * 4);
      halves.resize(n);
      for (size_t i = 0; i < n; ++i) {
        halves[i] = out == safetensors::DType::BF16 ? floatToBf16(v[i]) : floatToF16(v[i]);
        // f16 tops out at 65504: a larger weight would silently become inf.
        if (out == safetensors::DType::F16 && std::isfinite(v[i]) && (halves[i] & 0x7fff) == 0x7c00) {
          char value[32];
          std::snprintf(value, sizeof value, "%.9g", static_cast<double>(v[i]));
          throw Error(weights.dir() + ": tensor '" + name + "' element " + std::to_string(b + static_cast<int64_t>(i)) +
                      " is " + value + ", beyond float16's range (largest finite value 65504): it would be written as "
                      "inf; export with --dtype bf16 or f32");
        }
      }
      w.append(halves.data(), n * 2);
    });
  }
  w.finish();
  return parameters;
}

void exportCheckpoint(const ExportOptions &o) {
  train::CheckpointRef ref = train::resolveCheckpointRef(o.source);
  std::string checkpoint = ref.dir;
  std::string tdtype = torchDType(o.dtype);

  // The model's dimensions: the artifact named, or the one the run recorded.
  nlohmann::json model;
  std::string dataDir = o.dataDir;
  if (!o.model.empty()) {
    model = artifact::read(o.model).config;
  } else {
    std::string runDir = train::runDirOfCheckpoint(checkpoint);
    if (runDir.empty())
      throw Error(checkpoint + ": no run.json in its run directory (written by tlrun train) to give the model's "
                  "dimensions; name the model with --model MODEL.tlx");
    train::RunInfo info = train::readRunInfo(runDir);
    model = info.modelConfig;
    if (dataDir.empty()) dataDir = info.dataDir;
  }
  std::vector<std::pair<std::string, std::vector<int64_t>>> expected = llamaTensors(model);
  int64_t vocab = model.at("vocab").get<int64_t>();
  Tokenizer tok = findTokenizer(dataDir, vocab);

  std::vector<std::string> existing = existingOutputs(o.outDir);
  inputs::expectWritableDirectory(o.outDir, "--hf");  // before the work: /proc, a read-only mount
  if (!existing.empty() && !o.force) {
    std::string list;
    for (const std::string &f : existing) list += (list.empty() ? "" : ", ") + f;
    throw Error(o.outDir + ": already holds " + list + "; use --force to replace them (other files are kept)");
  }

  // Either form of checkpoint weights, verified, read tensor by tensor in
  // chunks: host memory is bounded by a chunk, not by the model.
  train::verifyCheckpointWeights(checkpoint, "tlrun export");
  train::CheckpointWeights weights = train::CheckpointWeights::open(checkpoint);
  std::string weightsPath = checkpoint + (weights.sharded() ? "/state.json" : "/model.safetensors");
  std::set<std::string> names;
  for (const auto &[name, shape] : expected) {
    const train::TensorSlot *t = weights.find(name);
    if (!t) throw Error(weightsPath + ": has no tensor '" + name + "'");
    if (t->shape != shape)
      throw Error(weightsPath + ": tensor '" + name + "' has shape " + shapeText(t->shape) + " but the model's is " +
                  shapeText(shape));
    names.insert(name);
  }
  for (const train::TensorSlot &t : weights.layout().tensors)
    if (!names.count(t.name)) throw Error(weightsPath + ": tensor '" + t.name + "' is not a parameter of a Llama model");

  // Everything goes into a temporary directory beside OUT_DIR first.
  std::error_code ec;
  fs::path out = fs::absolute(o.outDir).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();
  fs::create_directories(out.parent_path(), ec);
  if (ec) throw Error(out.parent_path().string() + ": cannot create (" + ec.message() + ")");
  fs::path tmp = out.parent_path() / ("." + out.filename().string() + ".tmp-" + std::to_string(getpid()));
  fs::remove_all(tmp, ec);
  if (!fs::create_directory(tmp, ec))  // name the path given, not the temporary
    throw Error("--hf " + o.outDir + ": cannot write beside it (" + ec.message() + ")");
  try {
    int64_t parameters = writeWeights((tmp / "model.safetensors").string(), weights, expected, o.dtype,
                                      {{"format", "pt"},
                                       {"tlc_checkpoint", fs::absolute(checkpoint).lexically_normal().string()},
                                       {"tlc_step", std::to_string(weights.step())}});

    writeSynced((tmp / "config.json").string(), llamaConfig(model, tdtype, tok.bos, tok.eos).dump(2) + "\n");
    nlohmann::json gen = {{"bos_token_id", tok.bos}, {"eos_token_id", tok.eos},
                          {"max_length", model.at("seq").get<int64_t>()}};
    if (tok.pad >= 0) gen["pad_token_id"] = tok.pad;
    writeSynced((tmp / "generation_config.json").string(), gen.dump(2) + "\n");
    if (!tok.file.empty()) {
      writeSynced((tmp / "tokenizer.model").string(), readText(tok.file));
      nlohmann::json tc = {{"tokenizer_class", "LlamaTokenizer"}, {"add_bos_token", true}, {"add_eos_token", false},
                           {"model_max_length", model.at("seq").get<int64_t>()}};
      writeSynced((tmp / "tokenizer_config.json").string(), tc.dump(2) + "\n");
    }
    fsyncPath(tmp.string());

    // Publish: a fresh OUT_DIR is the renamed temporary; into an existing
    // one each file is renamed over its old version (config.json last), and
    // an old tokenizer this export does not have is removed.
    if (!fs::exists(out)) {
      fs::rename(tmp, out);
    } else {
      std::vector<std::string> order = {"model.safetensors", "generation_config.json", "tokenizer.model",
                                        "tokenizer_config.json", "config.json"};
      for (const std::string &f : order) {
        if (fs::exists(tmp / f)) fs::rename(tmp / f, out / f);
        else fs::remove(out / f);
      }
      fs::remove(tmp);
    }
    fsyncPath(out.parent_path().string());
    fsyncPath(out.string());
    std::printf("exported %s (step %lld, %lld parameters, %s) to %s: config.json, model.safetensors, "
                "generation_config.json%s\n",
                checkpoint.c_str(), static_cast<long long>(weights.step()),
                static_cast<long long>(parameters), o.dtype.c_str(), out.c_str(),
                tok.file.empty() ? "" : ", tokenizer.model, tokenizer_config.json");
    if (!tok.note.empty()) std::printf("note: %s\n", tok.note.c_str());
  } catch (const fs::filesystem_error &e) {
    fs::remove_all(tmp, ec);
    throw Error(std::string("writing ") + out.string() + " failed: " + e.what());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace

int runExport(const ExportOptions &o) {
  try {
    exportCheckpoint(o);
    return 0;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "tlrun export: %s\n", e.what());
    return 1;
  }
}

}  // namespace tlc::hf
