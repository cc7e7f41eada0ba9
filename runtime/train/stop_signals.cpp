#include "runtime/train/stop_signals.h"

#include <signal.h>
#include <unistd.h>

namespace tlc::train {
namespace {

volatile sig_atomic_t gStopSignal = 0;
bool gAnnounceStop = false;

void onStopSignal(int sig) {
  gStopSignal = sig;
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  if (gAnnounceStop) {  // write(2): async-signal-safe, unlike printf
    static const char message[] =
        "\ntlrun train: stopping after the current step, then writing a checkpoint (signal again to stop at once, "
        "losing the current step)\n";
    ssize_t ignored = write(STDERR_FILENO, message, sizeof message - 1);
    (void)ignored;
  }
}

}  // namespace

struct StopSignals::Saved {
  struct sigaction oldInt, oldTerm;
};

StopSignals::StopSignals(bool announce) : saved_(new Saved) {
  gStopSignal = 0;
  gAnnounceStop = announce;
  struct sigaction sa = {};
  sa.sa_handler = onStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &saved_->oldInt);
  sigaction(SIGTERM, &sa, &saved_->oldTerm);
}

StopSignals::~StopSignals() {
  sigaction(SIGINT, &saved_->oldInt, nullptr);
  sigaction(SIGTERM, &saved_->oldTerm, nullptr);
  delete saved_;
}

int StopSignals::received() { return static_cast<int>(gStopSignal); }

}  // namespace tlc::train
