#!/usr/bin/env python3
"""Keeps docs/cli.md's --help blocks equal to the tools' --help output.

Each block in the doc is a marker line `<!-- help: tlc emit -->` followed by
a fenced block; its content must be exactly what `tlc emit --help` prints.
  cli_docs.py DOC            check (exit 1 with a diff when a block is stale)
  cli_docs.py DOC --update   rewrite the blocks in place
The tools are found on PATH (build/tools).
"""
import difflib
import re
import subprocess
import sys

MARKER = re.compile(r"^<!-- help: (.+?) -->\n```\n(.*?)```\n", re.M | re.S)


def main():
    doc, update = sys.argv[1], "--update" in sys.argv[2:]
    text = open(doc).read()
    stale, seen = [], 0

    def fresh(match):
        nonlocal seen
        seen += 1
        command = match.group(1).split()
        proc = subprocess.run(command + ["--help"], capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"cli_docs: '{' '.join(command)} --help' exited {proc.returncode}")
        if proc.stdout != match.group(2):
            stale.append("".join(difflib.unified_diff(
                match.group(2).splitlines(True), proc.stdout.splitlines(True),
                f"{doc} ({match.group(1)})", f"{match.group(1)} --help")))
        return f"<!-- help: {match.group(1)} -->\n```\n{proc.stdout}```\n"

    new = MARKER.sub(fresh, text)
    if seen == 0:
        sys.exit(f"cli_docs: no '<!-- help: ... -->' blocks in {doc}")
    if update:
        open(doc, "w").write(new)
        print(f"cli_docs: {len(stale)} of {seen} blocks updated")
        return
    if stale:
        sys.stdout.write("".join(stale))
        sys.exit(f"cli_docs: {len(stale)} of {seen} --help blocks in {doc} are stale; "
                 f"run tools/cli_docs.py {doc} --update")
    print(f"cli_docs: {seen} --help blocks match")


if __name__ == "__main__":
    main()
