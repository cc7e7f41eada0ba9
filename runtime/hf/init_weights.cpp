#include "runtime/hf/init_weights.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "runtime/hf/hf_config.h"

namespace fs = std::filesystem;

namespace tlc::hf {
namespace {

nlohmann::json readJson(const std::string &path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot read");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception &e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
}

// The index of the first non-finite element, or -1.
int64_t firstNonFinite(const safetensors::File &f, const safetensors::TensorInfo &t) {
  const uint8_t *p = f.data(t);
  int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) {
    bool bad = false;
    switch (t.dtype) {
      case safetensors::DType::F64: {
        double v;
        std::memcpy(&v, p + 8 * i, 8);
        bad = !std::isfinite(v);
        break;
      }
      case safetensors::DType::F32: {
        float v;
        std::memcpy(&v, p + 4 * i, 4);
        bad = !std::isfinite(v);
        break;
      }
      case safetensors::DType::BF16:
      case safetensors::DType::F16: {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        uint16_t exp = t.dtype == safetensors::DType::BF16 ? 0x7f80 : 0x7c00;
        bad = (h & exp) == exp;
        break;
      }
      default:
        break;
    }
    if (bad) return i;
  }
  return -1;
}

bool isFloat(safetensors::DType d) {
  using safetensors::DType;
  return d == DType::F64 || d == DType::F32 || d == DType::BF16 || d == DType::F16;
}

}  // namespace

// A checkpoint's weights: the same checks on its layout and values, read
// through the checkpoint (either form) in chunks.
InitWeights InitWeights::fromCheckpoint(const std::string &dir, const artifact::Artifact &a) {
  InitWeights w;
  auto checkpoint = std::make_shared<train::CheckpointWeights>(train::CheckpointWeights::open(dir));
  std::string where = dir + (checkpoint->sharded() ? "/state.json" : "/model.safetensors");
  std::set<std::string> params;
  for (const artifact::Tensor &p : a.params) {
    const train::TensorSlot *t = checkpoint->find(p.name);
    if (!t) throw Error(where + ": has no tensor '" + p.name + "' (the model needs it with shape " + shapeText(p.shape) + ")");
    if (t->shape != p.shape)
      throw Error(where + ": tensor '" + p.name + "' has shape " + shapeText(t->shape) + " but the model's is " +
                  shapeText(p.shape));
    int64_t bad = -1;
    checkpoint->read(*t, [&](int64_t b, int64_t e, const float *v) {
      for (int64_t i = 0; bad < 0 && i < e - b; ++i)
        if (!std::isfinite(v[i])) bad = b + i;
    });
    if (bad >= 0) throw Error(where + ": tensor '" + p.name + "' holds a non-finite value at element " + std::to_string(bad));
    params.insert(p.name);
  }
  for (const train::TensorSlot &t : checkpoint->layout().tensors)
    if (!params.count(t.name)) throw Error(where + ": tensor '" + t.name + "' is not a parameter of the model");
  w.checkpoint_ = std::move(checkpoint);
  return w;
}

InitWeights InitWeights::open(const std::string &path, const artifact::Artifact &a) {
  InitWeights w;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(path + ": does not exist (--init-from takes a directory or a .safetensors file)");
  if (fs::is_directory(path, ec) && fs::exists(path + "/state.json", ec)) {
    try {
      return fromCheckpoint(path, a);
    } catch (const train::CheckpointError &e) {
      throw Error(e.what());
    }
  }
  bool tied = false;
  if (fs::is_directory(path, ec)) {
    std::string config = path + "/config.json";
    if (fs::exists(config)) {
      nlohmann::json hf = readJson(config);
      checkLlamaConfig(hf, a.config, config);
      tied = hf.value("tie_word_embeddings", false);
    }
    std::string single = path + "/model.safetensors", index = path + "/model.safetensors.index.json";
    if (fs::exists(single)) {
      w.files_.push_back(safetensors::File::open(single));
    } else if (fs::exists(index)) {
      nlohmann::json j = readJson(index);
      if (!j.contains("weight_map") || !j["weight_map"].is_object())
        throw Error(index + ": has no object 'weight_map'");
      std::set<std::string> shards;
      for (const auto &[name, file] : j["weight_map"].items()) {
        if (!file.is_string()) throw Error(index + ": weight_map['" + name + "'] is not a file name");
        shards.insert(file.get<std::string>());
      }
      for (const std::string &s : shards) w.files_.push_back(safetensors::File::open(path + "/" + s));
    } else {
      throw Error(path + ": holds neither model.safetensors nor model.safetensors.index.json" +
                  std::string(fs::exists(path + "/pytorch_model.bin") ? " (PyTorch .bin weights are not read; "
                                                                         "save them as safetensors)"
                                                                       : ""));
    }
  } else {
    w.files_.push_back(safetensors::File::open(path));
  }

  std::map<std::string, Source> found;
  for (size_t i = 0; i < w.files_.size(); ++i)
    for (const safetensors::TensorInfo &t : w.files_[i].tensors()) {
      auto [it, fresh] = found.insert({t.name, {i, t.name}});
      if (!fresh)
        throw Error(w.files_[i].path() + ": tensor '" + t.name + "' is also in " + w.files_[it->second.file].path());
    }
  std::set<std::string> used;
  for (const artifact::Tensor &p : a.params) {
    auto it = found.find(p.name);
    if (it == found.end() && p.name == "lm_head.weight" && tied) it = found.find("model.embed_tokens.weight");
    if (it == found.end())
      throw Error(path + ": has no tensor '" + p.name + "' (the model needs it with shape " + shapeText(p.shape) + ")");
    const safetensors::File &f = w.files_[it->second.file];
    const safetensors::TensorInfo &t = f.get(it->second.tensor);
    if (t.shape != p.shape)
      throw Error(f.path() + ": tensor '" + t.name + "' has shape " + shapeText(t.shape) + " but the model's" +
                  (t.name == p.name ? "" : " '" + p.name + "'") + " is " + shapeText(p.shape));
    if (!isFloat(t.dtype))
      throw Error(f.path() + ": tensor '" + t.name + "' is " + safetensors::dtypeName(t.dtype) +
                  "; weights must be F32, BF16, F16 or F64");
    if (int64_t bad = firstNonFinite(f, t); bad >= 0)
      throw Error(f.path() + ": tensor '" + t.name + "' holds a non-finite value at element " + std::to_string(bad));
    w.params_[p.name] = it->second;
    used.insert(t.name);
  }
  for (const auto &[name, src] : found)
    if (!used.count(name) && name.find("rotary_emb.inv_freq") == std::string::npos)
      throw Error(w.files_[src.file].path() + ": tensor '" + name + "' is not a parameter of the model");
  return w;
}

std::vector<float> InitWeights::values(const artifact::Tensor &p) const {
  if (checkpoint_) return checkpoint_->values(p.name, p.shape);
  const Source &s = params_.at(p.name);
  const safetensors::File &f = files_[s.file];
  std::vector<double> d = f.toDoubles(f.get(s.tensor));
  return std::vector<float>(d.begin(), d.end());
}

std::string InitWeights::describe() const {
  if (checkpoint_) return checkpoint_->describe();
  std::string s;
  for (const safetensors::File &f : files_) s += (s.empty() ? "" : ", ") + f.path();
  return s;
}

}  // namespace tlc::hf
