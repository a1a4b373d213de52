"""``softmax-oracle report``: every claim against every target, written as one offline HTML page,
a Markdown page and a JSON file of every result record.

The run is split into jobs, one per (target, dtype, function) with each mathematics claim a job of
its own, and the jobs run in worker processes (``--jobs``, default: one per core). Frameworks are
imported only in the workers; a target that cannot be loaded there is listed as skipped, with the
reason. A job that raises, whose worker process dies, or that runs past its time limit becomes
"error" rows for its claims, and the rest of the report goes on. The results are put back in
catalogue order, so the output does not depend on which job finished first.

Python API::

    from softmax_oracle.report.build import write_report
    data = write_report("softmax-oracle-report", ["numpy", "naive"], dtypes=["float32"],
                        profile="quick")

Files written into the output directory: ``index.html`` (self-contained), ``report.md`` (with
the plots as ``plots/*.svg``) and ``results.json`` (schema: ``docs/results.schema.json``).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import datetime as _dt
import importlib.metadata
import math
import multiprocessing
import os
import random
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from softmax_oracle.engine.results import SCHEMA_VERSION, CheckReport, ClaimResult, Counterexample
from softmax_oracle.oracle.dtypes import get_dtype
from softmax_oracle.spec.claims import CLAIMS, Claim, get_claim, select

__all__ = [
    "ACCURACY_CLAIMS",
    "DEFAULT_TARGETS",
    "ReportData",
    "Skipped",
    "load_results",
    "report_command",
    "run_report",
    "save_report",
    "summary_text",
    "write_report",
]

#: The targets a report covers when none are named; the framework ones only if they load.
DEFAULT_TARGETS: tuple[str, ...] = ("reference", "seed", "numpy", "naive", "scipy", "torch",
                                    "jax", "optax")

#: Optional packages whose versions the report records (read from metadata, not imported).
_FRAMEWORK_PACKAGES = ("scipy", "torch", "jax", "jaxlib", "optax", "ml_dtypes")

#: The accuracy table: function -> the claims that compare it with the reference.
ACCURACY_CLAIMS: dict[str, tuple[str, ...]] = {
    "softmax": ("softmax.matches_reference",),
    "log_softmax": ("log_softmax.matches_reference",),
    "logsumexp": ("logsumexp.matches_reference",),
    "softmax_vjp": ("softmax_vjp.matches_reference",),
    "cross_entropy": ("cross_entropy.matches_reference",),
    "cross_entropy_grad": ("cross_entropy_grad.normalised_targets",
                           "cross_entropy_grad.any_targets"),
    "dense_grads": ("dense_grads.dW", "dense_grads.db", "dense_grads.dx"),
}

_ORDER = {c.id: i for i, c in enumerate(CLAIMS)}


# =============================================================================== the data


@dataclass(frozen=True)
class Skipped:
    """A target that could not be loaded, and why."""

    target: str
    reason: str


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows: one merged ``CheckReport`` per target, and what was run."""

    kit_version: str
    generated: str  # ISO 8601, UTC
    profile: str
    level: str
    seed: int
    seconds: float  # wall time
    versions: dict[str, str]
    targets: tuple[CheckReport, ...]
    skipped: tuple[Skipped, ...] = ()
    dtypes: tuple[str, ...] = ()
    claims: str | None = None
    jobs: int = 1
    command: str = ""

    @property
    def results(self) -> list[ClaimResult]:
        return [r for t in self.targets for r in t.results]

    def result(self, target: str, dtype: str, claim_id: str) -> ClaimResult | None:
        return self._index().get((target, dtype, claim_id))

    def _index(self) -> dict[tuple[str, str, str], ClaimResult]:
        cache = self.__dict__.get("_cache")
        if cache is None:
            cache = {(r.target, r.dtype, r.claim_id): r for r in self.results}
            object.__setattr__(self, "_cache", cache)
        return cache

    def claim_ids(self) -> list[str]:
        """Every claim with a result, in catalogue order."""
        seen = {r.claim_id for r in self.results}
        known = [c.id for c in CLAIMS if c.id in seen]
        return known + sorted(seen - set(known))

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kit_version": self.kit_version,
            "generated": self.generated,
            "profile": self.profile,
            "level": self.level,
            "seed": self.seed,
            "seconds": round(self.seconds, 3),
            "dtypes": list(self.dtypes),
            "claims": self.claims,
            "jobs": self.jobs,
            "command": self.command,
            "versions": dict(self.versions),
            "targets": [_json_safe(t.to_json()) for t in self.targets],
            "skipped": [{"target": s.target, "reason": s.reason} for s in self.skipped],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ReportData:
        return cls(
            kit_version=d["kit_version"], generated=d["generated"], profile=d["profile"],
            level=d["level"], seed=d["seed"], seconds=float(d["seconds"]),
            versions=dict(d["versions"]),
            targets=tuple(_report_from_json(t) for t in d["targets"]),
            skipped=tuple(Skipped(s["target"], s["reason"]) for s in d.get("skipped", ())),
            dtypes=tuple(d.get("dtypes") or sorted({r["dtype"] for t in d["targets"]
                                                    for r in t["results"]})),
            claims=d.get("claims"), jobs=int(d.get("jobs", 1)), command=d.get("command", ""))


def _json_safe(x: Any) -> Any:
    """Non-finite floats as the strings "inf", "-inf", "nan" (JSON has no infinity)."""
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    return x


def _num(x: float | str) -> float:
    return float(x)  # "inf" and "-inf" parse as floats


def _cex_from_json(d: dict[str, Any] | None) -> Counterexample | None:
    if d is None:
        return None
    return Counterexample(dict(d["inputs"]), d["problem"], _num(d["ratio"]),
                          tuple(d.get("regime", ())))


def _result_from_json(d: dict[str, Any]) -> ClaimResult:
    return ClaimResult(
        claim_id=d["claim_id"], target=d["target"], dtype=d["dtype"], level=d["level"],
        verdict=d["verdict"], expected=d.get("expected", "holds"), examples=d.get("examples", 0),
        seed=d.get("seed"), seconds=d.get("seconds", 0.0), reason=d.get("reason", ""),
        max_ratio=_num(d.get("max_ratio", 0.0)), max_ulps=_num(d.get("max_ulps", 0.0)),
        shrunk=_cex_from_json(d.get("shrunk")), worst=_cex_from_json(d.get("worst")),
        reproduce=d.get("reproduce", ""))


def _report_from_json(d: dict[str, Any]) -> CheckReport:
    return CheckReport(
        target=d["target"], target_version=d["target_version"], level=d["level"],
        profile=d["profile"], seed=d["seed"], dtypes=tuple(d["dtypes"]),
        results=tuple(_result_from_json(r) for r in d["results"]), seconds=d["seconds"],
        versions=dict(d.get("versions", {})), notes=tuple(d.get("notes", ())))


def load_results(path: str | os.PathLike[str]) -> ReportData:
    """Read a ``results.json`` written by ``write_report`` (to render it again, for instance)."""
    import json

    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    if d.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {d.get('schema_version')!r}, but this "
                         f"softmax-oracle reads version {SCHEMA_VERSION}")
    return ReportData.from_json(d)


# =============================================================================== views shared by
# the HTML and Markdown renderers


def status(r: ClaimResult) -> str:
    """One of: verified, refuted, expected_refuted (a seed statement refuted, as the audit
    expects), unexpected_verified (expected to be refuted, no counterexample found),
    not_applicable, error."""
    if r.verdict == "refuted":
        return "expected_refuted" if r.expected == "refuted" else "refuted"
    if r.verdict == "verified" and r.expected == "refuted":
        return "unexpected_verified"
    return r.verdict


def columns(data: ReportData) -> list[tuple[str, str]]:
    """The (target, dtype) columns of the summary, in run order."""
    out: list[tuple[str, str]] = []
    for t in data.targets:
        present = {r.dtype for r in t.results}
        out.extend((t.target, dt) for dt in t.dtypes if dt in present)
    return out


def groups(data: ReportData) -> list[tuple[str, list[str]]]:
    """Claim ids grouped by function (the seed audit last), in catalogue order."""
    out: dict[str, list[str]] = {}
    for cid in data.claim_ids():
        out.setdefault(cid.split(".", 1)[0], []).append(cid)
    order = [*ACCURACY_CLAIMS, "seed"]
    return sorted(out.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99)


def claim_of(claim_id: str) -> Claim | None:
    try:
        return get_claim(claim_id)
    except KeyError:
        return None


def anchor(r: ClaimResult) -> str:
    """An HTML id for one result's details."""
    return "r-" + re.sub(r"[^A-Za-z0-9_-]+", "-", f"{r.target}-{r.dtype}-{r.claim_id}")


@dataclass(frozen=True)
class Accuracy:
    """One cell of the accuracy table: the worst error of a function on a target and dtype."""

    function: str
    target: str
    dtype: str
    verdict: str  # "verified", "refuted", "error", "not_applicable"
    max_ulps: float
    max_ratio: float
    examples: int
    claim_id: str  # the claim that saw the worst error
    worst: Counterexample | None
    result: ClaimResult | None


def accuracy(data: ReportData) -> list[Accuracy]:
    """The largest error per function, target and dtype, over the claims that compare the
    function with the reference (the ulps from examples within budget; the ratio from all)."""
    out = []
    for target, dtype in columns(data):
        for fn, ids in ACCURACY_CLAIMS.items():
            rs = [r for cid in ids if (r := data.result(target, dtype, cid)) is not None]
            if not rs:
                continue
            run = [r for r in rs if r.verdict in ("verified", "refuted")]
            if not run:
                verdict = "error" if any(r.verdict == "error" for r in rs) else "not_applicable"
                out.append(Accuracy(fn, target, dtype, verdict, 0.0, 0.0, 0, rs[0].claim_id,
                                    None, rs[0]))
                continue
            worst = max(run, key=lambda r: (r.verdict == "refuted", r.max_ratio))
            verdict = "refuted" if any(r.verdict == "refuted" for r in run) else "verified"
            out.append(Accuracy(fn, target, dtype, verdict, max(r.max_ulps for r in run),
                                worst.max_ratio, sum(r.examples for r in run), worst.claim_id,
                                worst.worst, worst))
    return out


_LITERAL_NUMBER = re.compile(r"-?np\.inf|np\.nan|-?\d+\.?\d*(?:e[-+]?\d+)?")


def magnitude(inputs: dict[str, str]) -> float | None:
    """The largest finite |entry| of the logits (or, for dense layers, of x) in a recorded
    input; -inf entries are masks, not magnitudes."""
    for key in ("z", "x"):
        if key in inputs:
            text = re.sub(r"dtype=\w+", "", inputs[key])
            vals = []
            for tok in _LITERAL_NUMBER.findall(text):
                v = math.inf if tok.endswith("inf") else math.nan if tok == "np.nan" else \
                    float(tok)
                if math.isfinite(v):
                    vals.append(abs(v))
            return max(vals) if vals else None
    return None


def refutations(data: ReportData) -> list[ClaimResult]:
    """Every refuted result, and every result not as the specification expects, in run order."""
    return [r for r in data.results if r.verdict in ("refuted", "error") or not r.as_expected]


def fmt_ratio(x: float) -> str:
    if math.isinf(x):
        return "∞"
    if x == 0:
        return "0"
    return f"{x:.2g}" if x >= 0.01 else f"{x:.1e}"


def fmt_ulps(x: float) -> str:
    if math.isinf(x):
        return "∞"
    if x == 0:
        return "0"
    if x < 10:
        return f"{x:.2g}"
    return f"{x:.3g}" if x < 1e4 else f"{x:.1e}"


def fmt_seconds(s: float) -> str:
    if s < 60:
        return f"{s:.1f} s"
    m, s = divmod(round(s), 60)
    return f"{m} min {s:02d} s"


def counts(results: Iterable[ClaimResult]) -> dict[str, int]:
    out = dict.fromkeys(("verified", "refuted", "expected_refuted", "unexpected_verified",
                         "not_applicable", "error"), 0)
    for r in results:
        out[status(r)] += 1
    return out


# =============================================================================== running


@dataclass(frozen=True)
class _Job:
    index: int
    target: str
    dtype: str
    claims: tuple[str, ...]
    level: str
    profile: str
    seed: int
    timeout: float
    cost: float


@dataclass(frozen=True)
class _Outcome:
    index: int
    status: str  # "ok", "skipped", "error"
    report: CheckReport | None = None
    reason: str = ""
    is_reference: bool = False


_QUEUE: Any = None  # the worker's end of the progress queue


def _init_worker(queue: Any) -> None:
    global _QUEUE
    _QUEUE = queue
    # Two processes sharing two cores: one thread each for the frameworks' kernels (the arrays
    # are small), so that they do not compete. Set before any framework is imported.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def _run_job(job: _Job) -> _Outcome:
    """In a worker process: run one job, telling the parent about each claim done."""
    queue = _QUEUE
    if queue is not None:
        queue.put(("start", job.index, str(os.getpid()), ""))

    def told(r: ClaimResult, done: int, total: int) -> None:
        if queue is not None:
            queue.put(("claim", job.index, r.claim_id, r.verdict))

    return _execute(job, told)


def _execute(job: _Job, on_result: Callable[[ClaimResult, int, int], None] | None) -> _Outcome:
    from softmax_oracle.engine.search import run_check
    from softmax_oracle.targets import TargetError, load_target

    try:
        tgt = load_target(job.target)
    except TargetError as e:
        return _Outcome(job.index, "skipped", reason=str(e))
    except Exception as e:  # a framework that fails on import
        return _Outcome(job.index, "skipped",
                        reason=f"loading the target raised {type(e).__name__}: {e}")
    ids = [cid for cid in job.claims
           if get_claim(cid).kind != "mathematics" or tgt.is_reference]
    if not ids:
        return _Outcome(job.index, "ok", None, is_reference=tgt.is_reference)
    try:
        report = run_check(job.target, dtypes=(job.dtype,), level=job.level,
                           claims=",".join(ids), profile=job.profile, seed=job.seed,
                           timeout=job.timeout, on_result=on_result)
    except Exception:
        return _Outcome(job.index, "error", reason=traceback.format_exc(),
                        is_reference=tgt.is_reference)
    return _Outcome(job.index, "ok", report, is_reference=tgt.is_reference)


def _chunks(chosen: Sequence[Claim]) -> list[tuple[str, ...]]:
    """Claims grouped by function, in catalogue order; each mathematics claim on its own (the
    seed audit's searches and shrinks are the longest single pieces of work)."""
    by_fn: dict[str, list[str]] = {}
    singles: list[tuple[str, ...]] = []
    for c in chosen:
        if c.kind == "mathematics":
            singles.append((c.id,))
        else:
            by_fn.setdefault(c.function, []).append(c.id)
    return [tuple(v) for v in by_fn.values()] + singles


def _cost(claim_ids: Sequence[str], target: str) -> float:
    """A rough estimate of a job's run time, to start the longest jobs first."""
    weight = 0.0
    for cid in claim_ids:
        c = get_claim(cid)
        w = c.examples * (1.0 if c.kind != "mathematics" else 12.0)
        weight += w * (4.0 if c.expect == "refuted" else 1.0)
    return weight * (3.0 if target in ("torch", "jax", "optax") else 1.0)


class Progress:
    """Claims done, targets done, refuted so far and time left, as one updating line on a
    terminal; silent when ``enabled`` is false."""

    def __init__(self, stream: TextIO, enabled: bool, total: int, pairs: int) -> None:
        self.stream, self.enabled = stream, enabled
        self.total, self.pairs = total, pairs
        self.done_by_job: dict[int, int] = {}
        self.refuted_by_job: dict[int, int] = {}
        self.pairs_done = 0
        self.start = time.perf_counter()
        self._last = 0.0

    @property
    def done(self) -> int:
        return sum(self.done_by_job.values())

    def claim(self, job: int, verdict: str) -> None:
        self.done_by_job[job] = self.done_by_job.get(job, 0) + 1
        if verdict == "refuted":
            self.refuted_by_job[job] = self.refuted_by_job.get(job, 0) + 1
        self.show()

    def restart(self, job: int) -> None:
        self.done_by_job.pop(job, None)
        self.refuted_by_job.pop(job, None)

    def job_done(self, job: int, expected: int, got: int) -> None:
        self.total -= expected - got
        self.done_by_job[job] = got
        self.show()

    def pair_done(self) -> None:
        self.pairs_done += 1
        self.show(force=True)

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
               f"target/dtype done, {sum(self.refuted_by_job.values())} refuted, "
               f"{fmt_seconds(elapsed)} elapsed {left}")
        self.stream.write("\r" + msg[:110].ljust(110))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 110 + "\r")
            self.stream.flush()


def _progress_enabled(stream: TextIO) -> bool:
    return bool(stream.isatty()) and not os.environ.get("CI")


def _mp_context() -> Any:
    """forkserver where there is one: workers never inherit a parent's framework state."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


class _Pool:
    """Runs jobs in worker processes; survives workers that die, and stops jobs that run past
    ``job_timeout`` seconds (by ending their worker process)."""

    def __init__(self, workers: int, progress: Progress, job_timeout: float | None) -> None:
        self.workers, self.progress, self.job_timeout = workers, progress, job_timeout
        self.ctx = _mp_context()
        self.queue = self.ctx.SimpleQueue()  # written without a feeder thread: a message sent
        self.started: set[int] = set()  # just before a crash still arrives
        self.running: dict[int, tuple[int, float]] = {}  # job -> (worker pid, start time)
        self.timed_out: set[int] = set()
        self.lock = threading.Lock()

    def _drain(self) -> None:
        with self.lock:
            while not self.queue.empty():
                kind, index, pid, verdict = self.queue.get()
                if kind == "start":
                    self.started.add(index)
                    self.running[index] = (int(pid), time.monotonic())
                    self.progress.restart(index)
                else:
                    self.progress.claim(index, verdict)

    def _stop_overdue(self) -> None:
        """End the worker of every job running for longer than the limit."""
        if not self.job_timeout:
            return
        now = time.monotonic()
        with self.lock:
            overdue = [(i, pid) for i, (pid, t0) in self.running.items()
                       if now - t0 > self.job_timeout and i not in self.timed_out]
            for index, pid in overdue:
                self.timed_out.add(index)
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)

    def _failed(self, job: _Job) -> _Outcome:
        if job.index in self.timed_out:
            return _Outcome(job.index, "error", reason=(
                f"stopped after {self.job_timeout:.0f} s, the time limit of one job (a search "
                f"that does not end?); run `softmax-oracle check` on this target and dtype with "
                f"--claim to see which claim"))
        return _Outcome(job.index, "error", reason=(
            "the worker process running these claims died (a crash in the target or its "
            "framework); run `softmax-oracle check` on this target and dtype to see it"))

    def _finished(self, job: _Job) -> None:
        with self.lock:
            self.running.pop(job.index, None)

    def run(self, jobs: Sequence[_Job], on_done: Callable[[_Job, _Outcome], None]) -> None:
        todo = list(jobs)
        suspects: list[_Job] = []
        while todo:
            broken: list[_Job] = []
            with cf.ProcessPoolExecutor(self.workers, mp_context=self.ctx,
                                        initializer=_init_worker,
                                        initargs=(self.queue,)) as pool:
                pending = {pool.submit(_run_job, job): job for job in todo}
                try:
                    while pending:
                        done, _ = cf.wait(pending, timeout=0.2,
                                          return_when=cf.FIRST_COMPLETED)
                        self._drain()
                        for fut in done:
                            job = pending.pop(fut)
                            self._finished(job)
                            try:
                                on_done(job, fut.result())
                            except cf.process.BrokenProcessPool:
                                broken.append(job)
                            except Exception as e:
                                on_done(job, _Outcome(job.index, "error",
                                                      reason=f"{type(e).__name__}: {e}"))
                        self._stop_overdue()
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
            self._drain()
            # A dead worker breaks the pool and fails every unfinished job: a job stopped for
            # its time limit is an error; others that had started are suspects, to be run
            # alone; the rest simply run again.
            for job in broken:
                if job.index in self.timed_out:
                    on_done(job, self._failed(job))
            suspects += [j for j in broken
                         if j.index in self.started and j.index not in self.timed_out]
            todo = [j for j in broken if j.index not in self.started]
        if suspects:
            with cf.ThreadPoolExecutor(self.workers) as threads:
                for job, outcome in zip(suspects, threads.map(self._alone, suspects)):
                    self._drain()
                    on_done(job, outcome)

    def _alone(self, job: _Job) -> _Outcome:
        with cf.ProcessPoolExecutor(1, mp_context=self.ctx, initializer=_init_worker,
                                    initargs=(self.queue,)) as pool:
            future = pool.submit(_run_job, job)
            try:
                while True:
                    try:
                        return future.result(timeout=0.5)
                    except cf.TimeoutError:
                        self._drain()
                        self._stop_overdue()
            except cf.process.BrokenProcessPool:
                return self._failed(job)
            except Exception as e:
                return _Outcome(job.index, "error", reason=f"{type(e).__name__}: {e}")
            finally:
                self._drain()
                self._finished(job)


def _framework_versions() -> dict[str, str]:
    """Versions of the installed frameworks, read from package metadata (nothing imported)."""
    out = {}
    for pkg in _FRAMEWORK_PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[pkg] = importlib.metadata.version(pkg)
    return out


def run_report(targets: Sequence[str] | None = None, *,
               dtypes: Sequence[str] = ("float64", "float32"), level: str = "stable",
               claims: str | None = None, profile: str = "default", seed: int | None = None,
               jobs: int | None = None, timeout: float = 30.0, progress: bool | None = None,
               stream: TextIO | None = None, command: str = "",
               job_timeout: float | None = None) -> ReportData:
    """Run every selected claim against every target and dtype; see the module docstring.

    ``timeout`` is the per-call deadline of ``check``; ``job_timeout`` the wall-clock limit of one
    job in a worker process (default: 20 s per example of the profile, e.g. 20 min for the
    default profile; 0: none), after which its claims are reported as errors. ``progress``: None
    shows it only on a terminal (and not under CI)."""
    from softmax_oracle.engine.search import PROFILES, versions

    if level not in ("stable", "accurate"):
        raise ValueError(f"level={level!r}: use 'stable' or 'accurate'")
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r}: use one of {', '.join(PROFILES)}")
    dts = [get_dtype(d).name for d in dtypes]
    if not dts:
        raise ValueError("dtypes=(): name at least one dtype")
    chosen = select(claims, level=level, kinds=("numerical", "contract", "mathematics"))
    if not chosen:
        raise ValueError(f"--claim {claims!r} matches no claim at level {level!r}; "
                         f"see `softmax-oracle claims`")
    names = list(dict.fromkeys(targets or DEFAULT_TARGETS))
    if seed is None:
        seed = 0 if PROFILES[profile].fixed_seed else random.SystemRandom().randrange(2**31)
    workers = max(1, jobs if jobs is not None else (os.cpu_count() or 1))

    job_list: list[_Job] = []
    expected: dict[int, int] = {}
    for name in names:
        # Built-in targets other than the reference have no mathematics claims; for a user's
        # target we cannot tell without importing it, so the worker decides.
        maybe_math = name == "reference" or name not in DEFAULT_TARGETS
        mine = [c for c in chosen if c.kind != "mathematics" or maybe_math]
        for dt in dts:
            for chunk in _chunks(mine):
                idx = len(job_list)
                job_list.append(_Job(idx, name, dt, chunk, level, profile, seed, timeout,
                                     _cost(chunk, name)))
                expected[idx] = len(chunk) if name in DEFAULT_TARGETS else sum(
                    get_claim(c).kind != "mathematics" for c in chunk)

    out = stream if stream is not None else sys.stderr
    show = _progress_enabled(out) if progress is None else progress
    left_in_pair: dict[tuple[str, str], int] = {}
    for j in job_list:
        left_in_pair[(j.target, j.dtype)] = left_in_pair.get((j.target, j.dtype), 0) + 1
    prog = Progress(out, show, sum(expected.values()), len(left_in_pair))
    outcomes: dict[int, _Outcome] = {}

    def on_done(job: _Job, outcome: _Outcome) -> None:
        outcomes[job.index] = outcome
        got = len(outcome.report.results) if outcome.report is not None else (
            expected[job.index] if outcome.status == "error" else 0)
        prog.job_done(job.index, expected[job.index], got)
        if outcome.report is not None:
            prog.refuted_by_job[job.index] = sum(r.verdict == "refuted"
                                                 for r in outcome.report.results)
        left_in_pair[(job.target, job.dtype)] -= 1
        if left_in_pair[(job.target, job.dtype)] == 0:
            prog.pair_done()

    start = time.perf_counter()
    prog.show(force=True)
    try:
        if workers == 1:
            for job in job_list:
                prog.restart(job.index)
                def told(r: ClaimResult, done: int, total: int, i: int = job.index) -> None:
                    prog.claim(i, r.verdict)

                outcome = _execute(job, told)
                on_done(job, outcome)
        else:
            ordered = sorted(job_list, key=lambda j: -j.cost)
            limit = 20.0 * PROFILES[profile].max_examples if job_timeout is None else job_timeout
            _Pool(workers, prog, limit or None).run(ordered, on_done)
    finally:
        prog.close()
    wall = time.perf_counter() - start

    if not command:
        command = report_command(targets, dts, level=level, claims=claims, profile=profile,
                                 seed=seed)
    reports, skipped = _assemble(names, dts, job_list, outcomes, level, profile, seed)
    vers = {**versions(), **_framework_versions()}
    return ReportData(
        kit_version=vers.get("softmax-oracle", ""),
        generated=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        profile=profile, level=level, seed=seed, seconds=wall, versions=vers,
        targets=tuple(reports), skipped=tuple(skipped), dtypes=tuple(dts), claims=claims,
        jobs=workers, command=command)


def report_command(targets: Sequence[str] | None, dtypes: Sequence[str], *, level: str,
                   claims: str | None, profile: str, seed: int) -> str:
    """The command line that runs the same report again (same seed)."""
    import shlex

    parts = ["softmax-oracle", "report", *(targets or ())]
    parts += ["--dtype", ",".join(dtypes), "--profile", profile]
    if level != "stable":
        parts += ["--level", level]
    if claims:
        parts += ["--claim", claims]
    parts += ["--seed", str(seed)]
    return " ".join(shlex.quote(p) for p in parts)


def summary_text(data: ReportData) -> str:
    """A few lines for the terminal: per target, what went as expected and what did not."""
    lines = [f"softmax-oracle report: {len(data.targets)} targets x {', '.join(data.dtypes)}, "
             f"profile {data.profile}, level {data.level}, seed {data.seed}: "
             f"{len(data.results)} results in {fmt_seconds(data.seconds)}"]
    for t in data.targets:
        c = counts(t.results)
        parts = [f"{c['verified']} verified", f"{c['refuted']} refuted"]
        if c["expected_refuted"]:
            parts.append(f"{c['expected_refuted']} refuted as the seed audit expects")
        if c["unexpected_verified"]:
            parts.append(f"{c['unexpected_verified']} seed statements not refuted")
        if c["not_applicable"]:
            parts.append(f"{c['not_applicable']} not applicable")
        if c["error"]:
            parts.append(f"{c['error']} errors")
        lines.append(f"  {t.target:<10} {', '.join(parts)}")
    for sk in data.skipped:
        lines.append(f"  {sk.target:<10} skipped: {sk.reason.splitlines()[0]}")
    return "\n".join(lines)


def _error_rows(job: _Job, reason: str, is_reference: bool) -> list[ClaimResult]:
    return [ClaimResult(cid, job.target, job.dtype, job.level, "error", get_claim(cid).expect,
                        seed=job.seed, reason=reason)
            for cid in job.claims
            if get_claim(cid).kind != "mathematics" or is_reference]


def _assemble(names: Sequence[str], dtypes: Sequence[str], jobs: Sequence[_Job],
              outcomes: dict[int, _Outcome], level: str, profile: str,
              seed: int) -> tuple[list[CheckReport], list[Skipped]]:
    """Merge the jobs' reports into one CheckReport per target, in catalogue order."""
    from softmax_oracle.engine.search import versions

    reports, skipped = [], []
    for name in names:
        mine = [j for j in jobs if j.target == name]
        if not mine:  # e.g. --claim 'seed.*': nothing applies to this target
            continue
        outs = [outcomes.get(j.index, _Outcome(j.index, "error", reason="the job never ran"))
                for j in mine]
        if all(o.status == "skipped" for o in outs):
            skipped.append(Skipped(name, outs[0].reason))
            continue
        is_ref = name == "reference" or any(o.is_reference for o in outs)
        results: list[ClaimResult] = []
        oks = [o.report for o in outs if o.report is not None]
        for job, o in zip(mine, outs):
            if o.report is not None:
                results.extend(o.report.results)
            elif o.status == "error":
                results.extend(_error_rows(job, "this job failed: " + o.reason, is_ref))
            elif o.status == "skipped":
                results.extend(_error_rows(job, "the target did not load in this worker: "
                                           + o.reason, is_ref))
        results.sort(key=lambda r: (dtypes.index(r.dtype), _ORDER.get(r.claim_id, 10**6)))
        notes = list(dict.fromkeys(n for rep in oks for n in rep.notes))
        first = oks[0] if oks else None
        reports.append(CheckReport(
            target=name, target_version=first.target_version if first else "", level=level,
            profile=profile, seed=seed, dtypes=tuple(dtypes), results=tuple(results),
            seconds=sum(rep.seconds for rep in oks),
            versions=dict(first.versions) if first else versions(), notes=tuple(notes)))
    return reports, skipped


# =============================================================================== writing


def save_report(data: ReportData, out: str | os.PathLike[str]) -> dict[str, Path]:
    """Write index.html, report.md, plots/*.svg and results.json into ``out``."""
    import json

    from softmax_oracle.report import html as _render_html
    from softmax_oracle.report import markdown as _render_md
    from softmax_oracle.report import svg as _svg

    root = Path(out)
    (root / "plots").mkdir(parents=True, exist_ok=True)
    paths = {
        "html": root / "index.html",
        "markdown": root / "report.md",
        "json": root / "results.json",
    }
    plots = _svg.plots(data)
    for name, svg in plots.items():
        p = root / "plots" / f"{name}.svg"
        p.write_text(svg, encoding="utf-8")
        paths[f"plot:{name}"] = p
    paths["html"].write_text(_render_html.render(data, plots), encoding="utf-8")
    paths["markdown"].write_text(_render_md.render(data, sorted(plots)), encoding="utf-8")
    paths["json"].write_text(json.dumps(data.to_json(), indent=1, allow_nan=False) + "\n",
                             encoding="utf-8")
    return paths


def write_report(out: str | os.PathLike[str] = "softmax-oracle-report",
                 targets: Sequence[str] | None = None, **kwargs: Any) -> ReportData:
    """Run the report (``run_report`` takes the keyword arguments) and write its files."""
    data = run_report(targets, **kwargs)
    save_report(data, out)
    return data

