#!/usr/bin/env python3
"""Checks that every folder includes only what docs/architecture.md ("Folders")
says it may: the project's own headers by prefix, and no MLIR/LLVM outside
the compiler side. Prints each offending #include with its file and line and
exits 1; run by ctest as `layering`."""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# folder -> prefixes of "..." includes it may use (its own folder always).
# MLIR/LLVM headers ("mlir/", "llvm/") only where marked with MLIR.
MLIR = ("mlir/", "llvm/")
RULES = {
    "formats": ["formats/"],
    "cli": ["formats/"],
    "dialects": ["dialects/", *MLIR],
    "models": ["dialects/", "formats/", *MLIR],
    "compiler/Passes": ["dialects/", *MLIR],
    "compiler/Evaluator": ["dialects/", "formats/", *MLIR],
    "compiler/Codegen": ["compiler/Passes/", "dialects/", "formats/", *MLIR],
    "compiler/Verify": ["compiler/Evaluator/", "compiler/Passes/", "dialects/", *MLIR],
    "compiler/Driver": ["compiler/", "dialects/", "models/", "formats/", "cli/",
                        "runtime/cuda/nvrtc.h", *MLIR],
    "runtime/exec": ["formats/"],
    "runtime/cpu": ["runtime/exec/", "formats/"],
    "runtime/cuda": ["runtime/exec/", "formats/"],
    "runtime/comm": ["runtime/cuda/driver.h", "runtime/exec/", "formats/"],
    "runtime/data": ["cli/", "formats/"],
    "runtime/train": ["runtime/comm/", "runtime/exec/", "runtime/hf/", "cli/", "formats/"],
    "runtime/hf": ["runtime/train/", "cli/", "formats/"],
    "runtime/generate": ["runtime/data/", "runtime/exec/", "runtime/hf/", "runtime/train/",
                         "cli/", "formats/"],
    "runtime/eval": ["runtime/exec/", "runtime/train/training_state.h", "runtime/train/checkpoint_ref.h",
                     "runtime/train/checkpoint_weights.h", "cli/", "formats/"],
    "runtime/evaluate": ["runtime/exec/", "runtime/data/", "runtime/train/checkpoint_ref.h",
                         "runtime/train/run_info.h", "runtime/train/periodic.h", "runtime/train/config.h",
                         "runtime/hf/init_weights.h", "cli/", "formats/"],
    "runtime": ["runtime/exec/", "runtime/comm/", "formats/"],
}
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')
SOURCES = (".h", ".cpp", ".cuh", ".inc")


def owner(path):
    """The most specific folder of RULES holding `path`."""
    best = None
    for folder in RULES:
        if path.startswith(folder + "/") and (best is None or len(folder) > len(best)):
            best = folder
    return best


def main():
    bad = []
    for folder in sorted(set(f.split("/")[0] for f in RULES)):
        for dirpath, _, names in os.walk(os.path.join(ROOT, folder)):
            for name in names:
                if not name.endswith(SOURCES):
                    continue
                path = os.path.relpath(os.path.join(dirpath, name), ROOT)
                rule = owner(path)
                if rule is None:
                    bad.append(f"{path}: its folder has no rule in tools/check_layering.py")
                    continue
                allowed = (rule + "/", *RULES[rule])
                with open(os.path.join(ROOT, path), errors="replace") as f:
                    for line_no, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m or "/" not in m.group(1):
                            continue  # same-directory and generated-in-place includes
                        inc = m.group(1)
                        # Headers TableGen/the build write for this folder.
                        if inc.startswith(rule + "/"):
                            continue
                        if not any(inc.startswith(p) for p in allowed):
                            bad.append(f"{path}:{line_no}: includes \"{inc}\", which {rule}/ may not")
    for b in bad:
        print(b)
    if bad:
        print(f"{len(bad)} include(s) break the layering of docs/architecture.md")
        return 1
    print("layering: every include is allowed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
