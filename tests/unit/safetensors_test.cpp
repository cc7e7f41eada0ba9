#include "formats/half.h"
#include "formats/safetensors.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <sys/stat.h>

namespace st = tlc::safetensors;

namespace {

std::string tempPath(const std::string &name) {
  return ::testing::TempDir() + "tl_st_" + name;
}

void writeRaw(const std::string &path, const std::string &header, const std::string &data) {
  std::ofstream out(path, std::ios::binary);
  uint64_t len = header.size();
  out.write(reinterpret_cast<const char *>(&len), 8);
  out << header << data;
}

std::string errorOf(const std::string &path) {
  try {
    st::File::open(path);
  } catch (const st::Error &e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, RoundTripsEveryDtypeAndMetadata) {
  std::mt19937 rng(1234);
  std::normal_distribution<float> normal;
  std::vector<float> f32(3 * 5);
  for (float &x : f32) x = normal(rng);
  std::vector<double> f64(7);
  for (double &x : f64) x = normal(rng);
  std::vector<uint16_t> bf16(4);
  for (uint16_t &x : bf16) x = tlc::floatToBf16(normal(rng));
  std::vector<int32_t> i32 = {-3, 0, 7, 31999};

  std::string path = tempPath("roundtrip.safetensors");
  st::write(path,
            {{"a.weight", st::DType::F32, {3, 5}, f32.data()},
             {"b", st::DType::F64, {7}, f64.data()},
             {"c", st::DType::BF16, {2, 2}, bf16.data()},
             {"ids", st::DType::I32, {4}, i32.data()}},
            {{"format", "pt"}});
  st::File f = st::File::open(path);
  ASSERT_EQ(f.tensors().size(), 4u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const st::TensorInfo &a = f.get("a.weight");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(0, std::memcmp(f.data(a), f32.data(), f32.size() * 4));
  std::vector<double> b = f.toDoubles(f.get("b"));
  EXPECT_EQ(b, f64);
  std::vector<double> c = f.toDoubles(f.get("c"));
  for (size_t i = 0; i < c.size(); ++i) EXPECT_EQ(c[i], tlc::bf16ToFloat(bf16[i]));
  std::vector<double> ids = f.toDoubles(f.get("ids"));
  EXPECT_EQ(ids, (std::vector<double>{-3, 0, 7, 31999}));
  EXPECT_EQ(f.find("missing"), nullptr);
  EXPECT_THROW(f.get("missing"), st::Error);
}

TEST(Safetensors, RejectsCorruptFiles) {
  std::string p = tempPath("bad.safetensors");
  EXPECT_NE(errorOf(tempPath("does-not-exist")).find("cannot open"), std::string::npos);

  { std::ofstream(p) << "abc"; }
  EXPECT_NE(errorOf(p).find("too short"), std::string::npos);

  {
    std::ofstream out(p, std::ios::binary);
    uint64_t len = 1 << 20;
    out.write(reinterpret_cast<const char *>(&len), 8);
    out << "{}";
  }
  EXPECT_NE(errorOf(p).find("exceeds the file size"), std::string::npos);

  writeRaw(p, "{not json", "");
  EXPECT_NE(errorOf(p).find("malformed JSON"), std::string::npos);

  writeRaw(p, R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "1234");
  EXPECT_NE(errorOf(p).find("outside"), std::string::npos);

  writeRaw(p, R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "12345678");
  EXPECT_NE(errorOf(p).find("need 12"), std::string::npos);

  writeRaw(p, R"({"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", "12345678");
  EXPECT_NE(errorOf(p).find("unsupported dtype"), std::string::npos);

  writeRaw(p,
           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
           "123456789012");
  EXPECT_NE(errorOf(p).find("overlap"), std::string::npos);

  writeRaw(p, R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", "12345678");
  EXPECT_NE(errorOf(p).find("not a size"), std::string::npos);

  writeRaw(p, R"([1,2])", "");
  EXPECT_NE(errorOf(p).find("not a JSON object"), std::string::npos);
}

TEST(Safetensors, FailedWriteKeepsExistingOutput) {
  std::string dir = tempPath("dir-target");
  mkdir(dir.c_str(), 0755);
  float x = 1.0f;
  // Renaming a file over a directory fails: the directory must survive and
  // no temporary file may be left behind.
  EXPECT_THROW(st::write(dir, {{"x", st::DType::F32, {1}, &x}}), st::Error);
  struct stat s;
  ASSERT_EQ(stat(dir.c_str(), &s), 0);
  EXPECT_TRUE(S_ISDIR(s.st_mode));
  EXPECT_THROW(st::write(tempPath("no/such/dir/x.safetensors"), {{"x", st::DType::F32, {1}, &x}}),
               st::Error);
  EXPECT_THROW(st::write(tempPath("dup.safetensors"),
                         {{"x", st::DType::F32, {1}, &x}, {"x", st::DType::F32, {1}, &x}}),
               st::Error);
}

TEST(Half, Bf16RoundsToNearestEven) {
  EXPECT_EQ(tlc::floatToBf16(1.0f), 0x3f80);
  // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties to even (1).
  EXPECT_EQ(tlc::floatToBf16(1.0f + 1.0f / 256), 0x3f80);
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even.
  EXPECT_EQ(tlc::floatToBf16(1.0f + 3.0f / 256), 0x3f82);
  EXPECT_EQ(tlc::bf16ToFloat(0xc0490fdb >> 16), -3.140625f);
  EXPECT_TRUE(std::isnan(tlc::bf16ToFloat(tlc::floatToBf16(NAN))));
}

TEST(Half, F16ConvertsNormalsSubnormalsAndOverflow) {
  EXPECT_EQ(tlc::floatToF16(1.0f), 0x3c00);
  EXPECT_EQ(tlc::floatToF16(-2.0f), 0xc000);
  EXPECT_EQ(tlc::floatToF16(65504.0f), 0x7bff);
  EXPECT_EQ(tlc::floatToF16(1e6f), 0x7c00);
  EXPECT_EQ(tlc::floatToF16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(tlc::floatToF16(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(tlc::f16ToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(tlc::f16ToFloat(0x3555), 0.333251953125f);
  // Every f16 value survives a round trip through float.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if (((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff)) continue;  // NaNs
    ASSERT_EQ(tlc::floatToF16(tlc::f16ToFloat(static_cast<uint16_t>(h))), h) << h;
  }
}

}  // namespace
