"""Runs a command, echoes its stdout and stderr, and fails unless it exits
with the expected code: `expect_exit.py CODE CMD ARGS...`. lit's `not`
accepts any non-zero code; the CLI promises 0 (and --help), 1 (failure) and
2 (usage error)."""
import subprocess
import sys

want = int(sys.argv[1])
proc = subprocess.run(sys.argv[2:], capture_output=True, text=True)
sys.stdout.write(proc.stdout)
sys.stdout.write(proc.stderr)
if proc.returncode != want:
    sys.exit(f"expect_exit: {sys.argv[2]} exited {proc.returncode}, expected {want}")
