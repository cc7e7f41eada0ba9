#!/usr/bin/env bash
# tlc's CPU runtime vs eager PyTorch, forward + backward, tiny and a wider
# model; see tools/bench/cpu_vs_torch.py --help. Usage: tools/bench/cpu.sh [options]
set -euo pipefail
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 tools/bench/cpu_vs_torch.py "$@"
