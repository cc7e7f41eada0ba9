#include "runtime/artifact.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace tlc::artifact {
namespace {

constexpr char kMagic[4] = {'T', 'L', 'X', '\x01'};

uint64_t fnv1a(const std::string &bytes) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

template <typename T> void put(std::string &out, T v) {
  out.append(reinterpret_cast<const char *>(&v), sizeof v);
}
void putString(std::string &out, const std::string &s) {
  put<uint64_t>(out, s.size());
  out += s;
}

const char *kindName(BufferKind k) {
  switch (k) {
    case BufferKind::Arena: return "arena";
    case BufferKind::Param: return "param";
    case BufferKind::Input: return "input";
    case BufferKind::Output: return "output";
  }
  return "?";
}
BufferKind parseKind(const std::string &s) {
  if (s == "arena") return BufferKind::Arena;
  if (s == "param") return BufferKind::Param;
  if (s == "input") return BufferKind::Input;
  if (s == "output") return BufferKind::Output;
  throw Error("unknown buffer kind '" + s + "'");
}

nlohmann::json tensorJson(const Tensor &t) {
  nlohmann::json j = {{"name", t.name}, {"dtype", dtypeName(t.dtype)}, {"shape", t.shape},
                      {"buffer", t.buffer}};
  if (!t.init.is_null()) j["init"] = t.init;
  return j;
}
Tensor tensorFrom(const nlohmann::json &j) {
  Tensor t;
  t.name = j.at("name").get<std::string>();
  t.dtype = parseDType(j.at("dtype").get<std::string>());
  t.shape = j.at("shape").get<std::vector<int64_t>>();
  t.buffer = j.at("buffer").get<int>();
  if (j.contains("init")) t.init = j["init"];
  return t;
}

nlohmann::json manifest(const Artifact &a) {
  nlohmann::json j;
  j["version"] = kVersion;
  j["config"] = a.config;
  for (const char *key : {"params", "inputs", "outputs"}) j[key] = nlohmann::json::array();
  for (const auto &t : a.params) j["params"].push_back(tensorJson(t));
  for (const auto &t : a.inputs) j["inputs"].push_back(tensorJson(t));
  for (const auto &t : a.outputs) j["outputs"].push_back(tensorJson(t));
  j["buffers"] = nlohmann::json::array();
  for (const auto &b : a.buffers)
    j["buffers"].push_back({{"bytes", b.bytes}, {"kind", kindName(b.kind)}, {"offset", b.offset}});
  j["arena_bytes"] = a.arenaBytes;
  j["unplanned_bytes"] = a.unplannedBytes;
  j["kernels"] = nlohmann::json::array();
  for (const auto &k : a.kernels)
    j["kernels"].push_back({{"name", k.name}, {"grid", k.grid}, {"block", k.block},
                            {"shared_bytes", k.sharedBytes}, {"checks_errors", k.checksErrors}});
  j["steps"] = nlohmann::json::array();
  for (const auto &s : a.steps) {
    nlohmann::json js = {{"buffers", s.buffers}, {"location", s.location}};
    if (s.kind == Step::Kernel) {
      js["kind"] = "kernel";
      js["kernel"] = s.kernel;
    } else if (s.kind == Step::Zero) {
      js["kind"] = "zero";
    } else {
      const Gemm &g = s.gemm;
      js["kind"] = "gemm";
      js["gemm"] = {{"trans_a", g.transA}, {"trans_b", g.transB}, {"m", g.m}, {"n", g.n},
                    {"k", g.k}, {"batch", g.batch}, {"stride_a", g.strideA},
                    {"stride_b", g.strideB}, {"stride_c", g.strideC},
                    {"dtype", dtypeName(g.dtype)}};
    }
    j["steps"].push_back(js);
  }
  return j;
}

Artifact fromManifest(const nlohmann::json &j) {
  Artifact a;
  a.config = j.at("config");
  for (const auto &t : j.at("params")) a.params.push_back(tensorFrom(t));
  for (const auto &t : j.at("inputs")) a.inputs.push_back(tensorFrom(t));
  for (const auto &t : j.at("outputs")) a.outputs.push_back(tensorFrom(t));
  for (const auto &b : j.at("buffers"))
    a.buffers.push_back({b.at("bytes").get<int64_t>(), parseKind(b.at("kind").get<std::string>()),
                         b.at("offset").get<int64_t>()});
  a.arenaBytes = j.at("arena_bytes").get<int64_t>();
  a.unplannedBytes = j.at("unplanned_bytes").get<int64_t>();
  for (const auto &k : j.at("kernels"))
    a.kernels.push_back({k.at("name").get<std::string>(), k.at("grid").get<int64_t>(),
                         k.at("block").get<int64_t>(), k.at("shared_bytes").get<int64_t>(),
                         k.at("checks_errors").get<bool>()});
  for (const auto &js : j.at("steps")) {
    Step s;
    s.buffers = js.at("buffers").get<std::vector<int>>();
    s.location = js.at("location").get<std::string>();
    std::string kind = js.at("kind").get<std::string>();
    if (kind == "kernel") {
      s.kind = Step::Kernel;
      s.kernel = js.at("kernel").get<std::string>();
    } else if (kind == "zero") {
      s.kind = Step::Zero;
    } else if (kind == "gemm") {
      s.kind = Step::Gemm;
      const auto &g = js.at("gemm");
      s.gemm = {g.at("trans_a").get<bool>(), g.at("trans_b").get<bool>(), g.at("m").get<int64_t>(),
                g.at("n").get<int64_t>(), g.at("k").get<int64_t>(), g.at("batch").get<int64_t>(),
                g.at("stride_a").get<int64_t>(), g.at("stride_b").get<int64_t>(),
                g.at("stride_c").get<int64_t>(), parseDType(g.at("dtype").get<std::string>())};
    } else {
      throw Error("unknown step kind '" + kind + "'");
    }
    a.steps.push_back(std::move(s));
  }
  return a;
}

// Every buffer and kernel a step names must exist; arena buffers must fit.
void validate(const Artifact &a) {
  auto checkBuffer = [&](int b, const std::string &what) {
    if (b < 0 || b >= static_cast<int>(a.buffers.size()))
      throw Error(what + " names buffer " + std::to_string(b) + " of " +
                  std::to_string(a.buffers.size()));
  };
  for (const auto &b : a.buffers)
    if (b.bytes < 0 || (b.kind == BufferKind::Arena && b.offset + b.bytes > a.arenaBytes))
      throw Error("a buffer lies outside the arena");
  for (const auto *list : {&a.params, &a.inputs, &a.outputs})
    for (const auto &t : *list) {
      checkBuffer(t.buffer, "tensor '" + t.name + "'");
      if (static_cast<int64_t>(t.numel() * dtypeSize(t.dtype)) != a.buffers[t.buffer].bytes)
        throw Error("tensor '" + t.name + "' does not fill its buffer");
    }
  for (size_t i = 0; i < a.steps.size(); ++i) {
    const Step &s = a.steps[i];
    for (int b : s.buffers) checkBuffer(b, "step " + std::to_string(i));
    if (s.kind == Step::Kernel) {
      bool found = false;
      for (const auto &k : a.kernels) found |= k.name == s.kernel;
      if (!found) throw Error("step " + std::to_string(i) + " runs unknown kernel '" + s.kernel + "'");
    }
    if (s.kind == Step::Gemm && s.buffers.size() != 3)
      throw Error("step " + std::to_string(i) + ": a gemm takes three buffers");
  }
}

}  // namespace

const char *dtypeName(DType d) {
  switch (d) {
    case DType::F32: return "f32";
    case DType::BF16: return "bf16";
    case DType::I32: return "i32";
  }
  return "?";
}
size_t dtypeSize(DType d) { return d == DType::BF16 ? 2 : 4; }
DType parseDType(const std::string &name) {
  if (name == "f32") return DType::F32;
  if (name == "bf16") return DType::BF16;
  if (name == "i32") return DType::I32;
  throw Error("unsupported dtype '" + name + "'");
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

void write(const std::string &path, const Artifact &a) {
  std::string bytes(kMagic, 4);
  put<uint32_t>(bytes, kVersion);
  putString(bytes, manifest(a).dump());
  putString(bytes, a.cpuSource);
  putString(bytes, a.cudaSource);
  put<uint64_t>(bytes, a.cubins.size());
  for (const auto &[arch, cubin] : a.cubins) {
    putString(bytes, arch);
    putString(bytes, cubin);
  }
  put<uint64_t>(bytes, fnv1a(bytes));
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      std::remove(tmp.c_str());
      throw Error(path + ": cannot write");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    throw Error(path + ": cannot write: " + why);
  }
}

Artifact read(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open: " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string bytes = ss.str();
  auto fail = [&](const std::string &why) -> Error { return Error(path + ": " + why); };
  if (bytes.size() < 4 + 4 + 8 || std::memcmp(bytes.data(), kMagic, 4) != 0)
    throw fail("not a tlc artifact (bad magic)");
  uint32_t version;
  std::memcpy(&version, bytes.data() + 4, 4);
  if (version != kVersion)
    throw fail("artifact version " + std::to_string(version) + " is not supported (this tlrun reads " +
               std::to_string(kVersion) + "); recompile it with this tlc");
  uint64_t stored;
  std::memcpy(&stored, bytes.data() + bytes.size() - 8, 8);
  if (fnv1a(bytes.substr(0, bytes.size() - 8)) != stored)
    throw fail("checksum mismatch: the file is corrupt or truncated");
  size_t pos = 8;
  auto next = [&]() {
    uint64_t n;
    if (pos + 8 > bytes.size() - 8) throw fail("truncated section");
    std::memcpy(&n, bytes.data() + pos, 8);
    pos += 8;
    if (n > bytes.size() - 8 - pos) throw fail("truncated section");
    std::string s = bytes.substr(pos, n);
    pos += n;
    return s;
  };
  std::string manifestText = next(), cpuSource = next(), cudaSource = next();
  if (pos + 8 > bytes.size() - 8) throw fail("truncated section");
  uint64_t count;
  std::memcpy(&count, bytes.data() + pos, 8);
  pos += 8;
  if (count > 64) throw fail("implausible number of cubins");
  std::vector<std::pair<std::string, std::string>> cubins;
  for (uint64_t i = 0; i < count; ++i) {
    std::string arch = next();
    cubins.emplace_back(arch, next());
  }
  Artifact a;
  try {
    a = fromManifest(nlohmann::json::parse(manifestText));
    validate(a);
  } catch (const nlohmann::json::exception &e) {
    throw fail(std::string("malformed manifest: ") + e.what());
  } catch (const Error &e) {
    throw fail(e.what());
  }
  a.cpuSource = std::move(cpuSource);
  a.cudaSource = std::move(cudaSource);
  a.cubins = std::move(cubins);
  return a;
}

}  // namespace tlc::artifact
