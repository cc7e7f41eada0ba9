// metrics.jsonl (fresh and resumed), the progress line and the SVG plot.
#include "runtime/train/metrics.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

using namespace tlc::train;

namespace {
std::string readAll(const std::string &path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}
}  // namespace

TEST(TrainMetrics, ResumeDropsTheAbandonedTail) {
  std::string path = ::testing::TempDir() + "metrics.jsonl";
  {
    MetricsLog log(path, false, 0);
    for (int s = 1; s <= 5; ++s) log.append({{"step", s}, {"loss", 5.0 - s}});
  }
  {
    MetricsLog log(path, true, 3);
    log.append({{"step", 4}, {"loss", 0.5}});
  }
  std::string text = readAll(path);
  EXPECT_EQ(text, "{\"loss\":4.0,\"step\":1}\n{\"loss\":3.0,\"step\":2}\n{\"loss\":2.0,\"step\":3}\n{\"loss\":0.5,\"step\":4}\n");
  { MetricsLog fresh(path, false, 0); }
  EXPECT_EQ(readAll(path), "");
}

TEST(TrainMetrics, ProgressLine) {
  nlohmann::json e = {{"step", 7}, {"loss", 3.25}, {"val_loss", 3.5}, {"lr", 4e-4}, {"grad_norm", 0.75}, {"tokens_per_s", 12345.0}};
  std::string line = progressLine(e, 100, 65, 3600 * 25 + 1);
  EXPECT_EQ(line, "step 7/100 | loss 3.2500 | val 3.5000 | lr 4.000e-04 | norm 0.7500 | 12.3k tok/s | 0:01:05 elapsed, ETA 1d 1:00:01");
}

TEST(TrainMetrics, PlotDrawsEverySeries) {
  std::string dir = ::testing::TempDir();
  {
    MetricsLog log(dir + "/m.jsonl", false, 0);
    for (int s = 1; s <= 20; ++s) {
      nlohmann::json e = {{"step", s}, {"loss", 6.0 / s}, {"lr", 1e-3 * s / 20}, {"grad_norm", 1.0}, {"tokens_per_s", 1.0}};
      if (s % 5 == 0) e["val_loss"] = 7.0 / s;
      log.append(e);
    }
  }
  writePlot(dir + "/m.jsonl", dir + "/plot.svg", "run");
  std::string svg = readAll(dir + "/plot.svg");
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("train loss"), std::string::npos);
  EXPECT_NE(svg.find("validation loss"), std::string::npos);
  EXPECT_NE(svg.find("learning rate"), std::string::npos);
  size_t polylines = 0;
  for (size_t at = 0; (at = svg.find("<polyline", at)) != std::string::npos; ++at) ++polylines;
  EXPECT_EQ(polylines, 3u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);

  std::ofstream(dir + "/bad.jsonl") << "{\"step\": 1, \"loss\": 2}\nnot json\n";
  try {
    writePlot(dir + "/bad.jsonl", dir + "/bad.svg", "x");
    FAIL() << "no error";
  } catch (const std::runtime_error &e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2"), std::string::npos) << e.what();
  }
}

TEST(TrainMetrics, ModelFlopsUtilisationMatchesTheTinyLlamaPaper) {
  // TinyLlama 1.1B (DESIGN.md): 24,000 tokens/s per A100-40G in bf16 is
  // "56% MFU" in the paper's code; the estimate must land near it.
  int64_t d = 2048, ffn = 5632, vocab = 32000, layers = 22, kvDim = 256;
  int64_t perLayer = d * d * 2 + d * kvDim * 2 + 3 * d * ffn + 2 * d;
  int64_t parameters = layers * perLayer + 2 * vocab * d + d;
  EXPECT_EQ(parameters, 1100048384);  // the paper's 1.1B
  double f = flopsPerToken(parameters, vocab * d, layers, d, 2048);
  EXPECT_NEAR(f, 6.0 * (1100048384 - 32000 * 2048) + 12.0 * 22 * 2048 * 2048, 1.0);
  double a100 = peakFlops("NVIDIA A100-SXM4-40GB", /*bf16=*/true);
  EXPECT_EQ(a100, 312e12);
  double mfu = modelFlopsUtilisation(24000.0, f, a100, 1);
  EXPECT_NEAR(mfu, 0.56, 0.01);
  // 16 GPUs at 16x the tokens/s: the same utilisation.
  EXPECT_DOUBLE_EQ(modelFlopsUtilisation(16 * 24000.0, f, a100, 16), mfu);
  EXPECT_EQ(peakFlops("NVIDIA H100 80GB HBM3", false), 494e12);
  EXPECT_EQ(peakFlops("cpu (2 threads)", true), 0.0);
  EXPECT_EQ(modelFlopsUtilisation(1000.0, f, 0.0, 1), 0.0);
}
