"""Running claims with Hypothesis: search, steer toward the worst error, shrink, record.

``run_check`` runs claim by claim in this process, or (``jobs`` > 1) spreads them over worker
processes: each worker runs a chunk of claims (one function's claims in one dtype) exactly as this
process would -- same seed, same example database keys -- so the results are the same as a
sequential run's, in the same order, and the progress callback is still called here.
"""

from __future__ import annotations

import builtins
import concurrent.futures as cf
import contextlib
import copy
import dataclasses
import importlib.metadata
import math
import multiprocessing
import os
import pickle
import platform
import random
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import target as htarget
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.errors import HypothesisException

from softmax_oracle.targets.call import Env, _deadline

if sys.version_info >= (3, 11):
    _GROUP: type[BaseException] = builtins.BaseExceptionGroup
else:  # Python 3.10
    from exceptiongroup import BaseExceptionGroup as _GROUP
from softmax_oracle.engine.results import CheckReport, ClaimResult, Counterexample
from softmax_oracle.oracle.compare import Refuted
from softmax_oracle.oracle.dtypes import DType, get_dtype
from softmax_oracle.oracle.tolerance import Model
from softmax_oracle.spec.claims import Claim, Inputs, select
from softmax_oracle.targets import Target, load_target

__all__ = ["PROFILES", "Profile", "run_check", "run_claim"]


@dataclass(frozen=True)
class Profile:
    """How hard to search. ``ci`` is deterministic (fixed seed, no example database)."""

    name: str
    max_examples: int
    max_size: int
    dense_size: int
    database: bool = True
    fixed_seed: bool = False
    description: str = ""
    vocab_size: int = 0  # language-model-sized rows for the reference claims (0: none)


PROFILES: dict[str, Profile] = {
    "quick": Profile("quick", 25, 16, 4, description="a smoke test: seconds"),
    "default": Profile("default", 60, 48, 6, description="the everyday run"),
    "ci": Profile("ci", 60, 48, 6, database=False, fixed_seed=True,
                  description="deterministic: fixed seed, no example database"),
    "thorough": Profile("thorough", 400, 512, 16, vocab_size=262144,
                        description="long rows, vocabulary-sized rows (32k to 256k logits) and "
                                    "many examples"),
}

DATABASE_DIR = ".hypothesis/softmax-oracle"


class _KitError(Exception):
    """An exception in the kit's own code while checking (reported as verdict 'error')."""


@dataclass
class _Search:
    """What one claim's search saw."""

    calls: int = 0
    worst_ratio: float = 0.0
    worst: Counterexample | None = None
    last_failure: Counterexample | None = None
    max_ulps: float = 0.0
    internal: str = ""


def probe_flush(target: Target, dtype: DType, timeout: float = 30.0) -> bool:
    """Does the backend flush subnormal results to zero? exp(ln r_min - 1) is subnormal.
    Uses the target's declared ``exp`` if any, else its softmax; a probe that fails or hangs
    counts as "does not flush" (the strict floor), and the claims then judge the target."""
    x = np.asarray([math.log(dtype.rmin) - 1.0]).astype(dtype.np)
    with contextlib.suppress(Exception), np.errstate(all="ignore"), _deadline(timeout):
        if target.exp is not None:
            return bool(np.asarray(target.exp(x), dtype=np.float64).reshape(-1)[0] == 0)
        if target.has("softmax"):
            z = np.asarray([0.0, float(x[0])]).astype(dtype.np)
            out = np.asarray(target.functions["softmax"](z, axis=-1), dtype=np.float64)
            return bool(out.reshape(-1)[1] == 0)
    return False


def make_env(target: Target | None, dtype: DType, *, timeout: float = 30.0) -> tuple[Env, bool]:
    flushes = probe_flush(target, dtype, timeout) if target is not None else False
    compute = None
    if target is not None and dtype.name in target.compute_dtype:
        compute = get_dtype(target.compute_dtype[dtype.name])
    stable = Model.for_target(dtype, "stable", flushes=flushes, compute=compute)
    accurate = Model.for_target(dtype, "accurate", flushes=flushes, compute=compute)
    return Env(target, dtype, stable, accurate, timeout=timeout), flushes


def _inputs(profile: Profile) -> Inputs:
    """The sizes a claim's strategy may use under a profile."""
    sizes: dict[str, int] = {"max_size": profile.max_size, "dense_size": profile.dense_size}
    if "vocab_size" in {f.name for f in dataclasses.fields(Inputs)}:
        sizes["vocab_size"] = profile.vocab_size
    return Inputs(**sizes)


def reproduce_command(target: str, claim: Claim, dtype: DType, level: str, profile: str,
                      seed: int) -> str:
    lvl = f" --level {level}" if level != "stable" else ""
    prof = f" --profile {profile}" if profile != "default" else ""
    return (f"softmax-oracle check {target} --claim {claim.id} --dtype {dtype.name}{lvl}{prof} "
            f"--seed {seed}")


def run_claim(claim: Claim, env: Env, *, target_name: str, level: str, profile: Profile,
              seed: int, max_examples: int | None = None) -> ClaimResult:
    """Search for a counterexample to one claim on one target and dtype."""
    dtype = env.dtype
    n_examples = max(5, round((max_examples or profile.max_examples) * claim.examples))
    inputs = _inputs(profile)
    start = time.perf_counter()
    base: dict[str, Any] = dict(claim_id=claim.id, target=target_name, dtype=dtype.name,
                                level=level, expected=claim.expect, seed=seed)
    try:
        strategy = claim.strategy(dtype, inputs)
    except Exception as e:  # a strategy that cannot be built is the kit's bug
        return ClaimResult(**base, verdict="error",
                           reason=f"building the inputs failed: {type(e).__name__}: {e}")
    state = _Search()

    def test(ex: dict[str, Any]) -> None:
        state.calls += 1
        snapshot = {k: (v.copy() if isinstance(v, np.ndarray) else copy.deepcopy(v))
                    for k, v in ex.items()}
        env.max_ulps = 0.0
        try:
            with np.errstate(all="ignore"):
                ratio = claim.check(env, ex)
        except Refuted as r:
            ratio = r.ratio if not math.isnan(r.ratio) else math.inf
            cex = Counterexample.from_example(snapshot, r.problem, ratio)
            state.last_failure = cex
            if state.worst is None or not state.worst.problem or ratio >= state.worst_ratio:
                state.worst_ratio, state.worst = max(ratio, state.worst_ratio), cex
            htarget(min(ratio, 1e300), label="error/budget")
            raise
        except Exception as e:
            state.internal = "".join(traceback.format_exception(type(e), e, e.__traceback__))
            raise _KitError(f"{type(e).__name__}: {e}") from e
        state.max_ulps = max(state.max_ulps, env.max_ulps)
        if ratio > state.worst_ratio or state.worst is None:
            state.worst_ratio = ratio
            state.worst = Counterexample.from_example(snapshot, "", ratio)
        htarget(min(float(ratio), 1e300), label="error/budget")

    db = (DirectoryBasedExampleDatabase(DATABASE_DIR) if profile.database else None)
    # Seed the generation without @seed, which would also switch the example database off:
    # a run is reproducible from its seed *and* replays the failures saved by earlier runs.
    test._hypothesis_internal_use_seed = seed  # type: ignore[attr-defined]
    wrapped = given(strategy)(test)
    # Every setting that matters is explicit: a user's loaded Hypothesis profile (derandomize,
    # a database of its own, fewer phases) must not change what the kit does.
    wrapped = settings(max_examples=n_examples, deadline=None, database=db, derandomize=False,
                       phases=tuple(Phase),
                       suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet,
                       report_multiple_bugs=False, print_blob=False)(wrapped)
    key = f"softmax-oracle|{claim.id}|{target_name}|{dtype.name}|{level}|{profile.name}"
    # The example database is keyed by the digest of the inner test function: make it unique
    # per claim, target, dtype and level (as pytest's parametrize does).
    test._hypothesis_internal_add_digest = key.encode()  # type: ignore[attr-defined]

    verdict, reason = "verified", ""
    try:
        with _same_examples_in_every_process():
            wrapped()
    except Refuted:
        verdict = "refuted"
    except _KitError as e:
        verdict, reason = "error", f"internal error in softmax-oracle: {e}\n{state.internal}"
    except (HypothesisException, _GROUP) as e:  # e.g. Flaky: failed, then passed
        if state.last_failure is not None:
            verdict = "refuted"
            reason = (f"the failure did not reproduce on replay ({type(e).__name__}): the "
                      f"target may be nondeterministic")
        else:
            verdict, reason = "error", f"{type(e).__name__}: {e}"
    except Exception as e:  # generating the inputs failed: the kit's bug, reported, not raised
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        verdict = "error"
        reason = f"internal error in softmax-oracle: {type(e).__name__}: {e}\n{tb}"
    shrunk = state.last_failure if verdict == "refuted" else None
    return ClaimResult(
        **base, verdict=verdict, examples=state.calls, seconds=time.perf_counter() - start,
        reason=reason, max_ratio=state.worst_ratio, max_ulps=state.max_ulps, shrunk=shrunk,
        worst=state.worst,
        reproduce=reproduce_command(target_name, claim, dtype, level, profile.name, seed)
        if verdict == "refuted" else "")


@contextlib.contextmanager
def _same_examples_in_every_process() -> Iterator[None]:
    """Hypothesis now and then draws literal constants found in the source of whatever local
    (non-installed) modules the process has imported. The same seed then gave different examples
    in the CLI, the pytest plugin, a report worker or a parallel worker, whose imports differ.
    During the kit's searches only Hypothesis's own fixed constants are drawn, so that a seed means
    the same examples everywhere. (Private Hypothesis API: where it is missing, nothing to do.)"""
    try:
        from hypothesis.internal.conjecture import providers

        empty = providers.Constants()
        local = providers._get_local_constants
        cache = providers.CONSTANTS_CACHE.cache
    except (ImportError, AttributeError, TypeError):
        yield
        return
    providers._get_local_constants = lambda: empty
    cache.clear()  # it holds constants drawn from the local modules so far
    try:
        yield
    finally:
        providers._get_local_constants = local
        cache.clear()


def versions(target: Target | None = None) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("softmax-oracle", "numpy", "mpmath", "hypothesis", "gmpy2"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[pkg] = importlib.metadata.version(pkg)
    if target is not None and target.version:
        out[f"target:{target.name}"] = target.version
    return out


def applicable(claim: Claim, target: Target) -> str:
    """Empty if the claim applies to the target, else the reason it does not."""
    if claim.kind == "mathematics":
        return "" if target.is_reference else "a statement about the mathematics, not the target"
    missing = [f for f in claim.needs if not target.has(f)]
    if missing:
        return f"the target has no {', '.join(missing)}"
    return ""


def run_check(target: str | Any, *, dtypes: Sequence[str | DType] = ("float64",),
              level: str = "stable", claims: str | None = None, profile: str = "default",
              seed: int | None = None, max_examples: int | None = None, timeout: float = 30.0,
              include_math: bool | None = None,
              on_result: Callable[[ClaimResult, int, int], None] | None = None,
              jobs: int = 1) -> CheckReport:
    """Run the selected claims against a target for each dtype. See ``softmax_oracle.check``.

    ``jobs`` > 1 runs chunks of claims in that many worker processes. The results, and their
    order, are those of a sequential run with the same seed; ``on_result`` is still called in
    this process, as chunks finish. A target given as an object must then be picklable (the
    functions of importable modules are); a name or a path always is. As with any use of
    multiprocessing, a script that calls this with ``jobs`` > 1 needs the
    ``if __name__ == "__main__":`` guard."""
    if level not in ("stable", "accurate"):
        raise ValueError(f"level={level!r}: use 'stable' or 'accurate'")
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r}: use one of {', '.join(PROFILES)}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs={jobs!r}: use 1 or more (1 runs everything in this process)")
    prof = PROFILES[profile]
    tgt = load_target(target)
    target_name = target if isinstance(target, str) else tgt.name
    if seed is None:
        seed = 0 if prof.fixed_seed else random.SystemRandom().randrange(2**31)
    dts = [get_dtype(d) for d in dtypes]
    with_math = tgt.is_reference if include_math is None else include_math
    kinds: Iterable[str] = ("numerical", "contract") + (("mathematics",) if with_math else ())
    chosen = select(claims, level=level, kinds=tuple(kinds))
    if claims and not chosen:
        raise ValueError(f"--claim {claims!r} matches no claim at level {level!r}; "
                         f"see `softmax-oracle claims`")
    start = time.perf_counter()
    notes: list[str] = []
    total = len(chosen) * len(dts)
    slots: list[ClaimResult | None] = [None] * total  # catalogue order, dtype by dtype
    done = 0

    def record(index: int, res: ClaimResult) -> None:
        nonlocal done
        slots[index] = res
        done += 1
        if on_result is not None:
            on_result(res, done, total)

    run = _Run(target_name, level, prof, seed, max_examples, timeout, os.getcwd(),
               tuple(sys.path))
    work: list[tuple[int, DType, Claim]] = []
    envs: dict[str, Env] = {}
    for d, dt in enumerate(dts):
        env = None
        if tgt.supports(dt.name):
            env, flushes = make_env(tgt, dt, timeout=timeout)
            envs[dt.name] = env
            if flushes:
                notes.append(f"{tgt.name} flushes subnormals to zero in {dt.name}: the absolute "
                             f"floor is the smallest normal number, {dt.rmin:.3g}")
        for c, claim in enumerate(chosen):
            index = d * len(chosen) + c
            reason = applicable(claim, tgt)
            if not reason and env is None:
                reason = f"the target does not support {dt.name}"
            if reason:
                record(index, ClaimResult(claim.id, target_name, dt.name, level,
                                          "not_applicable", claim.expect, seed=seed,
                                          reason=reason))
            elif jobs == 1:
                record(index, run.claim(claim, envs[dt.name]))
            else:
                work.append((index, dt, claim))
    if work:
        _run_parallel(_picklable(target, tgt), work, jobs, run, record)
    assert all(r is not None for r in slots)
    return CheckReport(target=target_name, target_version=tgt.version, level=level,
                       profile=profile, seed=seed, dtypes=tuple(d.name for d in dts),
                       results=tuple(r for r in slots if r is not None),
                       seconds=time.perf_counter() - start, versions=versions(tgt),
                       notes=tuple(notes))


# ================================================================================ parallel runs


@dataclass(frozen=True)
class _Run:
    """Everything about a check run that a worker needs besides the target and the claims."""

    target_name: str
    level: str
    profile: Profile
    seed: int
    max_examples: int | None
    timeout: float
    cwd: str = ""  # where relative paths (a target file, the example database) resolve
    sys_path: tuple[str, ...] = ()

    def claim(self, claim: Claim, env: Env) -> ClaimResult:
        return run_claim(claim, env, target_name=self.target_name, level=self.level,
                         profile=self.profile, seed=self.seed, max_examples=self.max_examples)


def _picklable(target: str | Any, tgt: Target) -> Any:
    """What a worker loads the target from: its name or path, an importable module's name, or
    the object itself when it pickles."""
    if isinstance(target, str):
        return target
    if isinstance(target, ModuleType) and target.__name__ != "__main__":
        return target.__name__
    try:
        pickle.dumps(target)
    except Exception as e:
        raise ValueError(f"jobs > 1 needs a target that worker processes can load: give it by "
                         f"name or path, or as a picklable object ({tgt.name}: "
                         f"{type(e).__name__}: {e}); or use jobs=1") from None
    return target


def _chunks(work: Sequence[tuple[int, DType, Claim]]) -> list[list[tuple[int, DType, Claim]]]:
    """One chunk per dtype and function (a mathematics claim alone), the longest first."""
    groups: dict[tuple[str, str], list[tuple[int, DType, Claim]]] = {}
    for item in work:
        _, dt, claim = item
        key = (dt.name, claim.id if claim.kind == "mathematics" else claim.function)
        groups.setdefault(key, []).append(item)

    def cost(chunk: list[tuple[int, DType, Claim]]) -> float:
        return sum(c.examples * (12.0 if c.kind == "mathematics" else 1.0) for _, _, c in chunk)

    return sorted(groups.values(), key=cost, reverse=True)


def _run_chunk(spec: Any, dtype: str, items: list[tuple[int, str]], run: _Run
               ) -> list[tuple[int, ClaimResult]]:
    """In a worker: the claims of one chunk, each as run_check would run it."""
    from softmax_oracle.spec.claims import get_claim

    os.chdir(run.cwd)
    sys.path[:] = [p for p in run.sys_path if p not in sys.path] + sys.path
    tgt = load_target(spec)
    dt = get_dtype(dtype)
    env, _ = make_env(tgt, dt, timeout=run.timeout)
    return [(index, run.claim(get_claim(cid), env)) for index, cid in items]


def _mp_context() -> Any:
    """forkserver where there is one (workers never inherit a parent's framework state), with
    the kit preloaded so that workers start without importing it again."""
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" not in methods:
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    with contextlib.suppress(Exception):
        ctx.set_forkserver_preload(["softmax_oracle.engine.search"])
    return ctx


def _run_parallel(spec: Any, work: Sequence[tuple[int, DType, Claim]], jobs: int, run: _Run,
                  record: Callable[[int, ClaimResult], None]) -> None:
    chunks = _chunks(work)
    with cf.ProcessPoolExecutor(min(jobs, len(chunks)), mp_context=_mp_context()) as pool:
        futures = {pool.submit(_run_chunk, spec, chunk[0][1].name,
                               [(i, c.id) for i, _, c in chunk], run): chunk for chunk in chunks}
        try:
            for fut in cf.as_completed(futures):
                chunk = futures[fut]
                try:
                    results = fut.result()
                except Exception as e:  # a worker died (a crash in the target) or failed
                    reason = (f"the worker process running these claims failed "
                              f"({type(e).__name__}: {e}); run them with jobs=1 to see why")
                    results = [(i, ClaimResult(c.id, run.target_name, dt.name, run.level,
                                               "error", c.expect, seed=run.seed, reason=reason))
                               for i, dt, c in chunk]
                for index, res in results:
                    record(index, res)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
