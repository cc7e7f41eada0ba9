"""Runs the PyTorch anchor script (../shared/anchors/torch_baseline.py) with
its measurement plan cut to the eager configurations, so that the GPU
benchmark fits one device call. The script itself is not modified: its
source is executed with the `plan = [...]` statement replaced."""
import re
import sys

path = sys.argv[1]
source = open(path).read()
plan = re.compile(r"^plan = \[.*?\]\n", re.S | re.M)
if not plan.search(source):
    sys.exit(f"{path}: no 'plan = [...]' statement: the anchor script changed, update anchor_eager.py")
source = plan.sub('plan = [("llama-124m", 1024, 16, False), ("tinyllama-1.1b", 2048, 8, False)]\n', source)
exec(compile(source, path, "exec"), {"__name__": "__main__"})
