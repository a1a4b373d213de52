"""``softmax-oracle report``: every claim against every target and dtype, through the scheduler.

Each target is first described in a worker process (a framework that is not installed, or a
target that cannot be loaded, is listed as skipped with the reason); then every applicable
(target, dtype, claim) is one job, the costliest first, each in a supervised worker process
(``--jobs``, default one per core; ``--executor dask://HOST:PORT`` for a cluster). A crash, exit,
hang or memory blow-up of a target is an "error" verdict for that one claim, with the input, and
the rest of the report goes on. The results are put back in catalogue order, so the output does
not depend on which job finished first. Ctrl-C or SIGTERM stops the run within seconds and keeps
what finished (``ReportData.complete`` is then False).

Python API::

    from softmax_oracle.report import write_report
    data = write_report("softmax-oracle-report", ["numpy", "naive"], dtypes=["float32"],
                        profile="quick")
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, TextIO

from softmax_oracle.engine.check import (
    RunInterrupted,
    flush_notes,
    plan_claims,
    validate_dtypes,
    validate_kinds,
    validate_run_options,
)
from softmax_oracle.engine.jobs import ClaimJob, Describe, TargetInfo, estimate_cost, here
from softmax_oracle.engine.profiles import choose_seed, get_profile, validate_level
from softmax_oracle.engine.results import CheckReport, ClaimResult
from softmax_oracle.engine.scheduler import Interrupted, Scheduler
from softmax_oracle.engine.search import versions
from softmax_oracle.report import html, markdown, svg
from softmax_oracle.report.files import check_writable_dir, write_atomic
from softmax_oracle.report.views import DEFAULT_TARGETS, ReportData, Skipped, fmt_seconds
from softmax_oracle.spec.claims import KINDS, select

__all__ = ["Progress", "report_command", "run_report", "save_report", "write_report"]


class Progress:
    """Claims done, targets done, refuted so far and time left, as one updating line on a
    terminal; silent when ``enabled`` is false."""

    def __init__(self, stream: TextIO, enabled: bool, total: int, pairs: int) -> None:
        self.stream, self.enabled = stream, enabled
        self.total, self.pairs = total, pairs
        self.done = self.refuted = self.pairs_done = 0
        self.start = time.perf_counter()
        self._last = 0.0

    def claim(self, verdict: str, pair_finished: bool) -> None:
        self.done += 1
        self.refuted += verdict == "refuted"
        self.pairs_done += pair_finished
        self.show(force=pair_finished)

    def show(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        done, elapsed = self.done, now - self.start
        left = f"~{fmt_seconds(elapsed / done * (self.total - done))} left" if done else ""
        msg = (f"[report] {done}/{self.total} claims, {self.pairs_done}/{self.pairs} "
               f"target/dtype done, {self.refuted} refuted, {fmt_seconds(elapsed)} elapsed "
               f"{left}")
        self.stream.write("\r" + msg[:110].ljust(110))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 110 + "\r")
            self.stream.flush()


def _progress_enabled(stream: TextIO) -> bool:
    return bool(stream.isatty()) and not os.environ.get("CI")


def run_report(targets: Sequence[str] | None = None, *,
               dtypes: Sequence[str] = ("float64", "float32"), level: str = "stable",
               claims: str | None = None, profile: str = "default", seed: int | None = None,
               jobs: int | None = None, timeout: float = 30.0, progress: bool | None = None,
               stream: TextIO | None = None, command: str = "",
               executor: str | Executor | None = None,
               memory_limit: int | None = None,
               kinds: Sequence[str] | str | None = None) -> ReportData:
    """Run every selected claim against every target and dtype; see the module docstring.
    ``kinds`` limits the claims to these kinds (``spec.claims.KINDS``; default all).

    ``timeout`` is the deadline of each call of a target. ``progress``: None shows it only on a
    terminal (and not under CI). On Ctrl-C raises ``RunInterrupted`` whose ``report`` is the
    ``ReportData`` of what finished."""
    validate_level(level)
    prof = get_profile(profile)
    dtypes_ = validate_dtypes(dtypes)
    dts = [d.name for d in dtypes_]
    workers = os.cpu_count() or 1 if jobs is None else jobs
    validate_run_options(timeout=timeout, jobs=workers)
    only = validate_kinds(kinds)
    chosen = select(claims, level=level, kinds=only or KINDS)
    if not chosen:
        kind = f" of kind {', '.join(only)}" if only else ""
        raise ValueError(f"--claim {claims!r} matches no claim{kind} at level {level!r}; "
                         f"see `softmax-oracle claims`")
    names = list(dict.fromkeys(targets or DEFAULT_TARGETS))
    seed = choose_seed(prof, seed)
    where = here()
    out = stream if stream is not None else sys.stderr
    show = _progress_enabled(out) if progress is None else progress
    start = time.perf_counter()
    results: dict[str, list[ClaimResult | None]] = {}
    infos: dict[str, TargetInfo] = {}
    complete = True
    with Scheduler(executor, workers, memory_limit) as sched:
        try:
            described = sched.run([Describe(**where, target=n, dtypes=tuple(dts))
                                   for n in names])
        except Interrupted:
            raise RunInterrupted(None) from None
        work: list[tuple[str, int, ClaimJob]] = []
        for name, info in zip(names, described):
            infos[name] = info
            if info.error:
                continue
            mine = [c for c in chosen if c.kind != "mathematics" or info.is_reference]
            rows: list[ClaimResult | None] = []
            for dt, claim, res in plan_claims(info, name, mine, dtypes_, level, seed):
                if res is None:
                    work.append((name, len(rows), ClaimJob(
                        **where, target=name, target_name=name, claim_id=claim.id,
                        dtype=dt.name, level=level, profile=prof, seed=seed,
                        flushes=info.flushes.get(dt.name, False), timeout=timeout,
                        cost=estimate_cost(claim, name))))
                rows.append(res)
            results[name] = rows
        left = {(n, j.dtype): 0 for n, _, j in work}
        for n, _, j in work:
            left[(n, j.dtype)] += 1
        prog = Progress(out, show, len(work), len(left))
        prog.show(force=True)

        def on_done(k: int, res: ClaimResult) -> None:
            name, row, job = work[k]
            results[name][row] = res
            left[(name, job.dtype)] -= 1
            prog.claim(res.verdict, left[(name, job.dtype)] == 0)

        try:
            sched.run([job for _, _, job in work], on_done=on_done)
        except Interrupted:
            complete = False
        finally:
            prog.close()
    reports = [CheckReport(target=name, target_version=infos[name].version, level=level,
                           profile=prof.name, seed=seed, dtypes=tuple(dts),
                           results=tuple(r for r in rows if r is not None),
                           seconds=sum(r.seconds for r in rows if r is not None),
                           versions=versions(), notes=flush_notes(infos[name], dtypes_),
                           complete=complete)
               for name, rows in results.items() if rows]
    skipped = [Skipped(name, info.error) for name, info in infos.items() if info.error]
    vers = versions(frameworks=True)
    data = ReportData(
        kit_version=vers.get("softmax-oracle", ""),
        generated=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        profile=prof.name, level=level, seed=seed, seconds=time.perf_counter() - start,
        versions=vers, targets=tuple(reports), skipped=tuple(skipped), dtypes=tuple(dts),
        claims=claims, jobs=workers,
        command=command or report_command(targets, dts, level=level, claims=claims,
                                          profile=prof.name, seed=seed, kinds=only),
        complete=complete)
    if not complete:
        raise RunInterrupted(data)
    return data


def report_command(targets: Sequence[str] | None, dtypes: Sequence[str], *, level: str,
                   claims: str | None, profile: str, seed: int,
                   kinds: Sequence[str] | None = None) -> str:
    """The command line that runs the same report again (same seed)."""
    parts = ["softmax-oracle", "report", *(targets or ())]
    parts += ["--dtype", ",".join(dtypes), "--profile", profile]
    if level != "stable":
        parts += ["--level", level]
    if claims:
        parts += ["--claim", claims]
    if kinds:
        parts += ["--kind", ",".join(kinds)]
    parts += ["--seed", str(seed)]
    return " ".join(shlex.quote(p) for p in parts)


def save_report(data: ReportData, out: str | os.PathLike[str]) -> dict[str, Path]:
    """Write index.html, report.md, plots/*.svg and results.json into ``out``, each file
    atomically (``OutputPathError`` if ``out`` cannot be written)."""
    check_writable_dir(out, "out")
    root = Path(out)
    (root / "plots").mkdir(parents=True, exist_ok=True)
    paths = {
        "html": root / "index.html",
        "markdown": root / "report.md",
        "json": root / "results.json",
    }
    plots = svg.plots(data)
    for name, body in plots.items():
        p = root / "plots" / f"{name}.svg"
        write_atomic(p, body)
        paths[f"plot:{name}"] = p
    write_atomic(paths["html"], html.render(data, plots))
    write_atomic(paths["markdown"], markdown.render(data, sorted(plots)))
    write_atomic(paths["json"], json.dumps(data.to_json(), indent=1, allow_nan=False) + "\n")
    return paths


def write_report(out: str | os.PathLike[str] = "softmax-oracle-report",
                 targets: Sequence[str] | None = None, **kwargs: Any) -> ReportData:
    """Run the report (``run_report`` takes the keyword arguments) and write its files
    (``out`` is checked first: ``OutputPathError`` before the run if it cannot be written)."""
    check_writable_dir(out, "out")
    data = run_report(targets, **kwargs)
    save_report(data, out)
    return data
