// What a run shows: the progress line, RUN_DIR/metrics.jsonl (one JSON
// object per logged step) and `tlrun plot`'s SVG.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

namespace tlc::train {

class MetricsLog {
 public:
  // A fresh run truncates the file; a resumed one keeps the entries up to
  // `keepThrough` (the checkpoint's step) and drops those of the abandoned
  // tail, rewriting the file atomically.
  MetricsLog(const std::string &path, bool resume, int64_t keepThrough);
  ~MetricsLog();
  void append(const nlohmann::json &entry);  // one line, flushed

 private:
  std::string path_;
  FILE *file_ = nullptr;
};

// "1:02:03" (or "2d 1:02:03").
std::string formatDuration(double seconds);
// The progress line of one logged entry (step, loss, val_loss, lr, grad_norm,
// tokens_per_s, mfu) with the total step count, elapsed time and ETA.
std::string progressLine(const nlohmann::json &entry, int64_t totalSteps, double elapsed, double eta);

// Model FLOPs of training on one token (forward and backward, no
// recomputation), PaLM's appendix B: 6 per parameter that multiplies (the
// input embedding is a lookup) plus attention's 12 * layers * dim * seq, not
// halved for causality. It gives the TinyLlama paper's 56% MFU at 24k
// tokens/s per A100; ../shared/anchors' script halves the attention term.
double flopsPerToken(int64_t parameters, int64_t embeddingParameters, int64_t layers, int64_t dim, int64_t seq);
// Peak dense FLOP/s of one GPU named in `device` (bf16, else TF32); 0 when
// the card is not known.
double peakFlops(const std::string &device, bool bf16);
// Model FLOPs utilisation of `world` devices training `tokensPerSecond`
// tokens together.
double modelFlopsUtilisation(double tokensPerSecond, double flopsPerToken, double peakPerDevice, int world);

// Reads RUN_DIR/metrics.jsonl and writes an SVG with train and validation
// loss and the learning rate against steps. Throws std::runtime_error naming
// the file on a malformed line or an empty log.
void writePlot(const std::string &metricsPath, const std::string &svgPath, const std::string &title);

}  // namespace tlc::train
