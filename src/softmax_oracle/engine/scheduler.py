"""The one scheduler: jobs onto a ``concurrent.futures.Executor``, each run in a supervised worker.

``check``, ``report``, the pytest plugin and the benchmarks all run their jobs through
``Scheduler.run``. A job is a ``ClaimJob`` (one claim, target and dtype), a ``Describe`` (load a
target) or a ``CallJob`` (any picklable function, for the benchmarks); ``execute`` runs it in the
calling thread's worker process for that target and always
returns an answer, never raises for anything the target does.

Executors:

* ``local`` (the default): a thread pool in this process. The threads only supervise; the target
  runs in their worker processes.
* ``dask://HOST:PORT``: a Dask distributed cluster (``pip install 'softmax-oracle[dask]'``). Each
  task supervises a worker process on the Dask worker's machine, with the same deadlines, memory
  limit and crash verdicts; Ctrl-C cancels the run's tasks and kills their worker processes.
* any ``concurrent.futures.Executor`` given in Python.

``SOFTMAX_ORACLE_EXECUTOR`` sets the executor where the command line or the call does not.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import math
import os
import pickle
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from softmax_oracle.engine.jobs import CallFailed, CallJob, ClaimJob, Describe, TargetInfo
from softmax_oracle.engine.results import ClaimResult, Counterexample
from softmax_oracle.engine.saved import with_saved
from softmax_oracle.engine.search import reproduce_command
from softmax_oracle.engine.supervisor import (
    Death,
    Interrupted,
    WorkerProcess,
    default_memory_limit,
    kill_run,
    thread_workers,
)
from softmax_oracle.oracle.dtypes import get_dtype
from softmax_oracle.spec.claims import get_claim

__all__ = ["Interrupted", "RunSettings", "Scheduler", "execute", "resolve_executor"]

ENV_VAR = "SOFTMAX_ORACLE_EXECUTOR"


@dataclass(frozen=True)
class RunSettings:
    """What every job of one run shares."""

    run_id: str
    memory_limit: int
    dask: bool = False


# ------------------------------------------------------------------------------ stopping a run

_STOPS: dict[str, threading.Event] = {}
_STOPS_LOCK = threading.Lock()


def _local_stop(run_id: str) -> threading.Event:
    with _STOPS_LOCK:
        return _STOPS.setdefault(run_id, threading.Event())


def _stop_checker(settings: RunSettings) -> Callable[[], bool]:
    local = _local_stop(settings.run_id)
    if not settings.dask:
        return local.is_set
    state = {"last": 0.0, "set": False}

    def check() -> bool:  # a Dask Event, asked at most once a second
        if local.is_set() or state["set"]:
            return True
        now = time.monotonic()
        if now - state["last"] >= 1.0:
            state["last"] = now
            with contextlib.suppress(Exception):
                from distributed import Event

                state["set"] = Event(f"softmax-oracle-stop-{settings.run_id}").is_set()
        return bool(state["set"])

    return check


# ------------------------------------------------------------------------------ one job


Job = ClaimJob | Describe | CallJob


def execute(job: Job, settings: RunSettings) -> Any:
    """Run one job in this thread's worker process for its target; always an answer."""
    kind = {Describe: "describe", ClaimJob: "claim", CallJob: "call"}[type(job)]
    fresh = isinstance(job, CallJob) and job.key is None
    key = (settings.run_id, pickle.dumps(job.target), job.cwd)
    workers = thread_workers()
    worker = (WorkerProcess(settings.memory_limit, settings.run_id) if fresh
              else workers.get(key, settings.memory_limit, settings.run_id))
    timeout = _DESCRIBE_TIMEOUT if isinstance(job, Describe) else job.timeout
    try:
        reply = worker.request(kind, job, timeout=timeout, should_stop=_stop_checker(settings))
    finally:
        if fresh:
            worker.kill()
    if isinstance(job, Describe):
        return _describe_answer(reply)
    if isinstance(job, CallJob):
        return _call_answer(reply)
    return _claim_answer(job, reply)


def _call_answer(reply: Any) -> Any:
    if isinstance(reply, Death):
        what = reply.what
        if what.startswith("did not return"):
            return CallFailed(f"timeout: {what}")
        tail = _stderr_excerpt(reply.stderr)
        return CallFailed(f"died: {what}" + (f"\n{tail}" if tail else ""))
    if reply[0] == "returned":
        return reply[1]
    _, message, tb, _ = reply
    return CallFailed(f"raised {message}\n{tb}")


#: Loading a framework can take a while (JAX, TensorFlow); the probe calls get this long each.
_DESCRIBE_TIMEOUT = 120.0


def _describe_answer(reply: Any) -> TargetInfo:
    if isinstance(reply, TargetInfo):
        return reply
    if isinstance(reply, Death):
        tail = _stderr_excerpt(reply.stderr)
        return TargetInfo.failed(f"loading the target failed: {reply.problem()}"
                                 + (f"; its stderr ended with:\n{tail}" if tail else ""))
    _, message, tb, _ = reply
    return TargetInfo.failed(f"loading the target failed: {message}\n{tb}")


def _claim_answer(job: ClaimJob, reply: Any) -> ClaimResult:
    if isinstance(reply, ClaimResult):
        return reply
    base: dict[str, Any] = dict(claim_id=job.claim_id, target=job.target_name, dtype=job.dtype,
                                level=job.level, expected=_expected(job.claim_id), seed=job.seed,
                                verdict="error")
    if isinstance(reply, Death):
        ex = reply.input()
        problem = reply.problem()
        where = " on the input below" if ex is not None else " (before the first input)"
        shrunk = (Counterexample.from_example(ex, problem, math.inf) if ex is not None else None)
        if shrunk is not None:  # the whole input, for `softmax-oracle replay`
            shrunk = with_saved(shrunk, ex, claim_id=job.claim_id, target=job.target_name,
                                dtype=job.dtype, level=job.level, seed=job.seed,
                                reproduce=_reproduce(job), root=job.cwd)
        tail = _stderr_excerpt(reply.stderr)
        reason = (f"the claim could not be judged: {problem}{where}"
                  + (f"\nthe process's stderr ended with:\n{tail}" if tail else ""))
        return ClaimResult(**base, reason=reason, shrunk=shrunk, max_ratio=math.inf,
                           reproduce=_reproduce(job))
    _, message, tb, seconds = reply
    return ClaimResult(**base, seconds=seconds,
                       reason=f"internal error in softmax-oracle: {message}\n{tb}")


#: Frames of the kit's own machinery in a crash's Python stack: not the target's, left out.
_MACHINERY = ("/hypothesis/", "/softmax_oracle/", "<frozen runpy>", "/_pytest/", "/pluggy/")


def _stderr_excerpt(stderr: str, lines: int = 12) -> str:
    """What a dead worker wrote to stderr, without the kit's and Hypothesis's frames in a
    faulthandler stack (the target's frames stay), at most ``lines`` lines from the end."""
    text = stderr.strip()
    if text.startswith("..."):  # the tail starts mid-line
        text = text.partition("\n")[2]
    kept = [ln for ln in text.splitlines()
            if ln.strip() and not any(m in ln for m in _MACHINERY)
            and not ln.startswith("Extension modules:")]
    if len(kept) > lines:
        kept = ["...", *kept[-lines:]]
    return "\n".join(kept)


def _expected(claim_id: str) -> str:
    try:
        return get_claim(claim_id).expect
    except KeyError:
        return "holds"


def _reproduce(job: ClaimJob) -> str:
    return reproduce_command(job.target_name, get_claim(job.claim_id), get_dtype(job.dtype),
                             job.level,
                             job.profile.name, job.seed)


# ------------------------------------------------------------------------------ executors


def resolve_executor(spec: str | cf.Executor | None, jobs: int) -> tuple[cf.Executor, bool, Any]:
    """The executor for ``spec`` (None: ``$SOFTMAX_ORACLE_EXECUTOR``, else local), whether it is
    Dask's, and what to close afterwards."""
    if isinstance(spec, cf.Executor):
        return spec, type(spec).__module__.startswith("distributed"), None
    spec = spec or os.environ.get(ENV_VAR) or "local"
    if spec == "local":
        return cf.ThreadPoolExecutor(jobs, thread_name_prefix="softmax-oracle"), False, None
    if spec.startswith("dask://") or spec.startswith("tcp://"):
        try:
            from distributed import Client
        except ImportError:
            raise ValueError(f"executor={spec!r} needs Dask distributed: "
                             f"pip install 'softmax-oracle[dask]'") from None
        address = "tcp://" + spec.split("://", 1)[1]
        try:
            client = Client(address, timeout=10, set_as_default=False)
        except Exception as e:
            raise ValueError(f"executor={spec!r}: cannot reach the Dask scheduler at {address} "
                             f"({type(e).__name__}: {e})") from None
        return client.get_executor(pure=False), True, client
    raise ValueError(f"executor={spec!r}: use 'local' or 'dask://HOST:PORT'")


#: The answer of a job that has not finished.
_NOT_DONE: Any = object()


class Scheduler:
    """Runs jobs on an executor, target by target and the costliest first, each supervised;
    results in job order."""

    def __init__(self, executor: str | cf.Executor | None = None, jobs: int = 1,
                 memory_limit: int | None = None) -> None:
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ValueError(f"jobs={jobs!r}: use 1 or more")
        self.executor, self.dask, self._client = resolve_executor(executor, jobs)
        self._owned = not isinstance(executor, cf.Executor)
        self.jobs = jobs
        self.settings = RunSettings(uuid.uuid4().hex, memory_limit or default_memory_limit(jobs),
                                    self.dask)
        self._stop_event: Any = None
        if self.dask:
            from distributed import Event

            self._stop_event = Event(f"softmax-oracle-stop-{self.settings.run_id}",
                                     client=self._client or getattr(self.executor, "_client", None))

    def run(self, jobs: Sequence[Job],
            on_done: Callable[[int, Any], None] | None = None) -> list[Any]:
        """Every job's answer, in the order given; ``on_done(index, answer)`` is called in this
        thread as each finishes. On Ctrl-C (KeyboardInterrupt) the run stops within a second or
        two: the running jobs' worker processes are killed, the rest cancelled, and
        ``Interrupted`` carries the answers that finished. Anything else raised here (by
        ``on_done``) stops the run the same way and is raised as it is."""
        answers: list[Any] = [_NOT_DONE] * len(jobs)
        order = _order(jobs)
        futures = {self.executor.submit(execute, jobs[i], self.settings): i for i in order}
        pending = set(futures)
        try:
            while pending:
                done, pending = cf.wait(pending, timeout=0.2, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    i = futures[fut]
                    try:
                        answers[i] = fut.result()
                    except Interrupted:
                        continue
                    except Exception as e:  # the executor failed (a lost Dask worker, ...)
                        answers[i] = _lost(jobs[i], e)
                    if on_done is not None:
                        on_done(i, answers[i])
        except KeyboardInterrupt as e:
            self.stop(pending)
            raise Interrupted([a for a in answers if a is not _NOT_DONE]) from e
        except BaseException:  # e.g. raised by on_done: stop the run, and say what it was
            self.stop(pending)
            raise
        return answers

    def stop(self, pending: set[cf.Future[Any]] | None = None) -> None:
        """Stop every job of this run: cancel what has not started, kill what runs."""
        _local_stop(self.settings.run_id).set()
        for fut in pending or ():
            fut.cancel()
        if self._stop_event is not None:
            with contextlib.suppress(Exception):
                self._stop_event.set()
        kill_run(self.settings.run_id)

    def close(self) -> None:
        """Kill this run's worker processes and release the executor."""
        kill_run(self.settings.run_id)
        if self.dask and self._client is not None:
            with contextlib.suppress(Exception):
                self._client.run(kill_run, self.settings.run_id)
        if self._owned:
            with contextlib.suppress(Exception):
                self.executor.shutdown(wait=False, cancel_futures=True)
            if self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.close()
        with _STOPS_LOCK:
            _STOPS.pop(self.settings.run_id, None)

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _order(jobs: Sequence[Job]) -> list[int]:
    """The order to submit jobs in: target by target, the costliest target first, and within a
    target the costliest job first. The threads then work on the same target and reuse its
    workers (a framework's import and compiled kernels), instead of thrashing between targets."""
    def group(i: int) -> str:
        return repr(getattr(jobs[i], "target", None))

    totals: dict[str, float] = {}
    for i, job in enumerate(jobs):
        totals[group(i)] = totals.get(group(i), 0.0) + getattr(job, "cost", 1.0)
    return sorted(range(len(jobs)),
                  key=lambda i: (-totals[group(i)], group(i), -getattr(jobs[i], "cost", 1.0)))


def _lost(job: Job, e: BaseException) -> Any:
    message = f"the executor lost the job ({type(e).__name__}: {e})"
    if isinstance(job, CallJob):
        return CallFailed(f"died: {message}")
    if isinstance(job, Describe):
        return TargetInfo.failed(message)
    return ClaimResult(job.claim_id, job.target_name, job.dtype, job.level, "error",
                       _expected(job.claim_id), seed=job.seed, reason=message)
