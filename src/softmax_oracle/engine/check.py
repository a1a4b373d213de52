"""``run_check``: one target, the selected claims, each dtype, through the scheduler.

The target is loaded and called only in supervised worker processes (``engine.supervisor``): the
kit's own process describes it (``Describe``), then runs one ``ClaimJob`` per claim and dtype.
Results come back in catalogue order, dtype by dtype, whatever order they finish in. A target
given as an object that does not pickle cannot reach a worker: it is run in this process, without
supervision (a crash of the target is then a crash of the caller), and the report says so.
"""

from __future__ import annotations

import math
import pickle
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from types import ModuleType
from typing import Any

from softmax_oracle.engine.jobs import ClaimJob, Describe, TargetInfo, estimate_cost, here
from softmax_oracle.engine.profiles import choose_seed, get_profile, validate_level
from softmax_oracle.engine.results import CheckReport, ClaimResult
from softmax_oracle.engine.scheduler import Interrupted, Scheduler
from softmax_oracle.engine.search import applicable, make_env, run_claim, versions
from softmax_oracle.oracle.dtypes import DType, get_dtype
from softmax_oracle.spec.claims import KINDS, TARGET_KINDS, Claim, select
from softmax_oracle.targets import TargetError, load_target

__all__ = ["RunInterrupted", "flush_notes", "plan_claims", "run_check", "validate_dtypes",
           "validate_kinds", "validate_run_options"]


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a run; ``report`` holds what finished (``complete`` False)."""

    def __init__(self, report: Any) -> None:
        super().__init__("interrupted")
        self.report = report


def validate_dtypes(dtypes: Any) -> list[DType]:
    """A non-empty sequence of distinct dtype names or DTypes, else ValueError."""
    if isinstance(dtypes, (str, DType)):
        raise ValueError(f"dtypes={dtypes!r}: give a list, e.g. dtypes=[{str(dtypes)!r}]")
    try:
        dts = [get_dtype(d) for d in dtypes]
    except TypeError:
        raise ValueError(f"dtypes={dtypes!r}: give a list of dtype names") from None
    if not dts:
        raise ValueError("dtypes=[]: give at least one dtype, e.g. ['float64']")
    names = [d.name for d in dts]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"dtypes={names!r}: {', '.join(dupes)} given more than once")
    return dts


def validate_kinds(kinds: Any) -> tuple[str, ...] | None:
    """None (every kind that applies) or a non-empty sequence of known kinds, else ValueError."""
    if kinds is None:
        return None
    if isinstance(kinds, str):
        kinds = [k.strip() for k in kinds.split(",") if k.strip()]
    out = tuple(kinds)
    unknown = [k for k in out if k not in KINDS]
    if not out or unknown:
        raise ValueError(f"kinds={','.join(map(str, out))!r}: use one or more of "
                         f"{', '.join(KINDS)} (comma-separated)")
    return out


def validate_run_options(*, max_examples: Any = None, timeout: Any = 30.0,
                         jobs: Any = 1) -> None:
    """The numeric options of a run, each a clear ValueError when wrong."""
    if max_examples is not None and (isinstance(max_examples, bool)
                                     or not isinstance(max_examples, int) or max_examples < 1):
        raise ValueError(f"max_examples={max_examples!r}: use a whole number of 1 or more")
    if (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
            or not math.isfinite(timeout) or timeout <= 0):
        raise ValueError(f"timeout={timeout!r}: use a finite number of seconds above 0 "
                         f"(the deadline of each call of the target)")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs={jobs!r}: use 1 or more")


def target_spec(target: Any) -> tuple[Any, bool]:
    """What a worker loads the target from, and whether it can go to one at all: a name or path
    (as given), an importable module's name, or the pickled object."""
    if isinstance(target, str):
        return target, True
    if isinstance(target, ModuleType) and target.__name__ != "__main__" \
            and not target.__name__.startswith("_softmax_oracle_user_"):
        return target.__name__, True
    try:
        pickle.loads(pickle.dumps(target))
    except Exception:
        return target, False
    return target, True


def run_check(target: str | Any, *, dtypes: Sequence[str | DType] = ("float64",),
              level: str = "stable", claims: str | None = None, profile: str = "default",
              seed: int | None = None, max_examples: int | None = None, timeout: float = 30.0,
              include_math: bool | None = None,
              on_result: Callable[[ClaimResult, int, int], None] | None = None,
              jobs: int = 1, executor: str | Executor | None = None,
              memory_limit: int | None = None,
              kinds: Sequence[str] | str | None = None) -> CheckReport:
    """Run the selected claims against a target for each dtype. See ``softmax_oracle.check``.
    ``kinds`` limits the claims to these kinds (``spec.claims.KINDS``)."""
    validate_level(level)
    kinds = validate_kinds(kinds)
    prof = get_profile(profile)
    dts = validate_dtypes(dtypes)
    validate_run_options(max_examples=max_examples, timeout=timeout, jobs=jobs)
    seed = choose_seed(prof, seed)
    spec, isolated = target_spec(target)
    where = here()
    start = time.perf_counter()
    if not isolated:
        return _in_process(target, dts, level, claims, prof.name, seed, max_examples, timeout,
                           include_math, on_result, start, kinds)
    with Scheduler(executor, jobs, memory_limit) as sched:
        try:
            (info,) = sched.run([Describe(**where, target=spec,
                                          dtypes=tuple(d.name for d in dts))])
        except Interrupted:
            raise RunInterrupted(None) from None
        if info.error:
            raise TargetError(info.error)
        target_name = target if isinstance(target, str) else info.name
        chosen = _chosen(claims, level, info.is_reference if include_math is None
                         else include_math, kinds)
        steps = plan_claims(info, target_name, chosen, dts, level, seed)
        work = [(i, ClaimJob(**where, target=spec, target_name=target_name, claim_id=c.id,
                             dtype=dt.name, level=level, profile=prof, seed=seed,
                             max_examples=max_examples, flushes=info.flushes.get(dt.name, False),
                             timeout=timeout, cost=estimate_cost(c, target_name)))
                for i, (dt, c, res) in enumerate(steps) if res is None]
        slots: list[ClaimResult | None] = [res for _, _, res in steps]
        done = [0]

        def record(index: int, res: ClaimResult) -> None:
            slots[index] = res
            done[0] += 1
            if on_result is not None:
                on_result(res, done[0], len(slots))

        for i, res in enumerate(slots):
            if res is not None:
                record(i, res)
        complete = True
        try:
            sched.run([job for _, job in work],
                      on_done=lambda k, res: record(work[k][0], res))
        except Interrupted:
            complete = False
    report = CheckReport(target=target_name, target_version=info.version, level=level,
                         profile=prof.name, seed=seed, dtypes=tuple(d.name for d in dts),
                         results=tuple(r for r in slots if r is not None),
                         seconds=time.perf_counter() - start,
                         versions=_versions(info), notes=flush_notes(info, dts),
                         complete=complete)
    if not complete:
        raise RunInterrupted(report)
    return report


def _chosen(claims: str | None, level: str, with_math: bool,
            only: Sequence[str] | None = None) -> list[Claim]:
    kinds: Iterable[str] = TARGET_KINDS + (("mathematics",) if with_math else ())
    if only is not None:
        kinds = [k for k in kinds if k in only]
    chosen = select(claims, level=level, kinds=tuple(kinds))
    if (claims or only is not None) and not chosen:
        which = f"--claim {claims!r}" if claims else "the selection"
        kind = f" of kind {', '.join(only)}" if only is not None else ""
        raise ValueError(f"{which} matches no claim{kind} at level {level!r}; "
                         f"see `softmax-oracle claims`")
    return chosen


def plan_claims(info: TargetInfo, target_name: str, chosen: Sequence[Claim], dts: Sequence[DType],
          level: str, seed: int) -> list[tuple[DType, Claim, ClaimResult | None]]:
    """Every (dtype, claim) in catalogue order, with its result if it is not applicable."""
    plan: list[tuple[DType, Claim, ClaimResult | None]] = []
    for dt in dts:
        for claim in chosen:
            reason = applicable(claim, info)
            if not reason and not info.supports(dt.name):
                reason = f"the target does not support {dt.name}"
            res = (ClaimResult(claim.id, target_name, dt.name, level, "not_applicable",
                               claim.expect, seed=seed, reason=reason) if reason else None)
            plan.append((dt, claim, res))
    return plan


def flush_notes(info: TargetInfo, dts: Sequence[DType]) -> tuple[str, ...]:
    """What a report says of a backend the flush probe (``search.probe_flush``) found to flush
    subnormals to zero: what it observed, and what follows for the budgets."""
    return tuple(f"{info.name} flushes subnormals to zero in {dt.name}: a result just below the "
                 f"smallest normal number, {dt.rmin:.3g}, came out as 0, one just above it did "
                 f"not; the absolute floor is {dt.rmin:.3g}"
                 for dt in dts if info.flushes.get(dt.name))


def _versions(info: TargetInfo) -> dict[str, str]:
    out = versions()
    if info.version:
        out[f"target:{info.name}"] = info.version
    return out


def _in_process(target: Any, dts: Sequence[DType], level: str, claims: str | None,
                profile: str, seed: int, max_examples: int | None, timeout: float,
                include_math: bool | None,
                on_result: Callable[[ClaimResult, int, int], None] | None,
                start: float, kinds: Sequence[str] | None = None) -> CheckReport:
    """A target object that cannot be pickled: run here, unsupervised (said in the notes)."""
    tgt = load_target(target)
    prof = get_profile(profile)
    flushes: dict[str, bool] = {}
    envs = {}
    for dt in dts:
        if tgt.supports(dt.name):
            envs[dt.name], flushes[dt.name] = make_env(tgt, dt, timeout=timeout)
    info = TargetInfo.of(tgt, flushes)
    chosen = _chosen(claims, level, tgt.is_reference if include_math is None else include_math,
                     kinds)
    steps = plan_claims(info, tgt.name, chosen, dts, level, seed)
    results: list[ClaimResult] = []
    for dt, claim, res in steps:
        if res is None:
            envs[dt.name].rng_seed = seed
            res = run_claim(claim, envs[dt.name], target_name=tgt.name, level=level,
                            profile=prof, seed=seed, max_examples=max_examples)
        results.append(res)
        if on_result is not None:
            on_result(res, len(results), len(steps))
    note = ("the target object does not pickle, so it ran in this process without "
            "supervision: a crash or hang of the target is not contained")
    return CheckReport(target=tgt.name, target_version=tgt.version, level=level,
                       profile=profile, seed=seed, dtypes=tuple(d.name for d in dts),
                       results=tuple(results), seconds=time.perf_counter() - start,
                       versions=_versions(info), notes=(*flush_notes(info, dts), note))

