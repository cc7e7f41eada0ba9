#include "runtime/data/prepare.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "runtime/data/litpkd.h"
#include "runtime/data/shard_writer.h"
#include "runtime/data/sources.h"
#include "runtime/data/tokenizer.h"
#include "cli/inputs.h"

namespace tlc::data {
namespace fs = std::filesystem;

namespace {
constexpr size_t kSampleLines = 1'000'000;     // tokenizer training sample...
constexpr size_t kSampleLineBytes = 1024;      // ...of lines cut to this size
constexpr size_t kBatchBytes = 1 << 20;        // text per encoding work item

std::string mb(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1e6);
  return buf;
}

// One progress line on stderr, redrawn in place on a terminal and printed
// every 10 s otherwise.
class Progress {
public:
  Progress(bool enabled, std::string what, uint64_t total)
      : enabled_(enabled), tty_(isatty(2)), what_(std::move(what)), total_(total),
        start_(Clock::now()), last_(start_) {}
  void update(uint64_t done, const std::string &extra) {
    auto now = Clock::now();
    if (!enabled_ || now - last_ < std::chrono::seconds(tty_ ? 1 : 10)) return;
    last_ = now;
    print(done, extra, tty_ ? "\r" : "\n");
  }
  void finish(uint64_t done, const std::string &extra) {
    if (enabled_) print(done, extra, "\n");
  }

private:
  using Clock = std::chrono::steady_clock;
  void print(uint64_t done, const std::string &extra, const char *end) {
    double secs = std::chrono::duration<double>(Clock::now() - start_).count();
    std::fprintf(stderr, "%sprepare: %s %3.0f%% (%s of %s, %.1f MB/s)%s%s%s", tty_ ? "\r" : "",
                 what_.c_str(), total_ ? 100.0 * done / total_ : 100.0, mb(done).c_str(),
                 mb(total_).c_str(), secs > 0 ? done / 1e6 / secs : 0.0, extra.empty() ? "" : ", ",
                 extra.c_str(), tty_ && end[0] == '\r' ? "\x1b[K" : end);
    std::fflush(stderr);
  }
  bool enabled_, tty_;
  std::string what_;
  uint64_t total_;
  Clock::time_point start_, last_;
};

// Removes the temporary output directory unless it was committed.
struct TempDir {
  fs::path path;
  bool keep = false;
  ~TempDir() {
    std::error_code ec;
    if (!keep && !path.empty()) fs::remove_all(path, ec);
  }
};

// Removes `.OUT.prepare-PID` directories beside `out` whose process is gone
// (a prepare killed by SIGKILL, or before its cleanup ran).
void removeStaleTemporaries(const fs::path &parent, const std::string &outName) {
  std::string prefix = "." + outName + ".prepare-";
  std::error_code ec;
  for (const auto &e : fs::directory_iterator(parent, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    std::string pid = name.substr(prefix.size());
    if (pid.empty() || pid.size() > 9 || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (::kill(static_cast<pid_t>(std::stol(pid)), 0) == 0 || errno != ESRCH) continue;  // alive
    std::error_code rec;
    fs::remove_all(e.path(), rec);
  }
}

// On SIGINT or SIGTERM, removes the temporary directory and exits with
// 128 + the signal. The handler only writes the signal number to a pipe
// (async-signal-safe); a thread does the removal, after any commit in
// progress (`lock` is held while committing).
class InterruptCleanup {
public:
  InterruptCleanup(const fs::path &tmp, std::mutex &lock) : tmp_(tmp), lock_(lock) {
    if (::pipe(pipe_) != 0) return;
    writeEnd_.store(pipe_[1]);
    struct sigaction sa {};
    sa.sa_handler = onSignal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &oldInt_);
    ::sigaction(SIGTERM, &sa, &oldTerm_);
    watcher_ = std::thread([this] {
      unsigned char sig = 0;
      while (::read(pipe_[0], &sig, 1) < 0 && errno == EINTR) {}
      if (sig == 0) return;  // prepare finished
      std::lock_guard<std::mutex> held(lock_);
      std::error_code ec;
      fs::remove_all(tmp_, ec);
      std::fprintf(stderr, "\nprepare: interrupted (signal %d); removed %s\n", sig, tmp_.c_str());
      ::_exit(128 + sig);
    });
  }
  ~InterruptCleanup() {
    if (!watcher_.joinable()) return;
    ::sigaction(SIGINT, &oldInt_, nullptr);
    ::sigaction(SIGTERM, &oldTerm_, nullptr);
    unsigned char done = 0;
    while (::write(pipe_[1], &done, 1) < 0 && errno == EINTR) {}
    watcher_.join();
    writeEnd_.store(-1);
    ::close(pipe_[0]);
    ::close(pipe_[1]);
  }

private:
  static void onSignal(int sig) {
    int fd = writeEnd_.load();
    unsigned char b = static_cast<unsigned char>(sig);
    if (fd >= 0) (void)!::write(fd, &b, 1);
  }
  static inline std::atomic<int> writeEnd_{-1};
  fs::path tmp_;
  std::mutex &lock_;
  int pipe_[2] = {-1, -1};
  struct sigaction oldInt_ {}, oldTerm_ {};
  std::thread watcher_;
};

bool isShardFile(const fs::path &p) {
  std::string name = p.filename().string();
  return p.extension() == ".bin" &&
         (name.find("train") != std::string::npos || name.find("val") != std::string::npos);
}

// The output directory must not hold shards unless --force.
void checkOutput(const fs::path &out, bool force) {
  std::error_code ec;
  if (!fs::exists(out, ec)) return;
  if (!fs::is_directory(out)) throw Error(out.string() + ": exists and is not a directory");
  for (const auto &e : fs::directory_iterator(out)) {
    bool ours = isShardFile(e.path()) || e.path().filename() == "manifest.json";
    if (ours && !force)
      throw Error(out.string() + ": already holds prepared data (" + e.path().filename().string() +
                  "); pass --force to replace it");
  }
}

// Moves the finished files into `out`, then drops shards of an earlier run
// that the new data does not replace.
void commit(TempDir &tmp, const fs::path &out) {
  if (!fs::exists(out)) {
    fs::rename(tmp.path, out);
    tmp.keep = true;
    return;
  }
  std::vector<fs::path> fresh;
  for (const auto &e : fs::directory_iterator(tmp.path)) fresh.push_back(e.path().filename());
  for (const auto &name : fresh) fs::rename(tmp.path / name, out / name);
  for (const auto &e : fs::directory_iterator(out))
    if (isShardFile(e.path()) && std::find(fresh.begin(), fresh.end(), e.path().filename()) == fresh.end())
      fs::remove(e.path());
}

// Keeps a uniform sample of at most kSampleLines lines (reservoir sampling,
// fixed seed: the same input trains the same tokenizer).
class Reservoir {
public:
  void add(std::string_view line) {
    ++seen_;
    if (lines_.size() < kSampleLines) {
      bytes_ += line.size();
      lines_.emplace_back(line);
      return;
    }
    uint64_t j = rng_() % seen_;
    if (j < kSampleLines) {
      bytes_ += line.size() - lines_[j].size();
      lines_[j].assign(line);
    }
  }
  const std::vector<std::string> &lines() const { return lines_; }
  uint64_t seen() const { return seen_; }
  uint64_t bytes() const { return bytes_; }

private:
  std::vector<std::string> lines_;
  std::mt19937_64 rng_{20240520};
  uint64_t seen_ = 0, bytes_ = 0;
};

uint64_t totalBytes(const std::vector<InputFile> &files) {
  uint64_t n = 0;
  for (const auto &f : files) n += f.bytes;
  return n;
}

std::string trainOnSample(const std::vector<InputFile> &files, Format format, int vocab,
                          int threads, bool progress) {
  Reservoir sample;
  std::atomic<uint64_t> bytes{0};
  Progress bar(progress, "sampling text for the tokenizer", totalBytes(files));
  ChunkPolicy policy;
  readDocuments(files, format, policy, [&](Segment &&s) {
    splitTrainingLines(s.text, kSampleLineBytes, [&](std::string_view l) { sample.add(l); });
    bar.update(bytes, "");
  }, &bytes);
  bar.finish(bytes, std::to_string(sample.lines().size()) + " of " + std::to_string(sample.seen()) +
                        " lines sampled");
  if (progress)
    std::fprintf(stderr, "prepare: training a %d-piece BPE tokenizer on %s of text\n", vocab,
                 mb(sample.bytes()).c_str());
  return trainTokenizer(sample.lines(), vocab, threads);
}

// Text documents -> ids on all cores. A reader thread cuts the input into
// batches of segments, workers encode them, and the calling thread writes
// the results in input order; at most 2 batches per worker are in flight.
class EncodePipeline {
public:
  struct Batch {
    uint64_t seq = 0;
    uint64_t inputBytes = 0;  // input read up to the end of this batch, for progress
    std::vector<Segment> segments;
    std::vector<std::vector<int>> ids;
  };
  struct Stopped {};

  EncodePipeline(const Tokenizer &tok, int workers) : tok_(tok), maxInFlight_(2 * workers + 2) {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
  }
  ~EncodePipeline() {
    fail(nullptr);
    for (auto &t : threads_) t.join();
  }

  // Reader side.
  void submit(Batch &&b) {
    std::unique_lock<std::mutex> lock(m_);
    space_.wait(lock, [&] { return inFlight_ < maxInFlight_ || failed_; });
    if (failed_) throw Stopped{};
    b.seq = submitted_++;
    ++inFlight_;
    queue_.push_back(std::move(b));
    ready_.notify_one();
  }
  void close() {
    std::lock_guard<std::mutex> lock(m_);
    closed_ = true;
    ready_.notify_all();
    done_.notify_all();
  }
  void fail(std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(m_);
    if (e && !error_) error_ = e;
    failed_ = true;
    ready_.notify_all();
    done_.notify_all();
    space_.notify_all();
  }

  // Writer side: the next batch in input order; false at the end. Rethrows
  // the first error of the reader or a worker.
  bool next(Batch &out) {
    std::unique_lock<std::mutex> lock(m_);
    done_.wait(lock, [&] {
      return failed_ || finished_.count(taken_) || (closed_ && taken_ == submitted_);
    });
    if (error_) std::rethrow_exception(error_);
    if (failed_ || !finished_.count(taken_)) return false;
    out = std::move(finished_[taken_]);
    finished_.erase(taken_++);
    --inFlight_;
    space_.notify_one();
    return true;
  }

private:
  void work() {
    for (;;) {
      Batch b;
      {
        std::unique_lock<std::mutex> lock(m_);
        ready_.wait(lock, [&] { return failed_ || !queue_.empty() || closed_; });
        if (failed_ || queue_.empty()) return;
        b = std::move(queue_.front());
        queue_.pop_front();
      }
      try {
        b.ids.reserve(b.segments.size());
        for (const auto &s : b.segments) b.ids.push_back(tok_.encode(s.text));
        for (auto &s : b.segments) std::string().swap(s.text);  // keep docStart only
      } catch (...) {
        fail(std::current_exception());
        return;
      }
      std::lock_guard<std::mutex> lock(m_);
      finished_[b.seq] = std::move(b);
      done_.notify_all();
    }
  }

  const Tokenizer &tok_;
  size_t maxInFlight_;
  std::vector<std::thread> threads_;
  std::mutex m_;
  std::condition_variable ready_, done_, space_;
  std::deque<Batch> queue_;
  std::map<uint64_t, Batch> finished_;
  uint64_t submitted_ = 0, taken_ = 0;
  size_t inFlight_ = 0;
  bool closed_ = false, failed_ = false;
  std::exception_ptr error_;
};

// Whether SentencePiece puts a space (U+2581) before the text: then a cut at
// a space may drop that space (see Segment).
bool addsDummyPrefix(const Tokenizer &tok) {
  std::vector<int> ids = tok.encode("a");
  return !ids.empty() && tok.piece(ids[0]).rfind("\xE2\x96\x81", 0) == 0;
}

std::string stats(const ShardWriter &w) {
  return std::to_string(w.documents()) + " documents, " + std::to_string(w.tokens()) + " tokens";
}

void encodeDocuments(const std::vector<InputFile> &files, Format format, const Tokenizer &tok,
                     int threads, ShardWriter &writer, bool progress) {
  std::atomic<uint64_t> bytes{0};
  EncodePipeline pipeline(tok, threads);
  ChunkPolicy policy;
  policy.keepSpace = !addsDummyPrefix(tok);
  std::thread reader([&] {
    try {
      EncodePipeline::Batch batch;
      size_t batchBytes = 0;
      readDocuments(files, format, policy, [&](Segment &&s) {
        batchBytes += s.text.size() + 64;
        batch.segments.push_back(std::move(s));
        if (batchBytes >= kBatchBytes) {
          batch.inputBytes = bytes;
          pipeline.submit(std::move(batch));
          batch = {};
          batchBytes = 0;
        }
      }, &bytes);
      batch.inputBytes = bytes;
      if (!batch.segments.empty()) pipeline.submit(std::move(batch));
      pipeline.close();
    } catch (const EncodePipeline::Stopped &) {
    } catch (...) {
      pipeline.fail(std::current_exception());
    }
  });
  Progress bar(progress, "encoding", totalBytes(files));
  int bos = tok.bosId();
  try {
    EncodePipeline::Batch b;
    while (pipeline.next(b)) {
      for (size_t i = 0; i < b.ids.size(); ++i) {
        if (b.segments[i].docStart) writer.beginDocument(), writer.add(bos);
        writer.add(b.ids[i].data(), b.ids[i].size());
      }
      bar.update(b.inputBytes, stats(writer));
    }
  } catch (...) {
    pipeline.fail(nullptr);
    reader.join();
    throw;
  }
  reader.join();
  bar.finish(bytes, stats(writer));
}

// LITPKDS files hold BOS-separated documents already; each BOS starts one.
// TinyLlama's builder packs documents across chunk files and pads each
// builder's last chunk with BOS: a run of two or more BOS ending a file is
// that padding and dropped; a single BOS ending a file starts the document
// the next file continues. A file not starting with BOS continues the
// previous file's last document.
void convertPacked(const std::vector<InputFile> &files, int bos, ShardWriter &writer, bool progress) {
  std::atomic<uint64_t> bytes{0};
  Progress bar(progress, "converting", totalBytes(files));
  uint64_t pendingBos = 0;
  for (const auto &f : files) {
    try {
      readPackedTokens(f.path, [&](const int *ids, size_t n) {
        for (size_t i = 0; i < n; ++i) {
          if (ids[i] == bos) {
            ++pendingBos;
            continue;
          }
          if (writer.documents() == 0 && pendingBos == 0) writer.beginDocument();  // no BOS first
          for (; pendingBos > 0; --pendingBos) writer.beginDocument(), writer.add(bos);
          writer.add(ids[i]);
        }
        bar.update(bytes, stats(writer));
      }, &bytes);
    } catch (const Error &e) {
      std::string what = e.what();
      throw Error(what.rfind(f.path, 0) == 0 ? what : f.path + ": " + what);
    }
    if (pendingBos >= 2) pendingBos = 0;
  }
  bar.finish(bytes, stats(writer));
}
}  // namespace

Manifest prepare(const PrepareOptions &o) {
  if (o.inputs.empty()) throw Error("prepare needs --input");
  if (o.out.empty()) throw Error("prepare needs --out");
  if (o.tokenizer.empty() == (o.trainVocab == 0))
    throw Error("prepare needs exactly one of --tokenizer FILE and --train-tokenizer VOCAB_SIZE");
  if (o.trainVocab != 0 && (o.trainVocab < kMinTrainedVocab || static_cast<uint64_t>(o.trainVocab) > kMaxVocab))
    throw Error("--train-tokenizer must be in " + std::to_string(kMinTrainedVocab) + ".." + std::to_string(kMaxVocab) +
                ", got " + std::to_string(o.trainVocab));
  if (!(o.valFraction >= 0 && o.valFraction < 1))
    throw Error("--val-fraction must be in [0, 1), got " + std::to_string(o.valFraction));

  Format format = Format::Text;
  if (!o.format.empty()) format = parseFormat(o.format);
  else if (fs::is_regular_file(o.inputs[0]) && isPackedFile(o.inputs[0])) format = Format::Litpkd;
  if (format == Format::Litpkd && o.trainVocab)
    throw Error("LITPKDS files hold token ids already: give the --tokenizer that made them");

  fs::path out = fs::path(o.out).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();
  checkOutput(out, o.force);
  fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
  // Writable (the temporary directory goes beside it), before any work.
  inputs::expectWritableDirectory(out.string(), "--out");
  if (fs::is_directory(parent)) {
    inputs::expectWritableDirectory(parent.string(), "--out " + out.string() + ": its parent");
    removeStaleTemporaries(parent, out.filename().string());
  }
  TempDir tmp;
  tmp.path = parent / ("." + out.filename().string() + ".prepare-" + std::to_string(getpid()));
  std::vector<InputFile> files = listInputs(o.inputs, format, {out.string(), tmp.path.string()});
  int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  std::optional<Tokenizer> tok;
  if (o.trainVocab) {
    // Read the input (and validate it) before anything is written.
    tok = Tokenizer::fromBytes(trainOnSample(files, format, o.trainVocab, threads, o.progress),
                               "the trained tokenizer");
  } else {
    tok = Tokenizer::load(o.tokenizer);
    if (static_cast<uint64_t>(tok->vocabSize()) > kMaxVocab)
      throw Error(o.tokenizer + ": vocabulary of " + std::to_string(tok->vocabSize()) +
                  " pieces does not fit uint16 shards (at most " + std::to_string(kMaxVocab) + ")");
  }
  if (tok->bosId() < 0)
    throw Error((o.tokenizer.empty() ? std::string("tokenizer") : o.tokenizer) +
                ": the model has no BOS piece, which starts every document");

  std::mutex committing;
  InterruptCleanup onInterrupt(tmp.path, committing);
  std::error_code ec;
  fs::create_directories(parent, ec);
  fs::remove_all(tmp.path, ec);
  if (!ec) fs::create_directory(tmp.path, ec);
  if (ec) throw Error(out.string() + ": cannot create it (" + ec.message() + ")");  // names --out, not the temporary
  Manifest m;
  m.format = formatName(format);
  for (const auto &f : files) m.sources.push_back(f.path);
  m.tokenizerTrained = o.trainVocab > 0;
  if (m.tokenizerTrained) m.tokenizerSettings = tokenizerTrainingSettings(o.trainVocab);
  m.vocabSize = tok->vocabSize();
  m.bosId = tok->bosId(), m.eosId = tok->eosId(), m.unkId = tok->unkId(), m.padId = tok->padId();
  m.valFraction = o.valFraction;
  m.shardTokens = o.shardTokens;
  {
    std::ofstream t(tmp.path / m.tokenizerFile, std::ios::binary);
    t.write(tok->bytes().data(), static_cast<std::streamsize>(tok->bytes().size()));
    if (!t.flush()) throw Error(out.string() + ": writing " + m.tokenizerFile + " failed");
  }

  ShardWriter writer(tmp.path.string(), o.valFraction, o.shardTokens, m.vocabSize);
  if (format == Format::Litpkd) convertPacked(files, m.bosId, writer, o.progress);
  else encodeDocuments(files, format, *tok, threads, writer, o.progress);
  writer.finish();
  if (writer.documents() == 0) throw Error("the input holds no documents");
  m.shards = writer.shards();
  if (o.valFraction > 0 && m.documents("val") == 0)
    std::fprintf(stderr, "prepare: warning: no document went to validation (%llu documents, "
                         "--val-fraction %g)\n", (unsigned long long)writer.documents(), o.valFraction);
  writeManifest((tmp.path / "manifest.json").string(), m);
  std::lock_guard<std::mutex> held(committing);
  try {
    commit(tmp, out);
  } catch (const fs::filesystem_error &e) {
    throw Error(out.string() + ": cannot write the prepared data into it (" + e.code().message() + ")");
  }
  return m;
}

}  // namespace tlc::data
