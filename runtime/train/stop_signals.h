// SIGINT/SIGTERM during `tlrun train`: the loop finishes its step, writes a
// checkpoint and exits. A second signal gets the default action (the
// checkpoint on disk is still the last complete one).
#pragma once

#include <signal.h>

namespace tlc::train {

// Installs the handlers for its lifetime (the previous ones come back after).
class StopSignals {
 public:
  // `announce`: say at once on stderr that the run will stop (rank 0).
  explicit StopSignals(bool announce);
  ~StopSignals();
  StopSignals(const StopSignals &) = delete;
  StopSignals &operator=(const StopSignals &) = delete;

  // The signal received since construction, 0 for none.
  static int received();

 private:
  struct sigaction oldInt_, oldTerm_;
};

}  // namespace tlc::train
