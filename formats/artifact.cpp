#include "formats/artifact.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "formats/hash.h"

namespace tlc::artifact {
namespace {

constexpr char kMagic[4] = {'T', 'L', 'X', '\x01'};

// The artifact format's FNV-1a basis: one digit short of the standard
// 14695981039346656037 (kFnv1a64Basis), but every .tlx written so far
// carries checksums and layout hashes made with it, so it stays.
constexpr uint64_t kArtifactHashBasis = 1469598103934665603ull;

uint64_t artifactHash(std::string_view bytes) { return fnv1a64(bytes.data(), bytes.size(), kArtifactHashBasis); }

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
    case BufferKind::Grad: return "grad";
  }
  return "?";
}
BufferKind parseKind(const std::string &s) {
  if (s == "arena") return BufferKind::Arena;
  if (s == "param") return BufferKind::Param;
  if (s == "input") return BufferKind::Input;
  if (s == "output") return BufferKind::Output;
  if (s == "grad") return BufferKind::Grad;
  throw Error("unknown buffer kind '" + s + "'");
}

nlohmann::json tensorJson(const Tensor &t) {
  nlohmann::json j = {{"name", t.name}, {"dtype", dtypeName(t.dtype)}, {"shape", t.shape},
                      {"buffer", t.buffer}};
  if (!t.init.is_null()) j["init"] = t.init, j["decay"] = t.decay;
  if (t.offset >= 0) j["offset"] = t.offset;
  return j;
}
Tensor tensorFrom(const nlohmann::json &j) {
  Tensor t;
  t.name = j.at("name").get<std::string>();
  t.dtype = parseDType(j.at("dtype").get<std::string>());
  t.shape = j.at("shape").get<std::vector<int64_t>>();
  t.buffer = j.at("buffer").get<int>();
  if (j.contains("init")) t.init = j["init"], t.decay = j.at("decay").get<bool>();
  if (j.contains("offset")) t.offset = j["offset"].get<int64_t>();
  return t;
}

const char *scaleName(Gemm::Scale s) {
  switch (s) {
    case Gemm::Scale::None: return "none";
    case Gemm::Scale::M: return "m";
    case Gemm::Scale::Batch: return "batch";
    case Gemm::Scale::K: return "k";
  }
  return "none";
}

Gemm::Scale parseScale(const std::string &s) {
  if (s == "none") return Gemm::Scale::None;
  if (s == "m") return Gemm::Scale::M;
  if (s == "batch") return Gemm::Scale::Batch;
  if (s == "k") return Gemm::Scale::K;
  throw Error("unknown GEMM scale '" + s + "'");
}

nlohmann::json stepJson(const Step &s) {
  nlohmann::json js = {{"buffers", s.buffers}, {"location", s.location}};
  if (s.kind == Step::Kernel) {
    js["kind"] = "kernel";
    js["kernel"] = s.kernel;
    js["counts"] = s.counts;
    js["count_scales"] = s.countScales;
    js["grid"] = s.grid;
    js["grid_scales"] = s.gridScales;
  } else if (s.kind == Step::Zero) {
    js["kind"] = "zero";
  } else {
    const Gemm &g = s.gemm;
    js["kind"] = "gemm";
    js["gemm"] = {{"trans_a", g.transA}, {"trans_b", g.transB}, {"m", g.m}, {"n", g.n},
                  {"k", g.k}, {"batch", g.batch}, {"stride_a", g.strideA},
                  {"stride_b", g.strideB}, {"stride_c", g.strideC},
                  {"dtype", dtypeName(g.dtype)}, {"accumulate", g.accumulate},
                  {"scale", scaleName(g.scale)}, {"f32_result", g.f32Result}};
  }
  return js;
}

Step stepFrom(const nlohmann::json &js) {
  Step s;
  s.buffers = js.at("buffers").get<std::vector<int>>();
  s.location = js.at("location").get<std::string>();
  std::string kind = js.at("kind").get<std::string>();
  if (kind == "kernel") {
    s.kind = Step::Kernel;
    s.kernel = js.at("kernel").get<std::string>();
    s.counts = js.at("counts").get<std::vector<int64_t>>();
    s.countScales = js.at("count_scales").get<std::vector<bool>>();
    s.grid = js.at("grid").get<int64_t>();
    s.gridScales = js.at("grid_scales").get<bool>();
    if (s.counts.size() != s.countScales.size() || s.grid < 1)
      throw Error("a kernel step's counts and their scales differ in number, or its grid is empty");
  } else if (kind == "zero") {
    s.kind = Step::Zero;
  } else if (kind == "gemm") {
    s.kind = Step::Gemm;
    const auto &g = js.at("gemm");
    s.gemm = {g.at("trans_a").get<bool>(), g.at("trans_b").get<bool>(), g.at("m").get<int64_t>(),
              g.at("n").get<int64_t>(), g.at("k").get<int64_t>(), g.at("batch").get<int64_t>(),
              g.at("stride_a").get<int64_t>(), g.at("stride_b").get<int64_t>(),
              g.at("stride_c").get<int64_t>(), parseDType(g.at("dtype").get<std::string>()),
              g.at("accumulate").get<bool>(), parseScale(g.at("scale").get<std::string>()),
              g.at("f32_result").get<bool>()};
    if (s.gemm.f32Result && s.gemm.dtype != DType::BF16) throw Error("only a bf16 GEMM can have an f32 result");
  } else {
    throw Error("unknown step kind '" + kind + "'");
  }
  return s;
}

nlohmann::json eventJson(const CommEvent &c) {
  nlohmann::json j = {{"kind", commEventName(c.kind)}, {"group", c.group}, {"after", c.after}};
  if (c.kind == CommEvent::Gather) j["need"] = c.need;
  return j;
}

CommEvent eventFrom(const nlohmann::json &j) {
  CommEvent c;
  std::string kind = j.at("kind").get<std::string>();
  if (kind == "gather") c.kind = CommEvent::Gather;
  else if (kind == "release") c.kind = CommEvent::Release;
  else if (kind == "grads_final") c.kind = CommEvent::GradsFinal;
  else throw Error("unknown communication event '" + kind + "'");
  c.group = j.at("group").get<int>();
  c.after = j.at("after").get<int64_t>();
  if (c.kind == CommEvent::Gather) c.need = j.at("need").get<int64_t>();
  return c;
}

nlohmann::json manifest(const Artifact &a) {
  nlohmann::json j;
  j["version"] = kVersion;
  j["config"] = a.config;
  j["params"] = nlohmann::json::array();
  for (const auto &t : a.params) j["params"].push_back(tensorJson(t));
  j["flat"] = {{"elements", a.flatElements}, {"alignment", kFlatAlignment}, {"layout_hash", a.layoutHash()}};
  j["groups"] = nlohmann::json::array();
  for (const auto &g : a.groups)
    j["groups"].push_back({{"name", g.name}, {"first", g.first}, {"last", g.last}, {"begin", g.begin}, {"end", g.end}});
  j["buffers"] = nlohmann::json::array();
  for (const auto &b : a.buffers)
    j["buffers"].push_back({{"bytes", b.bytes}, {"kind", kindName(b.kind)}, {"offset", b.offset}});
  j["arena_bytes"] = a.arenaBytes;
  j["kernels"] = nlohmann::json::array();
  for (const auto &k : a.kernels)
    j["kernels"].push_back({{"name", k.name}, {"grid", k.grid}, {"block", k.block},
                            {"shared_bytes", k.sharedBytes}, {"checks_errors", k.checksErrors}});
  j["entry_points"] = nlohmann::json::array();
  for (const auto &e : a.entries) {
    nlohmann::json je = {{"name", e.name}, {"arena_bytes", e.arenaBytes},
                         {"unplanned_bytes", e.unplannedBytes}, {"batch", e.batch}};
    for (const char *key : {"inputs", "outputs", "steps", "comm"}) je[key] = nlohmann::json::array();
    for (const auto &t : e.inputs) je["inputs"].push_back(tensorJson(t));
    for (const auto &t : e.outputs) je["outputs"].push_back(tensorJson(t));
    for (const auto &s : e.steps) je["steps"].push_back(stepJson(s));
    for (const auto &c : e.comm) je["comm"].push_back(eventJson(c));
    j["entry_points"].push_back(je);
  }
  return j;
}

Artifact fromManifest(const nlohmann::json &j) {
  Artifact a;
  a.config = j.at("config");
  for (const auto &t : j.at("params")) a.params.push_back(tensorFrom(t));
  a.flatElements = j.at("flat").at("elements").get<int64_t>();
  if (j.at("flat").at("alignment").get<int64_t>() != kFlatAlignment)
    throw Error("flat layout aligned to " + j["flat"]["alignment"].dump() + " elements, this tlrun uses " +
                std::to_string(kFlatAlignment));
  if (j.at("flat").at("layout_hash").get<std::string>() != a.layoutHash())
    throw Error("the flat layout's hash does not match its parameters");
  for (const auto &g : j.at("groups"))
    a.groups.push_back({g.at("name").get<std::string>(), g.at("first").get<int>(), g.at("last").get<int>(),
                        g.at("begin").get<int64_t>(), g.at("end").get<int64_t>()});
  for (const auto &b : j.at("buffers"))
    a.buffers.push_back({b.at("bytes").get<int64_t>(), parseKind(b.at("kind").get<std::string>()),
                         b.at("offset").get<int64_t>()});
  a.arenaBytes = j.at("arena_bytes").get<int64_t>();
  for (const auto &k : j.at("kernels"))
    a.kernels.push_back({k.at("name").get<std::string>(), k.at("grid").get<int64_t>(),
                         k.at("block").get<int64_t>(), k.at("shared_bytes").get<int64_t>(),
                         k.at("checks_errors").get<bool>()});
  for (const auto &je : j.at("entry_points")) {
    EntryPoint e;
    e.name = je.at("name").get<std::string>();
    e.arenaBytes = je.at("arena_bytes").get<int64_t>();
    e.unplannedBytes = je.at("unplanned_bytes").get<int64_t>();
    e.batch = je.at("batch").get<int64_t>();
    for (const auto &t : je.at("inputs")) e.inputs.push_back(tensorFrom(t));
    for (const auto &t : je.at("outputs")) e.outputs.push_back(tensorFrom(t));
    for (const auto &js : je.at("steps")) e.steps.push_back(stepFrom(js));
    for (const auto &jc : je.at("comm")) e.comm.push_back(eventFrom(jc));
    a.entries.push_back(std::move(e));
  }
  return a;
}

// Every buffer and kernel a step names must exist; arena buffers must fit;
// parameters must tile the flat buffer in order, aligned.
void validate(const Artifact &a) {
  auto checkBuffer = [&](int b, const std::string &what) {
    if (b < 0 || b >= static_cast<int>(a.buffers.size()))
      throw Error(what + " names buffer " + std::to_string(b) + " of " +
                  std::to_string(a.buffers.size()));
  };
  for (const auto &b : a.buffers) {
    if (b.bytes < 0 || (b.kind == BufferKind::Arena && b.offset + b.bytes > a.arenaBytes))
      throw Error("a buffer lies outside the arena");
    if ((b.kind == BufferKind::Param || b.kind == BufferKind::Grad) &&
        (b.offset < 0 || b.offset >= static_cast<int64_t>(a.params.size())))
      throw Error("a buffer names parameter " + std::to_string(b.offset) + " of " +
                  std::to_string(a.params.size()));
  }
  std::set<std::string> names;
  for (const auto &k : a.kernels)
    if (!names.insert(k.name).second) throw Error("two kernels are named '" + k.name + "'");
  int64_t end = 0;
  for (const auto &p : a.params) {
    checkBuffer(p.buffer, "parameter '" + p.name + "'");
    if (static_cast<int64_t>(p.numel() * dtypeSize(p.dtype)) != a.buffers[p.buffer].bytes)
      throw Error("parameter '" + p.name + "' does not fill its buffer");
    if (p.offset < end || p.offset % kFlatAlignment != 0 || p.dtype != a.params[0].dtype)
      throw Error("parameter '" + p.name + "' is misplaced in the flat layout");
    end = p.offset + p.numel();
  }
  if (end > a.flatElements) throw Error("the parameters overrun the flat buffer");
  int next = 0;
  for (const auto &g : a.groups) {
    if (g.first != next || g.last < g.first || g.last >= static_cast<int>(a.params.size()) ||
        g.begin != a.params[g.first].offset || g.end != a.params[g.last].offset + a.params[g.last].numel())
      throw Error("parameter group '" + g.name + "' does not continue the groups' tiling of the parameters");
    next = g.last + 1;
  }
  if (!a.groups.empty() && next != static_cast<int>(a.params.size()))
    throw Error("the parameter groups do not cover every parameter");
  for (const auto &e : a.entries) {
    std::string where = "entry point '" + e.name + "'";
    if (e.arenaBytes > a.arenaBytes) throw Error(where + " needs a larger arena");
    if (e.batch < 0) throw Error(where + " has a negative micro-batch");
    for (const auto &t : e.inputs)
      if (e.batch > 0 && (t.shape.empty() || t.shape[0] != e.batch))
        throw Error(where + ": input '" + t.name + "' does not lead with the micro-batch");
    for (const auto *list : {&e.inputs, &e.outputs})
      for (const auto &t : *list) {
        checkBuffer(t.buffer, where + ": tensor '" + t.name + "'");
        if (static_cast<int64_t>(t.numel() * dtypeSize(t.dtype)) != a.buffers[t.buffer].bytes)
          throw Error(where + ": tensor '" + t.name + "' does not fill its buffer");
      }
    for (size_t i = 0; i < e.steps.size(); ++i) {
      const Step &s = e.steps[i];
      std::string step = where + ": step " + std::to_string(i);
      for (int b : s.buffers) {
        checkBuffer(b, step);
        const Buffer &buf = a.buffers[b];
        size_t count = buf.kind == BufferKind::Input ? e.inputs.size() : e.outputs.size();
        if ((buf.kind == BufferKind::Input || buf.kind == BufferKind::Output) &&
            (buf.offset < 0 || buf.offset >= static_cast<int64_t>(count)))
          throw Error(step + " names a missing input or output");
      }
      if (s.kind == Step::Kernel && !a.kernel(s.kernel))
        throw Error(step + " runs unknown kernel '" + s.kernel + "'");
      if (s.kind == Step::Gemm && s.buffers.size() != 3) throw Error(step + ": a gemm takes three buffers");
      if (s.kind == Step::Zero && s.buffers.size() != 1) throw Error(step + ": a zero takes one buffer");
    }
    int64_t previous = -1;
    for (const auto &c : e.comm) {
      int64_t steps = static_cast<int64_t>(e.steps.size());
      if (c.group < 0 || c.group >= static_cast<int>(a.groups.size()) || c.after < -1 || c.after >= steps ||
          c.after < previous || (c.kind == CommEvent::Gather && (c.need <= c.after || c.need >= steps)))
        throw Error(where + ": communication event " + commEventName(c.kind) + " of group " +
                    std::to_string(c.group) + " after step " + std::to_string(c.after) + " is out of order or range");
      previous = c.after;
    }
  }
}

}  // namespace

std::vector<int64_t> Step::countsFor(int64_t batch, int64_t compiled) const {
  std::vector<int64_t> c = counts;
  if (compiled > 0 && batch != compiled)
    for (size_t i = 0; i < c.size(); ++i)
      if (countScales[i]) c[i] = c[i] / compiled * batch;
  return c;
}

int64_t Step::gridFor(int64_t batch, int64_t compiled) const {
  if (!gridScales || compiled <= 0 || batch == compiled) return grid;
  return std::max<int64_t>(1, (grid * batch + compiled - 1) / compiled);
}

Gemm Gemm::forBatch(int64_t batch, int64_t compiled) const {
  Gemm g = *this;
  if (compiled <= 0 || batch == compiled) return g;
  switch (scale) {
    case Scale::None: break;
    case Scale::M: g.m = m / compiled * batch; break;
    case Scale::Batch: g.batch = this->batch / compiled * batch; break;
    case Scale::K: g.k = k / compiled * batch; break;
  }
  return g;
}

const char *dtypeName(DType d) {
  switch (d) {
    case DType::F32: return "f32";
    case DType::BF16: return "bf16";
    case DType::I32: return "i32";
  }
  return "?";
}
size_t dtypeSize(DType d) { return d == DType::BF16 ? 2 : 4; }
const char *commEventName(CommEvent::Kind k) {
  switch (k) {
    case CommEvent::Release: return "release";
    case CommEvent::Gather: return "gather";
    case CommEvent::GradsFinal: return "grads_final";
  }
  return "?";
}

DType parseDType(const std::string &name) {
  if (name == "f32") return DType::F32;
  if (name == "bf16") return DType::BF16;
  if (name == "i32") return DType::I32;
  throw Error("unsupported dtype '" + name + "'");
}

const EntryPoint *Artifact::entry(const std::string &name) const {
  for (const auto &e : entries)
    if (e.name == name) return &e;
  return nullptr;
}

const Kernel *Artifact::kernel(const std::string &name) const {
  for (const auto &k : kernels)
    if (k.name == name) return &k;
  return nullptr;
}

DType Artifact::paramDType() const { return params.empty() ? DType::F32 : params[0].dtype; }

std::string Artifact::layoutHash() const {
  nlohmann::json j = nlohmann::json::array();
  for (const auto &p : params) j.push_back({p.name, p.shape, dtypeName(p.dtype), p.offset});
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(artifactHash(j.dump())));
  return text;
}

void assignFlatLayout(Artifact &a) {
  int64_t end = 0;
  for (auto &p : a.params) {
    p.offset = (end + kFlatAlignment - 1) / kFlatAlignment * kFlatAlignment;
    end = p.offset + p.numel();
  }
  a.flatElements = (end + kFlatAlignment - 1) / kFlatAlignment * kFlatAlignment;
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
  put<uint64_t>(bytes, artifactHash(bytes));
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
    throw fail("artifact version " + std::to_string(version) + ", this tlrun reads " +
               std::to_string(kVersion) + ": recompile with tlc compile");
  uint64_t stored;
  std::memcpy(&stored, bytes.data() + bytes.size() - 8, 8);
  if (artifactHash(std::string_view(bytes).substr(0, bytes.size() - 8)) != stored)
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
