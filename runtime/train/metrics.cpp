#include "runtime/train/metrics.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace tlc::train {
namespace {

[[noreturn]] void fail(const std::string &path, const std::string &what) { throw std::runtime_error(path + ": " + what); }

std::string fmt(const char *format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v);
  return buf;
}

}  // namespace

MetricsLog::MetricsLog(const std::string &path, bool resume, int64_t keepThrough) : path_(path) {
  std::string kept;
  if (resume) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.value("step", int64_t{0}) <= keepThrough) kept += line + "\n";
    }
  }
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  FILE *f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(path, std::string("cannot create: ") + std::strerror(errno));
  bool ok = std::fwrite(kept.data(), 1, kept.size(), f) == kept.size() && std::fflush(f) == 0;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::fclose(f);
    std::remove(tmp.c_str());
    fail(path, std::string("cannot write: ") + std::strerror(errno));
  }
  file_ = f;  // the renamed file, positioned at its end
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::append(const nlohmann::json &entry) {
  std::string line = entry.dump() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
    fail(path_, std::string("cannot append: ") + std::strerror(errno));
}

std::string formatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  long s = std::lround(seconds);
  char buf[48];
  if (s >= 86400) std::snprintf(buf, sizeof(buf), "%ldd %ld:%02ld:%02ld", s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
  else std::snprintf(buf, sizeof(buf), "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

std::string progressLine(const nlohmann::json &e, int64_t totalSteps, double elapsed, double eta) {
  std::string s = "step " + std::to_string(e.at("step").get<int64_t>()) + "/" + std::to_string(totalSteps);
  s += " | loss " + fmt("%.4f", e.at("loss").get<double>());
  if (e.contains("val_loss")) {
    s += " | val " + fmt("%.4f", e.at("val_loss").get<double>());
    if (e.contains("source_val_loss")) {  // a mixture's sources
      std::string per;
      for (const auto &[name, v] : e["source_val_loss"].items()) per += (per.empty() ? "" : " ") + name + " " + fmt("%.4f", v.get<double>());
      s += " (" + per + ")";
    }
  }
  if (e.contains("source_tokens")) {  // each source's share of the tokens so far
    double total = 0;
    for (const auto &[name, v] : e["source_tokens"].items()) total += v.get<double>();
    std::string per;
    for (const auto &[name, v] : e["source_tokens"].items())
      per += (per.empty() ? "" : " ") + name + " " + fmt("%.1f%%", total > 0 ? 100 * v.get<double>() / total : 0.0);
    s += " | " + per;
  }
  for (const auto &[key, v] : e.items())  // downstream evaluation: eval_<task>_acc_norm
    if (key.rfind("eval_", 0) == 0 && key.size() > 9 && key.compare(key.size() - 9, 9, "_acc_norm") == 0 && v.is_number())
      s += " | " + key.substr(5, key.size() - 14) + " " + fmt("%.3f", v.get<double>());
  s += " | lr " + fmt("%.3e", e.at("lr").get<double>());
  s += " | norm " + fmt("%.4f", e.at("grad_norm").get<double>());
  double tps = e.at("tokens_per_s").get<double>();
  s += " | " + (tps >= 1e4 ? fmt("%.1fk", tps / 1e3) : fmt("%.0f", tps)) + " tok/s";
  if (e.contains("mfu")) s += " | MFU " + fmt("%.1f%%", 100 * e.at("mfu").get<double>());
  if (e.contains("comm_s")) s += " | comm " + fmt("%.1f", 1e3 * e.at("comm_s").get<double>()) + " ms/step";
  if (e.value("skipped", false)) s += " | SKIPPED (non-finite)";
  s += " | " + formatDuration(elapsed) + " elapsed, ETA " + formatDuration(eta);
  return s;
}

namespace {

struct Series {
  std::string name, color;
  std::vector<std::pair<double, double>> points;
};

// Round tick steps (1, 2, 5 x 10^k) covering [lo, hi].
std::vector<double> ticks(double lo, double hi, int target) {
  double span = hi - lo;
  if (!(span > 0)) return {lo};
  double raw = span / target, mag = std::pow(10, std::floor(std::log10(raw)));
  double step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
  std::vector<double> out;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push_back(std::fabs(t) < step * 1e-9 ? 0 : t);
  return out;
}

std::string label(double v) {
  char buf[32];
  double a = std::fabs(v);
  if (a != 0 && (a < 1e-2 || a >= 1e6)) std::snprintf(buf, sizeof(buf), "%.1e", v);
  else std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

std::string escape(const std::string &s) {
  std::string out;
  for (char c : s) out += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
  return out;
}

// One panel: axes, grid, ticks and polylines, at (x0, y0) of size w x h.
void panel(std::ostream &svg, double x0, double y0, double w, double h, const std::string &ylabel,
           const std::vector<Series> &series, double xmin, double xmax) {
  double ymin = INFINITY, ymax = -INFINITY;
  for (const Series &s : series)
    for (auto [x, y] : s.points) ymin = std::min(ymin, y), ymax = std::max(ymax, y);
  if (!std::isfinite(ymin)) ymin = 0, ymax = 1;
  if (ymax - ymin < 1e-12 * std::max(1.0, std::fabs(ymax))) ymin -= 0.5 * std::max(std::fabs(ymin), 1e-9), ymax += 0.5 * std::max(std::fabs(ymax), 1e-9);
  double pad = 0.05 * (ymax - ymin);
  ymin -= pad, ymax += pad;
  if (xmax <= xmin) xmax = xmin + 1;
  auto X = [&](double x) { return x0 + (x - xmin) / (xmax - xmin) * w; };
  auto Y = [&](double y) { return y0 + h - (y - ymin) / (ymax - ymin) * h; };
  svg << "<rect x='" << x0 << "' y='" << y0 << "' width='" << w << "' height='" << h
      << "' fill='white' stroke='#444'/>\n";
  for (double t : ticks(ymin, ymax, 6)) {
    svg << "<line x1='" << x0 << "' x2='" << x0 + w << "' y1='" << Y(t) << "' y2='" << Y(t) << "' stroke='#ddd'/>";
    svg << "<text x='" << x0 - 6 << "' y='" << Y(t) + 4 << "' text-anchor='end'>" << label(t) << "</text>\n";
  }
  for (double t : ticks(xmin, xmax, 8)) {
    svg << "<line x1='" << X(t) << "' x2='" << X(t) << "' y1='" << y0 << "' y2='" << y0 + h << "' stroke='#eee'/>";
    svg << "<text x='" << X(t) << "' y='" << y0 + h + 16 << "' text-anchor='middle'>" << label(t) << "</text>\n";
  }
  svg << "<text transform='translate(" << x0 - 58 << "," << y0 + h / 2 << ") rotate(-90)' text-anchor='middle'>"
      << escape(ylabel) << "</text>\n";
  double legendY = y0 + 16;
  for (const Series &s : series) {
    if (s.points.empty()) continue;
    svg << "<polyline fill='none' stroke='" << s.color << "' stroke-width='1.5' points='";
    for (auto [x, y] : s.points) svg << X(x) << "," << Y(y) << " ";
    svg << "'/>\n";
    if (s.points.size() == 1)
      svg << "<circle cx='" << X(s.points[0].first) << "' cy='" << Y(s.points[0].second) << "' r='3' fill='" << s.color << "'/>\n";
    svg << "<line x1='" << x0 + w - 150 << "' x2='" << x0 + w - 126 << "' y1='" << legendY - 4 << "' y2='" << legendY - 4
        << "' stroke='" << s.color << "' stroke-width='2'/><text x='" << x0 + w - 120 << "' y='" << legendY << "'>"
        << escape(s.name) << "</text>\n";
    legendY += 18;
  }
}

}  // namespace

void writePlot(const std::string &metricsPath, const std::string &svgPath, const std::string &title) {
  std::ifstream in(metricsPath);
  if (!in) fail(metricsPath, "cannot read (is this a run directory?)");
  Series loss{"train loss", "#1f77b4", {}}, val{"validation loss", "#d62728", {}}, lr{"learning rate", "#2ca02c", {}};
  std::string line;
  double xmin = INFINITY, xmax = -INFINITY;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number())
      fail(metricsPath + ":" + std::to_string(number), "not a metrics entry (a JSON object with a step)");
    double step = j["step"].get<double>();
    xmin = std::min(xmin, step), xmax = std::max(xmax, step);
    auto add = [&](Series &s, const char *key) {
      if (j.contains(key) && j[key].is_number() && std::isfinite(j[key].get<double>())) s.points.push_back({step, j[key].get<double>()});
    };
    add(loss, "loss"), add(val, "val_loss"), add(lr, "lr");
  }
  if (!std::isfinite(xmin)) fail(metricsPath, "holds no entries to plot");
  std::ostringstream svg;
  double W = 900, H = 640;
  svg << "<?xml version='1.0' encoding='UTF-8'?>\n<svg xmlns='http://www.w3.org/2000/svg' width='" << W
      << "' height='" << H << "' viewBox='0 0 " << W << " " << H
      << "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='#fafafa'/>\n";
  svg << "<text x='" << W / 2 << "' y='24' text-anchor='middle' font-size='16'>" << escape(title) << "</text>\n";
  panel(svg, 90, 44, W - 120, 330, "loss", {loss, val}, xmin, xmax);
  panel(svg, 90, 420, W - 120, 170, "learning rate", {lr}, xmin, xmax);
  svg << "<text x='" << 90 + (W - 120) / 2 << "' y='" << H - 12 << "' text-anchor='middle'>step</text>\n</svg>\n";
  std::string text = svg.str(), tmp = svgPath + ".tmp." + std::to_string(getpid());
  FILE *f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(svgPath, std::string("cannot create: ") + std::strerror(errno));
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok &= std::fclose(f) == 0;
  if (!ok || std::rename(tmp.c_str(), svgPath.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail(svgPath, std::string("cannot write: ") + std::strerror(errno));
  }
}

double flopsPerToken(int64_t parameters, int64_t embeddingParameters, int64_t layers, int64_t dim, int64_t seq) {
  return 6.0 * static_cast<double>(parameters - embeddingParameters) +
         12.0 * static_cast<double>(layers) * static_cast<double>(dim) * static_cast<double>(seq);
}

double peakFlops(const std::string &device, bool bf16) {
  struct Gpu {
    const char *name;
    double bf16, tf32;
  };
  for (Gpu g : {Gpu{"H200", 989e12, 494e12}, Gpu{"H100", 989e12, 494e12}, Gpu{"A100", 312e12, 156e12}})
    if (device.find(g.name) != std::string::npos) return bf16 ? g.bf16 : g.tf32;
  return 0;
}

double modelFlopsUtilisation(double tokensPerSecond, double flopsPerToken, double peakPerDevice, int world) {
  return peakPerDevice > 0 && world > 0 ? tokensPerSecond * flopsPerToken / (peakPerDevice * world) : 0;
}

}  // namespace tlc::train
