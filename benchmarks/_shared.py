"""Helpers shared by the benchmark scripts: running jobs in supervised worker processes (the
kit's own scheduler), and regenerating one marked part of a Markdown file.

A part lives between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``; several scripts write
their own parts of the same file (docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def run_jobs(fn: Callable[[T], Any], items: Sequence[T], *, jobs: int,
             failed: Callable[[T, str], Any], limit: float | None = None,
             done: Callable[[T, Any], None] | None = None) -> list[Any]:
    """``fn(item)`` for each item through the kit's scheduler, each in a fresh supervised worker
    process, ``jobs`` at a time; the results in the order of ``items``. An item whose call
    raises, whose process dies (a crash, or out of memory) or that runs longer than ``limit``
    seconds gives ``failed(item, why)`` instead, ``why`` starting with "raised", "died" or
    "timeout". ``done(item, result)`` is called here as each result arrives. A fresh process
    per item keeps one item's imports and caches (a framework's compiled kernels) from piling
    up in the next.

    ``fn`` and the items travel to the worker by pickling, so ``fn`` must be a top-level
    function of a module the worker can import: not one of a script run as ``python x.py``,
    whose functions live in ``__main__`` (the scripts run their ``main`` from their own module
    for that reason). Always on this machine, whatever ``$SOFTMAX_ORACLE_EXECUTOR`` says: the
    results quote its cores and load."""
    from softmax_oracle.engine.jobs import CallFailed, CallJob, here
    from softmax_oracle.engine.scheduler import Interrupted, Scheduler

    where = here()
    calls = [CallJob(**where, function=fn, argument=item, timeout=limit or 0.0)
             for item in items]
    results: list[Any] = [None] * len(items)
    finished: set[int] = set()

    def finish(i: int, answer: Any) -> None:
        results[i] = failed(items[i], answer.why) if isinstance(answer, CallFailed) else answer
        finished.add(i)
        if done is not None:
            done(items[i], results[i])

    with Scheduler("local", jobs=max(1, jobs)) as scheduler:
        try:
            answers = scheduler.run(calls, on_done=finish)
        except Interrupted as e:  # Ctrl-C, or ``done`` raised: that, not the scheduler's wrapper
            raise (e.__cause__ or e) from None
    for i in sorted(set(range(len(items))) - finished):  # fn returned None: no on_done for it
        finish(i, answers[i])
    return results


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


def produced_by(command: str, wall: float, versions_text: str, load: tuple[float, float],
                effect: str = "", after_wall: str = "") -> str:
    """The sentence that opens a benchmark's section: the command, its wall time, the machine,
    the versions, and the load average at the start and the end, said to be above the cores
    (with ``effect``, what that does to the figures) when it was."""
    cores = os.cpu_count() or 1
    busy = max(load) > cores + 0.5
    return (f"Produced by `{command.strip()}`: {wall:.0f} s wall{after_wall} on {cores} cores "
            f"({platform.machine()}, {platform.system()}), {versions_text}. Load average "
            f"{load[0]:.1f} at the start and {load[1]:.1f} at the end"
            + (f" (above the {cores} cores: other work shared the machine"
               + (f", {effect}" if effect else "") + ")" if busy else "") + ".")
