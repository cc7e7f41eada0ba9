#include "formats/tokens.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>

namespace tk = tlc::tokens;

namespace {

std::string tempPath(const std::string &name) { return ::testing::TempDir() + "tl_tok_" + name; }

std::string errorOf(const std::string &path) {
  try {
    tk::readShard(path);
  } catch (const tk::Error &e) {
    return e.what();
  }
  return "";
}

TEST(TokenShard, RoundTripAndMicroBatchLayout) {
  std::mt19937 rng(7);
  std::vector<uint16_t> tokens(2 * 3 * 4 + 5);
  for (auto &t : tokens) t = static_cast<uint16_t>(rng() % 65536);
  std::string path = tempPath("a.bin");
  tk::writeShard(path, tokens);
  EXPECT_EQ(tk::readShard(path), tokens);

  // B=2, T=3: each micro-batch spans 7 tokens starting at k*6.
  EXPECT_EQ(tk::countMicroBatches(tokens.size(), 2, 3), 4u);  // (29 - 1) / 6
  tk::MicroBatch mb = tk::microBatch(tokens, 2, 2, 3);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(mb.inputs[i], tokens[12 + i]);
    EXPECT_EQ(mb.targets[i], tokens[13 + i]);
  }
  EXPECT_THROW(tk::microBatch(tokens, 4, 2, 3), tk::Error);
  EXPECT_EQ(tk::countMicroBatches(6, 2, 3), 0u);  // needs B*T+1
  EXPECT_EQ(tk::countMicroBatches(7, 2, 3), 1u);
}

TEST(TokenShard, RejectsBadFiles) {
  std::string p = tempPath("bad.bin");
  EXPECT_NE(errorOf(tempPath("missing.bin")).find("cannot open"), std::string::npos);
  { std::ofstream(p) << "short"; }
  EXPECT_NE(errorOf(p).find("shorter than"), std::string::npos);

  auto writeHeader = [&](int32_t magic, int32_t version, int32_t count, size_t tokens,
                         size_t extra) {
    std::ofstream out(p, std::ios::binary);
    int32_t header[256] = {magic, version, count};
    out.write(reinterpret_cast<char *>(header), sizeof(header));
    std::vector<uint16_t> data(tokens, 1);
    out.write(reinterpret_cast<char *>(data.data()), data.size() * 2);
    out.write("xxxxxxxx", static_cast<std::streamsize>(extra));
  };
  writeHeader(123, 1, 4, 4, 0);
  EXPECT_NE(errorOf(p).find("bad magic"), std::string::npos);
  writeHeader(tk::kShardMagic, 2, 4, 4, 0);
  EXPECT_NE(errorOf(p).find("version"), std::string::npos);
  writeHeader(tk::kShardMagic, 1, 10, 4, 0);
  EXPECT_NE(errorOf(p).find("fewer"), std::string::npos);
  writeHeader(tk::kShardMagic, 1, 4, 4, 3);
  EXPECT_NE(errorOf(p).find("trailing"), std::string::npos);
}

}  // namespace
