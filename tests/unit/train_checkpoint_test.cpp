// Checkpoints: bitwise round trip, `latest`, pruning, and refusal of corrupt,
// partial and incompatible checkpoints; a failed save changes nothing; every
// form of checkpoint reference; readers' warnings; tlrun checkpoints' listing;
// sharded weights read back, re-cut and verified like the full form.
#include "runtime/train/checkpoint.h"
#include "runtime/train/checkpoint_list.h"
#include "runtime/train/checkpoint_ref.h"
#include "runtime/train/checkpoint_weights.h"

#include <signal.h>
#include <sys/resource.h>

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "formats/safetensors.h"

using namespace tlc::train;
namespace fs = std::filesystem;

namespace {

std::string freshDir(const std::string &name) {
  std::string dir = ::testing::TempDir() + "train_ckpt_" + name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

Layout tinyLayout() {
  Layout l;
  l.tensors = {{"model.embed_tokens.weight", {10, 6}, 0, 60}, {"model.norm.weight", {6}, 64, 6}, {"lm_head.weight", {10, 6}, 128, 60}};
  l.flatElements = 192;
  l.batch = 2, l.seq = 8;
  return l;
}

Snapshot randomSnapshot(int64_t step, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n;
  Snapshot s;
  s.layout = tinyLayout();
  s.master.assign(192, 0.0f);
  s.m.assign(192, 0.0f);
  s.v.assign(192, 0.0f);
  for (const TensorSlot &t : s.layout.tensors)
    for (int64_t i = 0; i < t.numel; ++i) {
      s.master[t.offset + i] = n(rng);
      s.m[t.offset + i] = n(rng);
      s.v[t.offset + i] = std::fabs(n(rng));
    }
  s.state.step = step;
  s.state.adamStep = step - 1;
  s.state.skippedSteps = 1;
  s.state.data = {2, 5};
  s.state.config = {{"seed", 7}, {"steps", 100}};
  return s;
}

template <typename F>
std::string errorOf(F f) {
  try {
    f();
  } catch (const CheckpointError &e) {
    return e.what();
  }
  return "";
}

std::vector<std::string> entries(const std::string &dir) {
  std::vector<std::string> out;
  for (const auto &e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST(TrainCheckpoint, RoundTripIsBitwise) {
  std::string run = freshDir("roundtrip");
  Snapshot s = randomSnapshot(12, 1);
  std::string dir = writeCheckpoint(run, s, 3);
  EXPECT_EQ(dir, run + "/checkpoints/12");
  EXPECT_EQ(resolveCheckpointRef(run).dir, dir);
  EXPECT_EQ(resolveCheckpointRef(run).dir, dir);
  EXPECT_EQ(resolveCheckpointRef(dir).dir, dir);
  Snapshot back = readCheckpoint(dir, tinyLayout());
  EXPECT_EQ(0, std::memcmp(back.master.data(), s.master.data(), 192 * 4));
  EXPECT_EQ(0, std::memcmp(back.m.data(), s.m.data(), 192 * 4));
  EXPECT_EQ(0, std::memcmp(back.v.data(), s.v.data(), 192 * 4));
  EXPECT_EQ(back.state.step, 12);
  EXPECT_EQ(back.state.adamStep, 11);
  EXPECT_EQ(back.state.skippedSteps, 1);
  EXPECT_EQ(back.state.data, (Position{2, 5}));
  EXPECT_EQ(back.state.config, s.state.config);
  // The weights stand alone under their Hugging Face names.
  tlc::safetensors::File model = tlc::safetensors::File::open(dir + "/model.safetensors");
  EXPECT_EQ(model.tensors().size(), 3u);
  EXPECT_EQ(model.get("model.norm.weight").shape, (std::vector<int64_t>{6}));
  EXPECT_EQ(model.toDoubles(model.get("lm_head.weight"))[3], static_cast<double>(s.master[128 + 3]));
}

TEST(TrainCheckpoint, LatestAndPruning) {
  std::string run = freshDir("prune");
  for (int step : {2, 4, 6, 8}) writeCheckpoint(run, randomSnapshot(step, step), 2);
  EXPECT_EQ(entries(run + "/checkpoints"), (std::vector<std::string>{"6", "8", "latest"}));
  EXPECT_EQ(resolveCheckpointRef(run).dir, run + "/checkpoints/8");
  // Resumed from 6 and saving 7: checkpoint 8 of the abandoned trajectory is left alone.
  writeCheckpoint(run, randomSnapshot(7, 9), 2);
  EXPECT_EQ(entries(run + "/checkpoints"), (std::vector<std::string>{"6", "7", "8", "latest"}));
  EXPECT_EQ(resolveCheckpointRef(run).dir, run + "/checkpoints/7");
  // The same step again replaces it.
  Snapshot again = randomSnapshot(7, 10);
  writeCheckpoint(run, again, 0);
  EXPECT_EQ(readCheckpoint(run + "/checkpoints/7", tinyLayout()).master, again.master);
  EXPECT_EQ(entries(run + "/checkpoints"), (std::vector<std::string>{"6", "7", "8", "latest"}));
}

TEST(TrainCheckpoint, RefusesCorruptPartialAndIncompatible) {
  std::string run = freshDir("bad");
  std::string dir = writeCheckpoint(run, randomSnapshot(3, 3), 0);
  std::string backup = run + "/backup";
  fs::copy(dir, backup);
  auto restore = [&] {
    fs::remove_all(dir);
    fs::copy(backup, dir);
  };
  std::string model = dir + "/model.safetensors";
  {  // one flipped byte in the data
    std::fstream f(model, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-5, std::ios::end);
    f.put('\x7f');
  }
  EXPECT_NE(errorOf([&] { readCheckpoint(dir, tinyLayout()); }).find(model + ": checksum mismatch"), std::string::npos);
  restore();
  fs::resize_file(dir + "/optimizer.safetensors", 100);
  EXPECT_NE(errorOf([&] { readCheckpoint(dir, tinyLayout()); }).find("optimizer.safetensors: has 100 bytes"), std::string::npos);
  restore();
  fs::remove(model);
  EXPECT_NE(errorOf([&] { readCheckpoint(dir, tinyLayout()); }).find(model + ": missing"), std::string::npos);
  restore();
  std::ofstream(dir + "/state.json", std::ios::trunc) << "{\"format\": \"tlc-chec";
  EXPECT_NE(errorOf([&] { readCheckpoint(dir, tinyLayout()); }).find("state.json: corrupt"), std::string::npos);
  restore();
  Layout other = tinyLayout();
  other.tensors[2].shape = {12, 5};
  std::string e = errorOf([&] { readCheckpoint(dir, other); });
  EXPECT_NE(e.find("state.json: incompatible with this artifact"), std::string::npos) << e;
  other = tinyLayout();
  other.seq = 16;
  e = errorOf([&] { readCheckpoint(dir, other); });
  EXPECT_NE(e.find("micro-batch 2x8, the model's is 2x16"), std::string::npos) << e;
  EXPECT_NE(errorOf([&] { resolveCheckpointRef(run + "/nowhere"); }).find("does not exist; a checkpoint reference is"), std::string::npos);
  std::ofstream(run + "/checkpoints/latest", std::ios::trunc) << "99\n";
  EXPECT_NE(errorOf([&] { resolveCheckpointRef(run).dir; }).find("which is not a complete checkpoint"), std::string::npos);
}

TEST(TrainCheckpoint, FailedSaveChangesNothing) {
  std::string run = freshDir("full");
  std::string first = writeCheckpoint(run, randomSnapshot(1, 1), 0);
  std::string latestBefore = (std::stringstream() << std::ifstream(run + "/checkpoints/latest").rdbuf()).str();
  // A full disk, simulated with a file size limit (EFBIG instead of SIGXFSZ).
  struct rlimit old;
  getrlimit(RLIMIT_FSIZE, &old);
  sighandler_t previous = signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = {1000, old.rlim_max};
  setrlimit(RLIMIT_FSIZE, &small);
  std::string e = errorOf([&] { writeCheckpoint(run, randomSnapshot(2, 2), 1); });
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, previous);
  EXPECT_NE(e.find("saving checkpoint " + run + "/checkpoints/2 failed"), std::string::npos) << e;
  EXPECT_NE(e.find("File too large"), std::string::npos) << e;
  EXPECT_EQ(entries(run + "/checkpoints"), (std::vector<std::string>{"1", "latest"}));
  EXPECT_EQ((std::stringstream() << std::ifstream(run + "/checkpoints/latest").rdbuf()).str(), latestBefore);
  readCheckpoint(first, tinyLayout());
  // An unwritable place: a file where the run directory should be.
  std::ofstream(run + "/file") << "x";
  e = errorOf([&] { writeCheckpoint(run + "/file", randomSnapshot(1, 1), 0); });
  EXPECT_NE(e.find(run + "/file/checkpoints: cannot create"), std::string::npos) << e;
}

// The optimizer state is a list of flat ranges: a checkpoint whose moments
// were written as two ranks' ranges reads back as the same flat buffers
// (what a resume with another number of ranks re-cuts).
TEST(TrainCheckpoint, OptimizerRangesFromSeveralFiles) {
  std::string run = freshDir("ranges");
  Snapshot s = randomSnapshot(4, 4);
  std::string dir = writeCheckpoint(run, s, 0);
  fs::remove(dir + "/optimizer.safetensors");
  nlohmann::json state = nlohmann::json::parse(std::ifstream(dir + "/state.json"));
  state["optimizer"] = nlohmann::json::array();
  state["files"].erase("optimizer.safetensors");
  for (auto [begin, end] : {std::pair<int64_t, int64_t>{0, 128}, {128, 192}}) {
    std::string name = "optimizer-" + std::to_string(begin) + ".safetensors";
    tlc::safetensors::write(dir + "/" + name,
                            {{"exp_avg", tlc::safetensors::DType::F32, {end - begin}, s.m.data() + begin},
                             {"exp_avg_sq", tlc::safetensors::DType::F32, {end - begin}, s.v.data() + begin}});
    std::ifstream f(dir + "/" + name, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    char sum[17];
    std::snprintf(sum, sizeof sum, "%016llx", static_cast<unsigned long long>(tlc::fnv1a64(bytes.data(), bytes.size())));
    state["files"][name] = {{"bytes", bytes.size()}, {"fnv1a64", sum}};
    state["optimizer"].push_back({{"file", name}, {"begin", begin}, {"end", end}});
  }
  std::ofstream(dir + "/state.json", std::ios::trunc) << state.dump(2);
  Snapshot back = readCheckpoint(dir, tinyLayout());
  EXPECT_EQ(0, std::memcmp(back.m.data(), s.m.data(), 192 * 4));
  EXPECT_EQ(0, std::memcmp(back.v.data(), s.v.data(), 192 * 4));
  // A gap in the ranges is refused.
  state["optimizer"].erase(1);
  std::ofstream(dir + "/state.json", std::ios::trunc) << state.dump(2);
  EXPECT_NE(errorOf([&] { readCheckpoint(dir, tinyLayout()); }).find("the optimizer ranges cover 128 of 192 elements"),
            std::string::npos);
}

// The pieces data-parallel ranks use: three range files written by three
// "ranks" into one temporary directory, published with the manifest last;
// a rank of a 2-rank job then reads only its new range of the moments,
// re-cut across the files (shard::reshard), and every master weight.
TEST(TrainCheckpoint, RankFilesPublishedAndReadAsAnotherRange) {
  std::string run = freshDir("rankfiles");
  Snapshot s = randomSnapshot(6, 9);
  std::string tmp = checkpointTempDir(run, 6, 4242);
  createCheckpointTemp(tmp);
  writeModelFile(tmp, s.layout, s.master.data());
  std::vector<OptimizerPart> parts = {{"optimizer-0-of-3.safetensors", 0, 64},
                                      {"optimizer-1-of-3.safetensors", 64, 128},
                                      {"optimizer-2-of-3.safetensors", 128, 192}};
  for (const OptimizerPart &p : parts) writeOptimizerFile(tmp, p, s.m.data() + p.begin, s.v.data() + p.begin);
  std::string dir = publishCheckpoint(run, tmp, s.state, s.layout, parts, 0);
  EXPECT_EQ(dir, run + "/checkpoints/6");
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_EQ(resolveCheckpointRef(run).dir, dir);
  for (auto [begin, end] : {std::pair<int64_t, int64_t>{0, 128}, {128, 192}, {50, 150}, {0, 192}}) {
    Snapshot back = readCheckpoint(dir, tinyLayout(), begin, end, true);
    ASSERT_EQ(back.rangeBegin, begin);
    ASSERT_EQ(static_cast<int64_t>(back.m.size()), end - begin);
    EXPECT_EQ(0, std::memcmp(back.m.data(), s.m.data() + begin, static_cast<size_t>(end - begin) * 4));
    EXPECT_EQ(0, std::memcmp(back.v.data(), s.v.data() + begin, static_cast<size_t>(end - begin) * 4));
    EXPECT_EQ(0, std::memcmp(back.master.data(), s.master.data(), 192 * 4));
  }
  // A rank file that is missing is named.
  fs::remove(dir + "/optimizer-1-of-3.safetensors");
  EXPECT_NE(errorOf([&] { readCheckpoint(dir, tinyLayout(), 0, 64, false); }).find("optimizer-1-of-3.safetensors: missing"),
            std::string::npos);
}

namespace {

void flipLastByte(const std::string &path) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(-1, std::ios::end);
  char c = static_cast<char>(f.get());
  f.seekp(-1, std::ios::end);
  f.put(static_cast<char>(c ^ 0x5a));
}

}  // namespace

TEST(TrainCheckpoint, EveryReferenceFormResolves) {
  std::string run = freshDir("refs");
  for (int step : {4, 8, 12}) writeCheckpoint(run, randomSnapshot(step, step), 0);
  std::string c8 = run + "/checkpoints/8", c12 = run + "/checkpoints/12";
  EXPECT_EQ(resolveCheckpointRef(run).dir, c12);
  EXPECT_EQ(resolveCheckpointRef(run + "/").dir, c12);
  EXPECT_EQ(resolveCheckpointRef(run + "/checkpoints").dir, c12);
  EXPECT_EQ(resolveCheckpointRef(run + "/checkpoints/latest").dir, c12);  // the file the trainer prints
  EXPECT_EQ(resolveCheckpointRef(c8).dir, c8);
  EXPECT_EQ(resolveCheckpointRef(c8 + "/").dir, c8);
  EXPECT_EQ(resolveCheckpointRef(run + ":8").dir, c8);
  EXPECT_EQ(resolveCheckpointRef(run + ":008").dir, c8);
  EXPECT_EQ(resolveCheckpointRef(run + ":latest").dir, c12);
  CheckpointRef r = resolveCheckpointRef(run + ":4");
  EXPECT_EQ(r.step, 4);
  EXPECT_EQ(fs::path(r.runDir), fs::path(run));

  // What is wrong, and what it accepts.
  std::string e = errorOf([&] { resolveCheckpointRef(run + ":9"); });
  EXPECT_NE(e.find("no complete checkpoint of step 9"), std::string::npos) << e;
  EXPECT_NE(e.find("steps 4, 8, 12"), std::string::npos) << e;
  e = errorOf([&] { resolveCheckpointRef(run + "/nowhere:3"); });
  EXPECT_NE(e.find(run + "/nowhere: does not exist (the run directory of"), std::string::npos) << e;
  std::string plain = freshDir("refs_plain");
  std::ofstream(plain + "/notes.txt") << "x";
  e = errorOf([&] { resolveCheckpointRef(plain); });
  EXPECT_NE(e.find("neither state.json nor checkpoints/latest (it holds notes.txt)"), std::string::npos) << e;
  EXPECT_NE(e.find(kCheckpointRefForms), std::string::npos) << e;
  EXPECT_FALSE(findCheckpointRef(plain).has_value());  // e.g. a Hugging Face directory
  EXPECT_FALSE(findCheckpointRef(plain + "/notes.txt").has_value());  // e.g. a weights file
  e = errorOf([&] { resolveCheckpointRef(plain + "/notes.txt"); });
  EXPECT_NE(e.find("is a file of 1 bytes"), std::string::npos) << e;
  fs::create_directories(plain + "/checkpoints");  // a run that has not saved yet
  e = errorOf([&] { findCheckpointRef(plain); });
  EXPECT_NE(e.find("without a complete checkpoint yet"), std::string::npos) << e;
  std::ofstream(run + "/checkpoints/latest", std::ios::trunc) << "banana\n";
  e = errorOf([&] { resolveCheckpointRef(run); });
  EXPECT_NE(e.find("latest: does not name a checkpoint step ('banana')"), std::string::npos) << e;
}

TEST(TrainCheckpoint, ReadersVerifyWhatTheyReadAndWarnAboutTheRest) {
  std::string run = freshDir("readers");
  std::string dir = writeCheckpoint(run, randomSnapshot(5, 5), 0);
  CheckpointManifest m = readCheckpointManifest(dir);
  EXPECT_EQ(m.files.size(), 2u);
  EXPECT_TRUE(verifyCheckpointFiles(m, {"model.safetensors"}, "tlrun export").empty());
  // A truncated optimizer file: the weights' readers go on, saying so.
  fs::resize_file(dir + "/optimizer.safetensors", 100);
  std::vector<std::string> w = verifyCheckpointFiles(m, {"model.safetensors"}, "tlrun export");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find(dir + "/optimizer.safetensors: has 100 bytes"), std::string::npos) << w[0];
  EXPECT_NE(w[0].find("tlrun export does not read it, but the checkpoint cannot be resumed"), std::string::npos);
  // A damaged file that is read is an error, naming it.
  flipLastByte(dir + "/model.safetensors");
  std::string e = errorOf([&] { verifyCheckpointFiles(m, {"model.safetensors"}, "tlrun export"); });
  EXPECT_NE(e.find(dir + "/model.safetensors: checksum mismatch"), std::string::npos) << e;
  e = errorOf([&] { verifyCheckpointFiles(m, {"weights.bin"}, "x"); });
  EXPECT_NE(e.find("state.json: lists no weights.bin"), std::string::npos) << e;
  // Without checksums (ranks other than 0) sizes are still checked.
  e = errorOf([&] { readCheckpoint(dir, tinyLayout(), 0, -1, false); });
  EXPECT_NE(e.find("optimizer.safetensors: has 100 bytes"), std::string::npos) << e;
}

TEST(TrainCheckpoint, ListingShowsEveryCheckpointAndWhatIsDamaged) {
  std::string run = freshDir("listing");
  for (int step : {3, 6, 9}) {
    Snapshot s = randomSnapshot(step, step);
    s.state.loss = 1.0 + step / 10.0;
    writeCheckpoint(run, s, 0);
  }
  CheckpointListing l = listCheckpoints(run, false);
  ASSERT_EQ(l.entries.size(), 3u);
  EXPECT_TRUE(listingIntact(l));
  EXPECT_EQ(l.entries[0].step, 3);
  EXPECT_DOUBLE_EQ(l.entries[1].loss, 1.6);
  EXPECT_TRUE(l.entries[2].latest);
  EXPECT_FALSE(l.entries[0].latest);
  EXPECT_EQ(l.entries[0].savedAt.size(), 20u);  // 2026-12-07T04:30:12Z
  EXPECT_GT(l.entries[0].bytes, fs::file_size(run + "/checkpoints/3/model.safetensors"));
  std::string table = formatListing(l, false);
  EXPECT_NE(table.find("3 checkpoints"), std::string::npos) << table;
  EXPECT_NE(table.find("ok (latest)"), std::string::npos) << table;
  EXPECT_NE(table.find("--resume=" + run + ":9"), std::string::npos) << table;

  // A flipped byte is found only by --verify; a truncation by either.
  flipLastByte(run + "/checkpoints/9/optimizer.safetensors");
  fs::resize_file(run + "/checkpoints/3/model.safetensors", 10);
  l = listCheckpoints(run, false);
  EXPECT_FALSE(listingIntact(l));
  EXPECT_FALSE(l.entries[0].problems.empty());
  EXPECT_TRUE(l.entries[2].problems.empty());
  l = listCheckpoints(run, true);
  EXPECT_TRUE(l.entries[1].verified);
  ASSERT_EQ(l.entries[2].problems.size(), 1u);
  EXPECT_NE(l.entries[2].problems[0].find("optimizer.safetensors: checksum mismatch"), std::string::npos);
  table = formatListing(l, true);
  EXPECT_NE(table.find("DAMAGED (latest)"), std::string::npos) << table;
  EXPECT_NE(table.find("--resume=" + run + ":6"), std::string::npos) << table;  // the newest intact one
  nlohmann::json j = listingJson(l);
  EXPECT_EQ(j["checkpoints"][1]["intact"], true);
  EXPECT_EQ(j["checkpoints"][2]["intact"], false);

  // Old checkpoints without a recorded loss take metrics.jsonl's.
  std::string old = freshDir("listing_old");
  writeCheckpoint(old, randomSnapshot(2, 2), 0);
  std::ofstream(old + "/metrics.jsonl") << "{\"step\": 1, \"loss\": 4.5}\n{\"step\": 2, \"loss\": 4.25}\n";
  EXPECT_DOUBLE_EQ(listCheckpoints(old, false).entries[0].loss, 4.25);
  std::string e = errorOf([&] { listCheckpoints(freshDir("listing_none"), false); });
  EXPECT_NE(e.find("has no checkpoints/ folder"), std::string::npos) << e;
}

// Saving and loading in chunks of any size gives the same files and values
// as whole-buffer writes: the bounded-memory path is the only path.
TEST(TrainCheckpoint, ChunkedSaveAndLoadAreExact) {
  std::string run = freshDir("chunks");
  Snapshot s = randomSnapshot(4, 11);
  std::string whole = writeCheckpoint(run, s, 0);
  for (int64_t chunk : {int64_t{1}, int64_t{7}, int64_t{64}, int64_t{1000}}) {
    std::string tmp = freshDir("chunks_" + std::to_string(chunk));
    writeModelFile(
        tmp, s.layout, [&](int64_t b, int64_t e, float *into) { std::copy(&s.master[b], &s.master[e], into); }, chunk);
    OptimizerPart part{"optimizer.safetensors", 0, 192};
    auto from = [](const std::vector<float> &x) {
      return [&x](int64_t b, int64_t e, float *into) { std::copy(&x[b], &x[e], into); };
    };
    writeOptimizerFile(tmp, part, from(s.m), from(s.v), chunk);
    for (const char *f : {"model.safetensors", "optimizer.safetensors"}) {
      std::ifstream a(whole + "/" + f, std::ios::binary), b(tmp + "/" + f, std::ios::binary);
      EXPECT_EQ(std::string(std::istreambuf_iterator<char>(a), {}), std::string(std::istreambuf_iterator<char>(b), {}))
          << f << " with chunk " << chunk;
    }
    Snapshot meta = readCheckpoint(whole, tinyLayout(), 50, 150, true, false);
    EXPECT_TRUE(meta.master.empty());
    std::vector<float> master(192, -1.0f), m(100, -1.0f), v(100, -1.0f);
    readMasterChunks(whole, meta, {0, 192},
                     [&](int64_t b, int64_t e, const float *x) { std::copy(x, x + (e - b), &master[b]); }, chunk);
    // A range (a zero=3 rank's shard) reads its elements only, once each.
    std::vector<int> seen(192, 0);
    readMasterChunks(whole, meta, {50, 150}, [&](int64_t b, int64_t e, const float *x) {
      for (int64_t i = b; i < e; ++i) {
        seen[i] += 1;
        EXPECT_EQ(x[i - b], s.master[i]) << i;
      }
    }, chunk);
    for (int64_t i = 0; i < 192; ++i) {
      bool inTensor = i < 60 || (i >= 64 && i < 70) || (i >= 128 && i < 188);
      ASSERT_EQ(seen[i], inTensor && i >= 50 && i < 150) << i << " with chunk " << chunk;
    }
    readMomentChunks(
        whole, meta, 50, 150, [&](int64_t b, int64_t e, const float *x) { std::copy(x, x + (e - b), &m[b - 50]); },
        [&](int64_t b, int64_t e, const float *x) { std::copy(x, x + (e - b), &v[b - 50]); }, chunk);
    for (const TensorSlot &t : s.layout.tensors)
      for (int64_t i = t.offset; i < t.offset + t.numel; ++i) ASSERT_EQ(master[i], s.master[i]) << i;
    EXPECT_TRUE(std::equal(m.begin(), m.end(), s.m.begin() + 50));
    EXPECT_TRUE(std::equal(v.begin(), v.end(), s.v.begin() + 50));
  }
}

// Sharded weights (checkpoint_weights=sharded): three ranks' range files of
// the master weights instead of model.safetensors, listed in state.json
// (version 2); every reader gets the same values in the same pieces as from
// the full form, and a damaged or missing range file is refused naming it.
TEST(TrainCheckpoint, ShardedWeightsReadLikeFullOnes) {
  Snapshot s = randomSnapshot(8, 21);
  std::string full = writeCheckpoint(freshDir("sharded_full"), s, 0);
  s.weightParts = {{weightFileName(0, 3), 0, 64}, {weightFileName(1, 3), 64, 128}, {weightFileName(2, 3), 128, 192}};
  std::string run = freshDir("sharded"), dir = writeCheckpoint(run, s, 0);
  EXPECT_EQ(entries(dir), (std::vector<std::string>{"master-0-of-3.safetensors", "master-1-of-3.safetensors",
                                                     "master-2-of-3.safetensors", "optimizer.safetensors", "state.json"}));
  CheckpointManifest m = readCheckpointManifest(dir);
  EXPECT_EQ(m.state["version"], 2);
  EXPECT_EQ(readCheckpointManifest(full).state["version"], 1);  // older tlrun still reads full ones
  EXPECT_EQ(m.state["weights"][1], (nlohmann::json{{"file", "master-1-of-3.safetensors"}, {"begin", 64}, {"end", 128}}));
  EXPECT_EQ(checkpointWeightFiles(m).size(), 3u);
  EXPECT_EQ(verifyCheckpointWeights(dir, "tlrun export"), dir);
  EXPECT_EQ(verifyCheckpointWeights(full, "tlrun export"), full + "/model.safetensors");

  Snapshot back = readCheckpoint(dir, tinyLayout());
  EXPECT_EQ(0, std::memcmp(back.master.data(), s.master.data(), 192 * 4));
  EXPECT_EQ(0, std::memcmp(back.m.data(), s.m.data(), 192 * 4));
  // All of it, and a range across the range files' boundary (a zero=3 shard).
  for (tlc::Range want : {tlc::Range{0, 192}, tlc::Range{37, 150}})
    for (int64_t chunk : {int64_t{1}, int64_t{7}, int64_t{100}}) {
      std::vector<std::pair<int64_t, int64_t>> pieces[2];
      std::vector<float> values[2];
      for (int form = 0; form < 2; ++form)
        readMasterChunks(form ? dir : full, readCheckpoint(form ? dir : full, tinyLayout(), 0, -1, true, false), want,
                         [&](int64_t b, int64_t e, const float *x) {
                           pieces[form].push_back({b, e});
                           values[form].insert(values[form].end(), x, x + (e - b));
                         }, chunk);
      EXPECT_EQ(pieces[0], pieces[1]) << chunk;
      EXPECT_EQ(values[0], values[1]) << chunk;
      EXPECT_EQ(pieces[1].front().first, std::max<int64_t>(want.begin, 0)) << chunk;
      EXPECT_EQ(pieces[1].back().second, std::min<int64_t>(want.end, 188)) << chunk;
    }
  CheckpointWeights w = CheckpointWeights::open(dir);
  EXPECT_TRUE(w.sharded());
  std::vector<float> head = w.values("lm_head.weight", {10, 6});
  EXPECT_TRUE(std::equal(head.begin(), head.end(), s.master.begin() + 128));
  EXPECT_EQ(head, CheckpointWeights::open(full).values("lm_head.weight", {10, 6}));
  std::string e = errorOf([&] { w.values("lm_head.weight", {6, 10}); });
  EXPECT_NE(e.find(dir + "/state.json: tensor 'lm_head.weight' has shape [10, 6] but the model needs [6, 10]"),
            std::string::npos) << e;

  // Written in chunks, a range file is byte-identical to a whole write.
  std::string tmp = freshDir("sharded_chunks");
  writeWeightFile(tmp, s.weightParts[1], [&](int64_t b, int64_t e, float *into) { std::copy(&s.master[b], &s.master[e], into); }, 5);
  std::ifstream a(dir + "/master-1-of-3.safetensors", std::ios::binary), b(tmp + "/master-1-of-3.safetensors", std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(a), {}), std::string(std::istreambuf_iterator<char>(b), {}));

  // Damage: a flipped byte is refused by every verifying reader, a missing
  // or truncated file even without checksums; each names the file.
  flipLastByte(dir + "/master-1-of-3.safetensors");
  e = errorOf([&] { verifyCheckpointWeights(dir, "tlrun export"); });
  EXPECT_NE(e.find(dir + "/master-1-of-3.safetensors: checksum mismatch"), std::string::npos) << e;
  e = errorOf([&] { readCheckpoint(dir, tinyLayout()); });
  EXPECT_NE(e.find(dir + "/master-1-of-3.safetensors: checksum mismatch"), std::string::npos) << e;
  CheckpointListing l = listCheckpoints(run, true);
  ASSERT_EQ(l.entries.size(), 1u);
  EXPECT_EQ(l.entries[0].weightFiles.size(), 3u);
  ASSERT_EQ(l.entries[0].problems.size(), 1u);
  EXPECT_NE(l.entries[0].problems[0].find("master-1-of-3.safetensors: checksum mismatch"), std::string::npos);
  EXPECT_NE(formatListing(l, true).find("3 ranges"), std::string::npos);
  fs::resize_file(dir + "/master-2-of-3.safetensors", 50);
  e = errorOf([&] { CheckpointWeights::open(dir); });
  EXPECT_NE(e.find(dir + "/master-2-of-3.safetensors: has 50 bytes"), std::string::npos) << e;
  fs::remove(dir + "/master-0-of-3.safetensors");
  e = errorOf([&] { readCheckpoint(dir, tinyLayout(), 0, 64, false); });
  EXPECT_NE(e.find(dir + "/master-0-of-3.safetensors: missing"), std::string::npos) << e;

  // Ranges that leave a gap are refused naming state.json.
  std::string gap = writeCheckpoint(freshDir("sharded_gap"), s, 0);
  m.state["weights"].erase(1);
  std::ofstream(gap + "/state.json", std::ios::trunc) << m.state.dump(2);
  e = errorOf([&] { readCheckpointWeights(gap); });
  EXPECT_NE(e.find(gap + "/state.json: the weight ranges cover 128 of 192 elements"), std::string::npos) << e;
}
