"""Searching one claim with Hypothesis: search, steer toward the worst error, shrink, record.

``run_claim`` runs in a worker process (``engine.worker``), next to the target; the same seed gives
the same examples wherever it runs (``_same_examples_in_every_process``).

Besides a counterexample, a search counts what its verdict rests on (``docs/tolerances.md``,
"Uninformative budgets", and ``spec.claims`` on the kinds):

* an example where the target raises is *skipped* (judged once, by ``<function>.
  returns_on_valid_input``); a claim whose every example was skipped is "unjudged";
* an example on which every budget the check compared was at least the quantity it bounds is
  *uninformative*; a claim with no counterexample whose every judged example was uninformative is
  "uninformative", not "verified". For float16 and bfloat16 such examples are checked once more
  against the budget of an algorithm that computes in float32 (``ClaimResult.wider``);
* a convention claim's example that follows the claim's alternative is recorded, and the search
  goes on for values that follow neither convention (a refutation); if none turns up, a second
  search shrinks an example of the alternative, and the verdict is "differs" (else "follows").
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
from softmax_oracle.targets.call import (
    Env,
    Monitor,
    TargetRaised,
    TargetTimeout,
    _deadline,
    returns_claim,
)

if sys.version_info >= (3, 11):
    _GROUP: type[BaseException] = builtins.BaseExceptionGroup
else:  # Python 3.10
    from exceptiongroup import BaseExceptionGroup as _GROUP
from softmax_oracle.engine.results import ClaimResult, Counterexample, WiderBudget
from softmax_oracle.oracle.compare import Refuted
from softmax_oracle.oracle.dtypes import DType, get_dtype
from softmax_oracle.oracle.tolerance import Model
from softmax_oracle.spec.checks.common import Differs
from softmax_oracle.spec.claims import Claim, Inputs, get_claim
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
    judged: int = 0  # examples the check judged (not skipped)
    uninformative: int = 0  # judged examples on which every budget was at least its quantity
    skipped: dict[str, tuple[int, str]] = dataclasses.field(default_factory=dict)  # by function
    differs: Counterexample | None = None  # the first example that follows the alternative
    differs_example: dict[str, Any] | None = None
    shrinking_differs: bool = False  # the second search: an alternative example fails it
    last_differs: bool = False  # last_failure follows the alternative convention
    wider_examples: int = 0
    wider_ratio: float = 0.0
    wider_worst: Counterexample | None = None

    def skip(self, e: TargetRaised) -> None:
        n, first = self.skipped.get(e.fname, (0, e.problem))
        self.skipped[e.fname] = (n + 1, first)

    def skip_note(self) -> str:
        """N of M examples skipped, and why (each function's first exception)."""
        if not self.skipped:
            return ""
        n = sum(k for k, _ in self.skipped.values())
        why = "; ".join(f"{_first_line(first)} (judged under {returns_claim(fname)})"
                        for fname, (_, first) in self.skipped.items())
        return f"{n} of {self.calls} examples skipped: {why}"

    def settled(self, claim: Claim) -> str:
        """The verdict of a search that found no counterexample."""
        if not self.judged:
            return "unjudged" if self.skipped else "verified"
        if claim.kind == "convention":
            return "differs" if self.differs is not None else "follows"
        return "uninformative" if self.uninformative == self.judged else "verified"


def _first_line(text: str, width: int = 240) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


#: The dtype a wider algorithm computes in, for inputs of a narrow dtype (ClaimResult.wider).
WIDER = {"float16": "float32", "bfloat16": "float32"}


def _wider_models(env: Env) -> tuple[str, Model, Model] | None:
    """The stable and accurate models of an algorithm that computes the single-kernel functions
    in float32 and rounds once, for float16 and bfloat16 inputs; None if the target declares
    that already (its own budgets are those) or the dtype is not narrow."""
    name = WIDER.get(env.dtype.name)
    if name is None or 0 < env.stable.uc < env.dtype.u:
        return None
    wide, flushes = get_dtype(name), env.stable.flushes
    return (name, Model.for_target(env.dtype, "stable", flushes=flushes, compute=wide),
            Model.for_target(env.dtype, "accurate", flushes=flushes, compute=wide))


def _recheck(claim: Claim, env: Env, ex: dict[str, Any],
             models: tuple[Model, Model]) -> float | None:
    """The check once more under the wider models (it calls the target again): the ratio (above
    1 where the wider budget is exceeded), or None when the wider budgets say nothing either
    (functions they do not apply to) or the target raised this time."""
    saved = env.stable, env.accurate, env.max_ulps
    env.stable, env.accurate = models
    env.informative = env.vacuous = False
    try:
        with np.errstate(all="ignore"):
            ratio = claim.check(env, ex)
        informative = env.informative
    except TargetRaised:
        return None
    except Refuted as r:  # over the wider budget: that says something
        ratio, informative = (math.inf if math.isnan(r.ratio) else r.ratio), True
    finally:
        env.stable, env.accurate, env.max_ulps = saved
        env.informative, env.vacuous = False, True  # as the native check left them
    return ratio if informative else None


def _judged_elsewhere(fname: str) -> bool:
    """Is there a claim that judges exceptions of this function (so that others skip them)?"""
    try:
        get_claim(returns_claim(fname))
    except KeyError:
        return False
    return True


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


def _inputs(profile: Profile, target: Target | None = None) -> Inputs:
    """The sizes a claim's strategy may use under a profile."""
    sizes: dict[str, int] = {"max_size": profile.max_size, "dense_size": profile.dense_size}
    if "vocab_size" in {f.name for f in dataclasses.fields(Inputs)}:
        sizes["vocab_size"] = profile.vocab_size
    return Inputs(**sizes, loss=target.loss if target is not None else None)


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
    inputs = _inputs(profile, env.target)
    start = time.perf_counter()
    base: dict[str, Any] = dict(claim_id=claim.id, target=target_name, dtype=dtype.name,
                                level=level, expected=claim.expect, seed=seed)
    try:
        strategy = claim.strategy(dtype, inputs)
    except Exception as e:  # a strategy that cannot be built is the kit's bug
        return ClaimResult(**base, verdict="error",
                           reason=f"building the inputs failed: {type(e).__name__}: {e}")
    state = _Search()
    wider = _wider_models(env) if claim.kind != "convention" else None

    def test(ex: dict[str, Any]) -> None:
        state.calls += 1
        snapshot = {k: (v.copy() if isinstance(v, np.ndarray) else copy.deepcopy(v))
                    for k, v in ex.items()}
        env.start_example()
        if env.monitor is not None:
            env.monitor.example(snapshot)
        try:
            with np.errstate(all="ignore"):
                ratio = claim.check(env, ex)
        except Refuted as r:
            if isinstance(r, TargetRaised) and _judged_elsewhere(r.fname):
                state.skip(r)  # judged once, under returns_on_valid_input
                return
            state.judged += 1
            if isinstance(r, Differs) and not state.shrinking_differs:
                if state.differs is None:  # recorded; the search goes on for refutations
                    state.differs = Counterexample.from_example(snapshot, r.problem, math.inf)
                    state.differs_example = snapshot
                return
            ratio = r.ratio if not math.isnan(r.ratio) else math.inf
            cex = Counterexample.from_example(snapshot, r.problem, ratio)
            state.last_failure, state.last_example = cex, snapshot
            state.last_differs = isinstance(r, Differs)
            if state.worst is None or not state.worst.problem or ratio >= state.worst_ratio:
                state.worst_ratio, state.worst = max(ratio, state.worst_ratio), cex
                state.worst_example = snapshot
            htarget(min(ratio, 1e300), label="error/budget")
            raise
        except Exception as e:
            state.internal = "".join(traceback.format_exception(type(e), e, e.__traceback__))
            raise _KitError(f"{type(e).__name__}: {e}") from e
        state.judged += 1
        if env.uninformative:
            state.uninformative += 1
            wide = _recheck(claim, env, ex, wider[1:]) if wider is not None else None
            if wide is not None:
                state.wider_examples += 1
                if state.wider_worst is None or wide > state.wider_ratio:
                    state.wider_ratio = wide
                    state.wider_worst = Counterexample.from_example(snapshot, "", wide)
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

    verdict, reason = _search(wrapped, state)
    if verdict == "verified" and state.differs is not None:
        # Only the alternative convention turned up: search again, now failing on it, so that
        # Hypothesis shrinks an example of it (or slips to a refutation it finds on the way).
        state.shrinking_differs, state.last_failure = True, None
        verdict, reason = _search(wrapped, state)
        if verdict == "verified" or (verdict == "refuted" and state.last_differs):
            verdict = "differs"
            if state.last_failure is None:  # it did not come back: the first one seen
                state.last_failure, state.last_example = state.differs, state.differs_example
    if verdict == "verified":
        verdict = state.settled(claim)
    if not reason:
        reason = state.skip_note()
    shown = verdict in ("refuted", "differs")
    shrunk, worst = (state.last_failure if shown else None), state.worst
    reproduce = (reproduce_command(target_name, claim, dtype, level, profile.name, seed)
                 if shown else "")
    if shrunk is not None:  # the whole inputs, for `softmax-oracle replay`
        meta = dict(claim_id=claim.id, target=target_name, dtype=dtype.name, level=level,
                    seed=seed, reproduce=reproduce)
        shrunk = with_saved(shrunk, state.last_example, **meta)
        if worst is not None and worst.problem and worst.inputs != shrunk.inputs:
            worst = with_saved(worst, state.worst_example, **meta)
    return ClaimResult(
        **base, verdict=verdict, examples=state.calls, seconds=time.perf_counter() - start,
        reason=reason, max_ratio=state.worst_ratio, max_ulps=state.max_ulps, shrunk=shrunk,
        worst=worst, reproduce=reproduce, uninformative=state.uninformative,
        skipped=sum(n for n, _ in state.skipped.values()),
        wider=WiderBudget(wider[0], state.wider_examples, state.wider_ratio, state.wider_worst)
        if wider is not None and state.wider_examples else None)


def _search(wrapped: Any, state: _Search) -> tuple[str, str]:
    """Run the Hypothesis search: (verdict, reason), "verified" if nothing failed."""
    try:
        with _same_examples_in_every_process():
            wrapped()
    except Refuted:
        return "refuted", ""
    except _KitError as e:
        return "error", f"internal error in softmax-oracle: {e}\n{state.internal}"
    except (HypothesisException, _GROUP) as e:  # e.g. Flaky: failed, then passed
        if state.last_failure is not None:
            return "refuted", (f"the failure did not reproduce on replay ({type(e).__name__}): "
                               f"the target may be nondeterministic")
        return "error", f"{type(e).__name__}: {e}"
    except Exception as e:  # generating the inputs failed: the kit's bug, reported, not raised
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        return "error", f"internal error in softmax-oracle: {type(e).__name__}: {e}\n{tb}"
    return "verified", ""


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
    if claim.requires:
        sup = target.loss
        absent = [r for r in claim.requires
                  if r not in sup.targets + sup.reductions + sup.options]
        if absent:
            named = [f"{r} targets" if r in ("index", "probability") else
                     f"reduction={r!r}" if r in ("none", "sum", "mean") else r for r in absent]
            return f"its loss API does not support {', '.join(named)}"
    return ""
