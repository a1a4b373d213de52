"""Regenerate one marked part of a Markdown file, leaving the rest of it as it is.

A part lives between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``; several scripts write
their own parts of the same file (docs/benchmarks.md).
"""

from __future__ import annotations

import os
import re


def splice(path: str, name: str, body: str, heading: str) -> None:
    """Replace the part ``name`` of the file at ``path`` with ``body``.

    A missing file is created with a title; a file without the markers gets a new section
    ``## heading`` holding them at its end.
    """
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    text = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        if not text:
            text = "# Benchmarks\n"
        text = text.rstrip("\n") + f"\n\n## {heading}\n\n{block}\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text if text.endswith("\n") else text + "\n")


def provenance() -> str:
    """The kit's version and, in a git checkout, its commit (and whether files were changed)."""
    import importlib.metadata
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    text = f"softmax-oracle {importlib.metadata.version('softmax-oracle')}"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here,
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return text
    return f"{text} at commit {commit}" + (" with uncommitted changes" if dirty.strip() else "")
