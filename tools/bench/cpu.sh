#!/usr/bin/env bash
# tlc's CPU runtime vs eager PyTorch: a training step (tlrun train, default) or
# forward + backward (--mode fwd-bwd), tiny and a wider model; see
# tools/bench/cpu_vs_torch.py --help. Usage: tools/bench/cpu.sh [options]
set -euo pipefail
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 tools/bench/cpu_vs_torch.py "$@"
