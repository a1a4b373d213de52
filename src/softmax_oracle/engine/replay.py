"""``softmax-oracle replay FILE``: check a claim again on exactly the input saved in FILE
(``engine.saved``), in a supervised worker process, as the search that found it did."""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np

from softmax_oracle.engine.results import ClaimResult, Counterexample, format_value
from softmax_oracle.engine.saved import Saved, load_saved
from softmax_oracle.engine.search import applicable, make_env
from softmax_oracle.oracle.compare import Refuted
from softmax_oracle.oracle.dtypes import get_dtype
from softmax_oracle.spec.claims import get_claim
from softmax_oracle.targets import TargetError, load_target

__all__ = ["replay_saved"]


def _resolve_target(saved: Saved, override: str | None) -> str:
    """The target to load: the one given, else the saved one (a relative file path is tried in
    the directory the run started in too)."""
    if override:
        return override
    spec = saved.target
    module_part = spec.partition(":")[0]
    if (module_part.endswith(".py") or os.sep in module_part) and not os.path.isabs(module_part) \
            and not os.path.exists(module_part) and saved.cwd:
        there = os.path.join(saved.cwd, module_part)
        if os.path.exists(there):
            return os.path.join(saved.cwd, spec)
    return spec


def replay_saved(argument: tuple[str, str | None, float]) -> ClaimResult | str:
    """Check the saved input's claim once more on exactly that input (run in a worker process,
    through a ``CallJob``). A ``ClaimResult`` (refuted, or verified on this one input), or the
    reason the target could not be loaded."""
    path, override, timeout = argument
    saved = load_saved(path)
    spec = _resolve_target(saved, override)
    try:
        target = load_target(spec)
    except TargetError as e:
        return str(e)
    try:
        claim = get_claim(saved.claim_id)
    except KeyError:
        return (f"{path} holds an input of the claim {saved.claim_id!r}, which this version's "
                f"specification does not have")
    dt = get_dtype(saved.dtype)
    if not target.supports(dt.name):
        return f"the target {spec!r} does not support {dt.name} (its __softmax_oracle__ says so)"
    reason = applicable(claim, target)
    if reason:
        return f"{claim.id} does not apply to the target {spec!r}: {reason}"
    env, _ = make_env(target, dt, timeout=timeout)
    env.rng_seed = saved.seed or 0
    inputs = {k: v for k, v in saved.example.items() if k != "regime"}
    literals = {k: format_value(v) for k, v in inputs.items()}
    base: dict[str, Any] = dict(
        claim_id=claim.id, target=override or saved.target, dtype=dt.name, level=saved.level,
        expected=claim.expect, examples=1, seed=saved.seed,
        reproduce="" if override else saved.reproduce)
    start = time.perf_counter()
    try:
        with np.errstate(all="ignore"):
            ratio = claim.check(env, dict(saved.example))
    except Refuted as r:
        ratio = r.ratio if not math.isnan(r.ratio) else math.inf
        cex = Counterexample(literals, r.problem, ratio, saved.example["regime"], saved.path)
        return ClaimResult(**base, verdict="refuted", seconds=time.perf_counter() - start,
                           max_ratio=ratio, shrunk=cex, worst=cex)
    cex = Counterexample(literals, "", float(ratio), saved.example["regime"], saved.path)
    return ClaimResult(**base, verdict="verified", seconds=time.perf_counter() - start,
                       max_ratio=float(ratio), max_ulps=env.max_ulps, worst=cex)
