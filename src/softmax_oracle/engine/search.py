"""Searching one claim with Hypothesis: search, steer toward the worst error, shrink, record.

``run_claim`` runs in a worker process (``engine.worker``), next to the target; the same seed gives
the same examples wherever it runs (``_same_examples_in_every_process``).
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import dataclasses
import importlib.metadata
import math
import platform
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import target as htarget
from hypothesis.errors import HypothesisException

from softmax_oracle.engine.database import FailuresDatabase
from softmax_oracle.engine.jobs import TargetInfo
from softmax_oracle.engine.profiles import Profile
from softmax_oracle.engine.saved import with_saved
from softmax_oracle.targets.call import Env, Monitor, TargetTimeout, _deadline

if sys.version_info >= (3, 11):
    _GROUP: type[BaseException] = builtins.BaseExceptionGroup
else:  # Python 3.10
    from exceptiongroup import BaseExceptionGroup as _GROUP
from softmax_oracle.engine.results import ClaimResult, Counterexample
from softmax_oracle.oracle.compare import Refuted
from softmax_oracle.oracle.dtypes import DType, get_dtype
from softmax_oracle.oracle.tolerance import Model
from softmax_oracle.spec.claims import Claim, Inputs
from softmax_oracle.targets import Target

__all__ = ["DATABASE_DIR", "applicable", "env_for", "make_env", "probe_flush", "reproduce_command",
           "run_claim", "versions"]


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
    last_example: dict[str, Any] | None = None  # the input of last_failure, to be saved
    worst_example: dict[str, Any] | None = None
    max_ulps: float = 0.0
    internal: str = ""


#: The functions the flush probe looks through, in the order it tries them: exp and softmax,
#: or, for a target with neither, the log-domain functions and the loss.
PROBE_FUNCTIONS = (("exp", "softmax"), ("cross_entropy", "logsumexp", "log_softmax"))


def probe_flush(target: Target, dtype: DType, timeout: float = 30.0,
                monitor: Monitor | None = None) -> bool:
    """Does the backend flush subnormal results to zero? The probe computes a result just below
    the smallest normal number r_min (a subnormal) and one just above it: the backend flushes
    when the first comes out as 0 and the second does not. When both come out as 0, that is not
    flushing (the arithmetic is narrower than the dtype, or the algorithm loses such values), and
    the probe tries the next function; if none tells, the strict floor stays and the claims judge
    the target.

    The functions (``PROBE_FUNCTIONS``, those the target has): its declared ``exp`` at
    ln r_min -+ 1, softmax([0, ln r_min -+ 1]); for a target with neither, the cross-entropy of
    z = [0, 0] with the target n_0 = r_min / 2 or 4 r_min (C = n_0 ln 2), the log-sum-exp of a
    row of one entry, r_min / 2 or 4 r_min (that entry, for a max-shifted algorithm), and
    -log_softmax([0, x])_0 = log1p(e^x). A probe that raises tells nothing; one that hangs counts
    as "does not flush". In a worker, ``monitor`` lets the supervisor enforce the deadline."""
    first, rest = PROBE_FUNCTIONS
    has = [f for f in first if (target.exp is not None if f == "exp" else target.has(f))]
    deadline = _deadline(timeout) if monitor is None else contextlib.nullcontext()
    with contextlib.suppress(TargetTimeout), np.errstate(all="ignore"), deadline:
        for fname in has or [f for f in rest if target.has(f)]:
            if monitor is not None:
                monitor.call(fname)
            try:
                below, above = (_probe_value(target, fname, dtype, b) for b in (True, False))
            except Exception:
                continue
            finally:
                if monitor is not None:
                    monitor.returned()
            if math.isfinite(above) and above != 0:
                return below == 0
    return False


def _probe_value(target: Target, fname: str, dtype: DType, below: bool) -> float:
    """|result| of ``fname`` on the probe's input below or above r_min."""
    tiny = np.asarray([dtype.rmin / 2 if below else dtype.rmin * 4]).astype(dtype.np)
    x = np.asarray([math.log(dtype.rmin) + (-1.0 if below else 1.0)]).astype(dtype.np)
    if fname == "exp":
        assert target.exp is not None
        out = target.exp(x)
    elif fname == "cross_entropy":
        n = np.concatenate([tiny, np.zeros(1, dtype=dtype.np)])
        out = target.functions[fname](np.zeros(2, dtype=dtype.np), n, axis=-1)
    elif fname == "logsumexp":
        out = target.functions[fname](tiny, axis=-1)
    else:
        z = np.concatenate([np.zeros(1, dtype=dtype.np), x])
        out = target.functions[fname](z, axis=-1)
        out = np.asarray(out).reshape(-1)[1 if fname == "softmax" else 0]
    return abs(float(np.asarray(out, dtype=np.float64).reshape(-1)[0]))


def env_for(target: Target | None, dtype: str | DType, *, flushes: bool,
            timeout: float = 30.0) -> Env:
    """The environment a claim's check runs in: the target, the dtype and its budgets."""
    dt = get_dtype(dtype) if isinstance(dtype, str) else dtype
    compute = None
    if target is not None and dt.name in target.compute_dtype:
        compute = get_dtype(target.compute_dtype[dt.name])
    stable = Model.for_target(dt, "stable", flushes=flushes, compute=compute)
    accurate = Model.for_target(dt, "accurate", flushes=flushes, compute=compute)
    return Env(target, dt, stable, accurate, timeout=timeout)


def make_env(target: Target | None, dtype: DType, *, timeout: float = 30.0) -> tuple[Env, bool]:
    """``env_for`` with the flush probe run here (in-process use: the oracle's own tests)."""
    flushes = probe_flush(target, dtype, timeout) if target is not None else False
    return env_for(target, dtype, flushes=flushes, timeout=timeout), flushes


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
        if env.monitor is not None:
            env.monitor.example(snapshot)
        try:
            with np.errstate(all="ignore"):
                ratio = claim.check(env, ex)
        except Refuted as r:
            ratio = r.ratio if not math.isnan(r.ratio) else math.inf
            cex = Counterexample.from_example(snapshot, r.problem, ratio)
            state.last_failure, state.last_example = cex, snapshot
            if state.worst is None or not state.worst.problem or ratio >= state.worst_ratio:
                state.worst_ratio, state.worst = max(ratio, state.worst_ratio), cex
                state.worst_example = snapshot
            htarget(min(ratio, 1e300), label="error/budget")
            raise
        except Exception as e:
            state.internal = "".join(traceback.format_exception(type(e), e, e.__traceback__))
            raise _KitError(f"{type(e).__name__}: {e}") from e
        state.max_ulps = max(state.max_ulps, env.max_ulps)
        if ratio > state.worst_ratio or state.worst is None:
            state.worst_ratio = ratio
            state.worst = Counterexample.from_example(snapshot, "", ratio)
            state.worst_example = snapshot
        htarget(min(float(ratio), 1e300), label="error/budget")

    db = FailuresDatabase(DATABASE_DIR) if profile.database else None
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
    shrunk, worst = (state.last_failure if verdict == "refuted" else None), state.worst
    reproduce = (reproduce_command(target_name, claim, dtype, level, profile.name, seed)
                 if verdict == "refuted" else "")
    if shrunk is not None:  # the whole inputs, for `softmax-oracle replay`
        meta = dict(claim_id=claim.id, target=target_name, dtype=dtype.name, level=level,
                    seed=seed, reproduce=reproduce)
        shrunk = with_saved(shrunk, state.last_example, **meta)
        if worst is not None and worst.problem and worst.inputs != shrunk.inputs:
            worst = with_saved(worst, state.worst_example, **meta)
    return ClaimResult(
        **base, verdict=verdict, examples=state.calls, seconds=time.perf_counter() - start,
        reason=reason, max_ratio=state.worst_ratio, max_ulps=state.max_ulps, shrunk=shrunk,
        worst=worst, reproduce=reproduce)


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


#: Optional frameworks whose versions a report records (read from metadata, nothing imported).
FRAMEWORK_PACKAGES = ("scipy", "torch", "jax", "jaxlib", "optax", "ml_dtypes")


def versions(*, frameworks: bool = False) -> dict[str, str]:
    """Versions of Python, the kit and its dependencies (and the installed frameworks), read
    from package metadata."""
    out = {"python": platform.python_version()}
    packages = ("softmax-oracle", "numpy", "mpmath", "hypothesis", "gmpy2")
    for pkg in packages + (FRAMEWORK_PACKAGES if frameworks else ()):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[pkg] = importlib.metadata.version(pkg)
    return out


def applicable(claim: Claim, target: Target | TargetInfo) -> str:
    """Empty if the claim applies to the target, else the reason it does not."""
    if claim.kind == "mathematics":
        return "" if target.is_reference else "a statement about the mathematics, not the target"
    missing = [f for f in claim.needs if not target.has(f)]
    if missing:
        return f"the target has no {', '.join(missing)}"
    return ""
