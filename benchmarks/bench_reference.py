"""Throughput of the oracle: elements per second of reference + budgets + comparison.

For each row length and dtype, one workload is timed: the reference of a row, the budgets of
softmax, log-softmax (stable and accurate), log-sum-exp (stable and accurate) and the
cross-entropy gradient, and the comparison of the numpy target's outputs against them -- what
``softmax.matches_reference``, ``log_softmax.*``, ``logsumexp.*`` and
``cross_entropy_grad.any_targets`` do per example. Two implementations run in the same process:

* ``before``: the all-mpmath oracle as it was before the fast references (copied below,
  unchanged, so that the ratio is measured in one run on one machine);
* ``after``: ``softmax_oracle`` as installed (certified float64 / long double enclosures, with
  mpmath only where an enclosure cannot decide).

    python benchmarks/bench_reference.py --sizes 8,64,512,4096 --dtypes float64,float32

mpmath uses gmpy2 when it is installed; ``MPMATH_NOGMPY=1`` switches that off (compare both).

``--vocab 32768,262144`` instead times the claims' own checks (numpy target) on rows of
language-model size -- N(0, 3) logits with a few boosted tokens, masked or of one repeated value
but a few in turn, one-hot targets -- in seconds per example, each check with its own references
(nothing cached from the previous claim), as a search meets them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np

from softmax_oracle.oracle.compare import assess, concat
from softmax_oracle.oracle.dtypes import DType, get_dtype, round_to
from softmax_oracle.oracle.reference import mp_vector, row_refs
from softmax_oracle.oracle.tolerance import Model
from softmax_oracle.targets import builtin_numpy as target

MPF = Any

# ================================================================================================
# The oracle before the fast references, copied verbatim (the parts this workload uses).
# ================================================================================================


@functools.cache
def _old_context(prec: int) -> mpmath.MPContext:
    ctx = mpmath.MPContext()
    ctx.prec = prec
    return ctx


@dataclass
class _OldRowRef:
    ctx: mpmath.MPContext
    x: list[MPF | None]
    k: int
    a: MPF
    L: MPF
    l: list[MPF]
    g: list[MPF]
    one_minus_g: list[MPF]

    @property
    def n(self) -> int:
        return len(self.x)

    @property
    def all_masked(self) -> bool:
        return self.k < 0

    @property
    def y(self) -> MPF:
        if self.all_masked:
            return self.ctx.ninf
        ctx, a, L = self.ctx, self.a, self.L
        if a == 0 or L == 0 or ctx.mag(L) >= ctx.mag(a) - ctx.prec:
            return ctx.fadd(a, L, exact=True) if a != 0 and L != 0 else a + L
        return a

    def gap(self, j: int) -> MPF:
        xj = self.x[j]
        return self.ctx.inf if xj is None else self.a - xj

    @property
    def log_n(self) -> MPF:
        return self.ctx.log(self.n)

    def grad(self, n: Sequence[MPF]) -> list[MPF]:
        s = self.ctx.fsum(n)
        return [gj * (s - nj) - nj * omg for gj, nj, omg in zip(self.g, n, self.one_minus_g)]


def _old_row_ref(row: np.ndarray, prec: int) -> _OldRowRef:
    ctx = _old_context(prec)
    x: list[MPF | None] = [None if v == -np.inf else ctx.mpf(float(v)) for v in row]
    finite = [j for j, v in enumerate(x) if v is not None]
    if not finite:
        ninf = ctx.ninf
        return _OldRowRef(ctx, x, -1, ninf, ctx.zero, [ninf] * len(x), [ctx.zero] * len(x),
                          [ctx.one] * len(x))
    k = max(finite, key=lambda j: x[j])
    a = x[k]
    shifted = [None if v is None else ctx.fsub(v, a, exact=True) for v in x]
    L = ctx.log1p(ctx.fsum(ctx.exp(s) for j, s in enumerate(shifted) if s is not None and j != k))
    l = [ctx.ninf if s is None else s - L for s in shifted]
    g = [ctx.zero if s is None else ctx.exp(lj) for s, lj in zip(shifted, l)]
    omg = [ctx.one if s is None else -ctx.expm1(lj) for s, lj in zip(shifted, l)]
    return _OldRowRef(ctx, x, k, a, L, l, g, omg)


_MU, _C_GAP, _K = 4, 2, 2


@dataclass(frozen=True)
class _OldModel:
    dtype: DType
    level: str
    phi0: float

    def _rel(self, r: _OldRowRef, j: int) -> MPF:
        return _C_GAP * r.gap(j) + r.n + 2 * _MU + (1 + _MU) * r.log_n + 1

    @staticmethod
    def _grow(r: _OldRowRef, uc: float, B: MPF) -> MPF:
        return r.ctx.expm1(_K * uc * B)

    def softmax(self, r: _OldRowRef) -> list[MPF]:
        uc = self.dtype.u
        out = []
        for j, gj in enumerate(r.g):
            if r.x[j] is None:
                out.append(r.ctx.zero)
                continue
            out.append(gj * self._grow(r, uc, self._rel(r, j)) + 2 * self.phi0)
        return out

    def logsumexp(self, r: _OldRowRef) -> MPF:
        if r.all_masked:
            return r.ctx.zero
        uc = self.dtype.u
        y = r.y
        tol = _K * uc * (_MU * abs(y) + r.n + _MU + (1 + _MU) * r.log_n)
        if self.level == "accurate":
            P = r.ctx.fsum(abs(xi) * gi for xi, gi in zip(r.x, r.g) if xi is not None)
            acc = _K * uc * (2 * r.n + 2 * _MU + 2) * (P + abs(y)) + 2 * r.n * self.phi0
            tol = min(tol, acc)
        return tol

    def log_softmax(self, r: _OldRowRef) -> list[MPF]:
        uc = self.dtype.u
        ctx = r.ctx
        out = []
        P_all = None
        if self.level == "accurate":
            P_all = ctx.fsum(abs(xi) * gi for xi, gi in zip(r.x, r.g) if xi is not None)
        for j, lj in enumerate(r.l):
            if r.x[j] is None:
                out.append(ctx.zero)
                continue
            tol = _K * uc * (2 * abs(lj) + r.n + _MU + (1 + _MU) * r.log_n)
            if P_all is not None:
                xj = abs(r.x[j])
                Pj = P_all - xj * r.g[j] + xj * r.one_minus_g[j]
                tol = min(tol, _K * uc * (2 * r.n + 2 * _MU + 2) * (Pj + abs(lj))
                          + 2 * r.n * self.phi0)
            out.append(tol)
        return out

    def grad(self, r: _OldRowRef, n: Sequence[MPF]) -> list[MPF]:
        ctx, u = r.ctx, self.dtype.u
        N1 = ctx.fsum(abs(nj) for nj in n)
        delta = r.grad(n)
        floor = 2 * (N1 + r.n + 1) * self.phi0
        out = []
        for j in range(r.n):
            if r.x[j] is None:
                out.append(abs(delta[j]) * _K * u + floor)
                continue
            B = self._rel(r, j) + r.n + 1
            out.append(N1 * r.g[j] * self._grow(r, u, B) + _K * u * abs(delta[j]) + floor)
        return out


def _old_ratio(c: float, ref: MPF, tol: MPF, dtype: DType) -> tuple[float, MPF | None]:
    if math.isnan(c):
        return math.inf, None
    if ref.context.isinf(ref):
        return (0.0, ref * 0) if c == float(ref) else (math.inf, None)
    if math.isinf(c):
        return (0.0, None) if round_to(ref, dtype) == c else (math.inf, None)
    err = abs(ref - c)
    if err == 0 or round_to(ref, dtype) == c:
        return 0.0, err
    if tol == 0:
        return math.inf, err
    q = err / tol
    try:
        return min(float(q), 1e300), err
    except OverflowError:
        return 1e300, err


def _old_assess(computed: np.ndarray, refs: Sequence[MPF], tols: Sequence[MPF],
                dtype: DType) -> tuple[float, int, float]:
    """The comparison loop of the old ``assess`` (message formatting left out: it only runs on
    refutations)."""
    flat = np.asarray(computed, dtype=np.float64).reshape(-1)
    worst_ratio, bad, max_ulps = 0.0, 0, 0.0
    for c, ref, tol in zip(flat, refs, tols):
        ratio, err = _old_ratio(float(c), ref, tol, dtype)
        if err is not None and math.isfinite(float(c)):
            with contextlib.suppress(OverflowError, ValueError):
                max_ulps = max(max_ulps, float(err) / dtype.ulp(float(ref)))
        bad += ratio > 1
        worst_ratio = max(worst_ratio, ratio)
    return worst_ratio, bad, max_ulps


# ================================================================================================
# The workload
# ================================================================================================


@dataclass
class _Case:
    z: np.ndarray  # (rows, n) in the dtype
    n: np.ndarray  # targets, same shape
    outputs: dict[str, np.ndarray]  # the numpy target's outputs, float64


def _cases(dtype: DType, size: int, count: int, seed: int) -> list[_Case]:
    """Rows of logits from a few regimes (normal, wide, dominant, offset) with soft targets."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        regime = i % 4
        if regime == 0:
            z = rng.normal(0.0, 5.0, size)
        elif regime == 1:
            z = rng.uniform(-60.0, 10.0, size)
        elif regime == 2:
            z = rng.normal(0.0, 1.0, size)
            z[rng.integers(size)] += 30.0
        else:
            z = 1000.0 + rng.normal(0.0, 2.0, size)
        zc = z.astype(dtype.np)
        w = rng.random(size)
        nc = (w / w.sum()).astype(dtype.np)
        outputs = {
            "softmax": target.softmax(zc),
            "log_softmax": target.log_softmax(zc),
            "logsumexp": np.atleast_1d(target.logsumexp(zc)),
            "grad": target.cross_entropy_grad(zc, nc),
        }
        out.append(_Case(zc[None, :], nc[None, :],
                         {k: np.asarray(v, dtype=np.float64) for k, v in outputs.items()}))
    return out


def _work_before(case: _Case, dtype: DType) -> float:
    stable = _OldModel(dtype, "stable", dtype.rmin_sub)
    accurate = _OldModel(dtype, "accurate", dtype.rmin_sub)
    worst = 0.0
    for row, nrow in zip(case.z.astype(np.float64), case.n.astype(np.float64)):
        r = _old_row_ref(row, dtype.prec)
        ns = [r.ctx.mpf(float(v)) for v in nrow]
        o = case.outputs
        checks = [
            (o["softmax"], r.g, stable.softmax(r)),
            (o["log_softmax"], r.l, stable.log_softmax(r)),
            (o["log_softmax"], r.l, accurate.log_softmax(r)),
            (o["logsumexp"], [r.y], [stable.logsumexp(r)]),
            (o["logsumexp"], [r.y], [accurate.logsumexp(r)]),
            (o["grad"], r.grad(ns), stable.grad(r, ns)),
        ]
        for out, refs, tols in checks:
            worst = max(worst, _old_assess(out, refs, tols, dtype)[0])
    return worst


def _work_after(case: _Case, dtype: DType) -> float:
    stable = Model.for_target(dtype, "stable")
    accurate = Model.for_target(dtype, "accurate")
    worst = 0.0
    rows = row_refs(case.z, -1, dtype.prec)
    for r, nrow in zip(rows, case.n.astype(np.float64)):
        ns = mp_vector(r.ctx, nrow)
        o = case.outputs
        checks = [
            (o["softmax"], r.g, stable.softmax(r)),
            (o["log_softmax"], r.l, stable.log_softmax(r)),
            (o["log_softmax"], r.l, accurate.log_softmax(r)),
            (o["logsumexp"], concat([r.logsumexp(certified=True)]),
             concat([stable.logsumexp(r, certified=True)])),
            (o["logsumexp"], concat([r.logsumexp(certified=True)]),
             concat([accurate.logsumexp(r, certified=True)])),
            (o["grad"], r.grad(ns), stable.grad(r, ns)),
        ]
        for out, refs, tols in checks:
            worst = max(worst, assess(out, refs, tols, dtype, str).ratio)
    return worst


def _rate(work: Callable[[_Case, DType], float], cases: list[_Case], dtype: DType,
          min_seconds: float) -> tuple[float, float]:
    """(elements per second, worst ratio) over the cases, repeated until min_seconds passed."""
    elements, worst = 0, 0.0
    start = time.perf_counter()
    while True:
        for case in cases:
            worst = max(worst, work(case, dtype))
            elements += case.z.size
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elements / elapsed, worst


VOCAB_CLAIMS = ("softmax.matches_reference", "log_softmax.matches_reference",
                "logsumexp.matches_reference", "cross_entropy.matches_reference",
                "cross_entropy_grad.any_targets", "log_softmax.accurate", "logsumexp.accurate",
                "cross_entropy.accurate")


def _vocab_row(dtype: DType, size: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 3.0, size)
    z[rng.integers(0, size, 8)] += rng.uniform(5.0, 20.0, 8)
    if seed % 3 == 1:
        z[rng.random(size) < 0.3] = -np.inf
    elif seed % 3 == 2:
        keep = rng.integers(0, size, 32)
        sparse = np.full(size, -5.0)
        sparse[keep] = z[keep]
        z = sparse
    zc = z.astype(dtype.np)
    n = np.zeros(size)
    n[int(np.argmax(zc.astype(np.float64)))] = 1.0
    return {"z": zc[None], "axis": -1, "n": n.astype(dtype.np)[None]}


def vocab(dtypes: list[str], sizes: list[int], rows: int,
          exact_up_to: int = 0) -> list[dict[str, Any]]:
    """Seconds per example of each claim's check; for rows up to ``exact_up_to`` entries also
    with the enclosures switched off (mpmath for every element), in the same process."""
    from softmax_oracle.engine.search import make_env
    from softmax_oracle.oracle.reference import exact_only
    from softmax_oracle.spec.claims import get_claim
    from softmax_oracle.targets import load_target

    tgt = load_target("numpy")
    out: list[dict[str, Any]] = []
    print(f"{'dtype':<9} {'n':>7}  {'claim':<34} {'s/example':>9} {'max':>6}  "
          f"{'mpmath only':>11}  worst ratio")

    def timed(claim: Any, env: Any, dtype: DType, size: int) -> tuple[list[float], float]:
        times, worst = [], 0.0
        for seed in range(rows):
            ex = _vocab_row(dtype, size, seed)
            env._row_cache.clear()
            start = time.perf_counter()
            with np.errstate(all="ignore"):
                worst = max(worst, claim.check(env, ex))
            times.append(time.perf_counter() - start)
        return times, worst

    for name in dtypes:
        dtype = get_dtype(name)
        env, _ = make_env(tgt, dtype)
        for size in sizes:
            for cid in VOCAB_CLAIMS:
                claim = get_claim(cid)
                times, worst = timed(claim, env, dtype, size)
                exact = math.nan
                if size <= exact_up_to:
                    with exact_only():
                        exact = float(np.median(timed(claim, env, dtype, size)[0]))
                print(f"{name:<9} {size:>7}  {cid:<34} {float(np.median(times)):>9.3g} "
                      f"{max(times):>6.3g}  {exact:>11.3g}  {worst:.3g}", flush=True)
                out.append({"dtype": name, "n": size, "claim": cid,
                            "median_seconds": float(np.median(times)),
                            "max_seconds": max(times), "exact_seconds": exact,
                            "worst_ratio": worst})
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="8,64,512,4096")
    p.add_argument("--dtypes", default="float64,float32")
    p.add_argument("--rows", type=int, default=4, help="distinct rows per size (regimes cycle)")
    p.add_argument("--min-seconds", type=float, default=1.0, help="minimum time per measurement")
    p.add_argument("--skip-before", action="store_true", help="time only the current oracle")
    p.add_argument("--vocab", metavar="SIZES",
                   help="time the claims' checks on rows of these lengths instead")
    p.add_argument("--exact-up-to", type=int, default=0, metavar="N",
                   help="with --vocab: also time rows of up to N entries with mpmath only")
    p.add_argument("--json", metavar="PATH", help="also write the measurements as JSON")
    a = p.parse_args()
    backend = mpmath.libmp.BACKEND
    measured: list[dict[str, Any]] = []
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, numpy {np.__version__}, mpmath {mpmath.__version__} "
          f"(backend {mpmath.libmp.BACKEND}), load average {os.getloadavg()[0]:.2f}")
    if a.vocab:
        measured = vocab(a.dtypes.split(","), [int(s) for s in a.vocab.split(",")], a.rows,
                         a.exact_up_to)
        _dump(a.json, backend, measured)
        return 0
    print(f"{'dtype':<9} {'n':>6} {'before el/s':>12} {'after el/s':>12} {'ratio':>8}  "
          f"worst error/budget (before, after)")
    for name in a.dtypes.split(","):
        dtype = get_dtype(name)
        for size in (int(s) for s in a.sizes.split(",")):
            cases = _cases(dtype, size, a.rows, seed=size)
            with np.errstate(all="ignore"):
                after, w_after = _rate(_work_after, cases, dtype, a.min_seconds)
                if a.skip_before:
                    before, w_before = math.nan, math.nan
                else:
                    before, w_before = _rate(_work_before, cases, dtype, a.min_seconds)
            print(f"{name:<9} {size:>6} {before:>12.0f} {after:>12.0f} {after / before:>8.1f}  "
                  f"({w_before:.3g}, {w_after:.3g})", flush=True)
            measured.append({"dtype": name, "n": size, "before": before, "after": after,
                             "worst_before": w_before, "worst_after": w_after})
    _dump(a.json, backend, measured)
    return 0


def _dump(path: str | None, backend: str, measured: list[dict[str, Any]]) -> None:
    if path:
        import json

        with open(path, "w", encoding="utf-8") as f:
            json.dump({"backend": backend, "load": os.getloadavg()[0], "rows": measured}, f,
                      indent=1)


if __name__ == "__main__":
    sys.exit(main())
