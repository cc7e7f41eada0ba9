// What a run shows: the progress line, RUN_DIR/metrics.jsonl (one JSON
// object per logged step) and `tlrun plot`'s SVG.
#pragma once

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

// Reads RUN_DIR/metrics.jsonl and writes an SVG with train and validation
// loss and the learning rate against steps. Throws std::runtime_error naming
// the file on a malformed line or an empty log.
void writePlot(const std::string &metricsPath, const std::string &svgPath, const std::string &title);

}  // namespace tlc::train
