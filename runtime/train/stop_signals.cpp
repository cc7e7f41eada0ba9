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

StopSignals::StopSignals(bool announce) {
  gStopSignal = 0;
  gAnnounceStop = announce;
  struct sigaction sa = {};
  sa.sa_handler = onStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &oldInt_);
  sigaction(SIGTERM, &sa, &oldTerm_);
}

StopSignals::~StopSignals() {
  sigaction(SIGINT, &oldInt_, nullptr);
  sigaction(SIGTERM, &oldTerm_, nullptr);
}

int StopSignals::received() { return static_cast<int>(gStopSignal); }

}  // namespace tlc::train
