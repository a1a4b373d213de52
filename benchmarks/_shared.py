"""Helpers shared by the benchmark scripts: running jobs in isolated processes, and
regenerating one marked part of a Markdown file.

A part lives between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``; several scripts write
their own parts of the same file (docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing as mp
import os
import re
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait
from typing import Any, TypeVar

T = TypeVar("T")


def _child(conn: Any, fn: Callable[[Any], Any], item: Any) -> None:
    try:
        conn.send(("ok", fn(item)))
    except BaseException as e:  # reported, not lost with the process
        conn.send(("error", f"raised {type(e).__name__}: {e}"))
    finally:
        conn.close()


def run_forked(fn: Callable[[T], Any], items: Sequence[T], *, jobs: int,
               failed: Callable[[T, str], Any], limit: float | None = None,
               done: Callable[[T, Any], None] | None = None) -> list[Any]:
    """``fn(item)`` for each item, each in a fresh forked process, ``jobs`` at a time; the
    results in the order of ``items``. A process that raises, dies (a crash, or out of memory)
    or runs longer than ``limit`` seconds gives ``failed(item, why)`` instead, ``why`` starting
    with "raised", "died" or "timeout". ``done`` is called
    here with each result as it arrives. A fresh process per item keeps one item's imports and
    caches (a framework's compiled kernels) from piling up in the next."""
    ctx = mp.get_context("fork")
    pending = list(enumerate(items))
    running: dict[Any, tuple[Any, int, float]] = {}
    results: dict[int, Any] = {}

    def finish(i: int, result: Any) -> None:
        results[i] = result
        if done is not None:
            done(items[i], result)

    while pending or running:
        while pending and len(running) < max(1, jobs):
            i, item = pending.pop(0)
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(child, fn, item), daemon=True)
            proc.start()
            child.close()
            running[parent] = (proc, i, time.perf_counter())
        for conn in wait(list(running), timeout=1.0):
            proc, i, _ = running.pop(conn)
            try:
                status, value = conn.recv()  # type: ignore[union-attr]
            except EOFError:
                proc.join()
                status, value = "error", f"died (exit code {proc.exitcode})"
            proc.join()
            finish(i, value if status == "ok" else failed(items[i], value))
        now = time.perf_counter()
        for conn, (proc, i, started) in list(running.items()):
            if limit is not None and now - started > limit:
                proc.kill()
                proc.join()
                del running[conn]
                finish(i, failed(items[i], f"timeout: still running after {limit:.0f} s"))
    return [results[i] for i in range(len(items))]


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


@functools.lru_cache(maxsize=1)
def provenance() -> str:
    """The kit's version and, in a git checkout, its commit (and whether its code was changed).
    Cached: call it when a run starts, so that later edits to the checkout do not show."""
    import importlib.metadata
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    text = f"softmax-oracle {importlib.metadata.version('softmax-oracle')}"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here,
                                capture_output=True, text=True, check=True).stdout.strip()
        # Only the code counts: the benchmark scripts rewrite docs/ as they finish.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                "src", "benchmarks", "pyproject.toml"],
                               cwd=os.path.dirname(here), capture_output=True, text=True,
                               check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return text
    return f"{text} at commit {commit}" + (" with uncommitted changes" if dirty.strip() else "")


def versions(packages: Sequence[str]) -> str:
    """The kit's provenance, Python's version and those of the installed ``packages``."""
    import importlib.metadata
    import platform

    parts = [provenance(), f"Python {platform.python_version()}"]
    for pkg in packages:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            parts.append(f"{pkg} {importlib.metadata.version(pkg)}")
    return ", ".join(parts)
