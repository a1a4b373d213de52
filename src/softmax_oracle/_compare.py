"""Comparison of computed values against references and budgets, done outside the target.

Computed values arrive as float64 numpy arrays (every dtype widens exactly); references and
tolerances are mpf. The comparison is |computed - ref| <= tol, evaluated in mpmath, and a value
equal to the correctly rounded reference always passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ._dtypes import DType, round_to
from ._reference import MPF

__all__ = ["Assessment", "Refuted", "assess", "index_labeler"]


class Refuted(Exception):
    """A claim does not hold on the current example; the message says what, where, how much."""

    def __init__(self, problem: str, ratio: float = math.inf) -> None:
        super().__init__(problem)
        self.problem = problem
        self.ratio = ratio


@dataclass
class Assessment:
    """The outcome of comparing one output against its references."""

    ratio: float  # max over elements of |error| / tolerance (0 when all exact)
    bad: int  # number of elements over budget
    total: int
    problem: str | None  # description of the worst violation, None when all hold
    max_ulps: float = 0.0  # max |error| in ulps of the reference (for accuracy tables)

    def raise_if_bad(self) -> None:
        if self.problem is not None:
            raise Refuted(self.problem, self.ratio)


def _fmt(x: float | MPF) -> str:
    try:
        f = float(x)
    except (OverflowError, ValueError):
        return str(x)
    if f == 0 and x != 0:
        return f"{float(x):.3g} (mp: {x})"  # below float64 range
    return repr(f)


def _short(x: float | MPF) -> str:
    try:
        return f"{float(x):.2g}"
    except (OverflowError, ValueError):
        return str(x)


def index_labeler(shape: tuple[int, ...], axis: int, name: str = "out") -> Callable[[int], str]:
    """Map a flat position in rows-of(axis) order back to an index into the original array."""
    ndim = len(shape)
    if ndim == 0:
        return lambda pos: name
    ax = axis % ndim
    moved = (*(s for i, s in enumerate(shape) if i != ax), shape[ax])

    def label(pos: int) -> str:
        idx = list(np.unravel_index(pos, moved)) if moved else []
        last = idx.pop()
        idx.insert(ax, last)
        return f"{name}[{', '.join(str(int(i)) for i in idx)}]"

    return label


def assess(computed: np.ndarray, refs: Sequence[MPF], tols: Sequence[MPF], dtype: DType,
           label: Callable[[int], str], what: str = "") -> Assessment:
    """Compare computed (flat, float64, same order as refs) against refs within tols."""
    flat = np.asarray(computed, dtype=np.float64).reshape(-1)
    if flat.size != len(refs):  # pragma: no cover - callers check shapes first
        raise Refuted(f"{what}: {flat.size} values, expected {len(refs)}")
    worst_ratio, worst_pos, worst_err, worst_tol = 0.0, -1, None, None
    bad = 0
    max_ulps = 0.0
    for pos, (c, ref, tol) in enumerate(zip(flat, refs, tols)):
        ratio, err = _ratio(float(c), ref, tol, dtype)
        if err is not None and math.isfinite(float(c)):
            try:
                ulp = dtype.ulp(float(ref))
                max_ulps = max(max_ulps, float(err) / ulp)
            except (OverflowError, ValueError):
                pass
        if ratio > 1:
            bad += 1
        if ratio > worst_ratio or (worst_pos < 0 and ratio > 1):
            worst_ratio, worst_pos, worst_err, worst_tol = ratio, pos, err, tol
    problem = None
    if bad:
        c, ref = flat[worst_pos], refs[worst_pos]
        where = label(worst_pos)
        if worst_err is None:
            detail = "not allowed"
        else:
            rel = ""
            if ref != 0 and math.isfinite(float(c)):
                rel = f"{_short(abs(worst_err / ref))} relative; "
            detail = (f"|error| {_short(worst_err)}, {rel}allowed {_short(worst_tol)}: "
                      f"{_short(worst_ratio)}x the budget")
        prefix = f"{what}: " if what else ""
        problem = (f"{prefix}{where} = {_fmt(c)}, but should be {_fmt(ref)} ({detail})"
                   f"\n  Mismatched elements: {bad} / {len(refs)} "
                   f"({100.0 * bad / len(refs):.3g}%)")
    return Assessment(worst_ratio, bad, len(refs), problem, max_ulps)


def _ratio(c: float, ref: MPF, tol: MPF, dtype: DType) -> tuple[float, MPF | None]:
    """(error / tolerance, |error|) for one element; error None when it is not a number."""
    if math.isnan(c):
        return math.inf, None
    if ref.context.isinf(ref):
        return (0.0, ref * 0) if c == float(ref) else (math.inf, None)
    if math.isinf(c):
        # Only a correctly rounded overflow may be infinite.
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
