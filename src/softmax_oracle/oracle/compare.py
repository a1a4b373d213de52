"""Comparison of computed values against references and budgets, done outside the target.

Computed values arrive as float64 numpy arrays (every dtype widens exactly); references and
tolerances are mpf. The comparison is |computed - ref| <= tol, evaluated in mpmath, and a value
equal to the correctly rounded reference always passes.

When references and tolerances come as ``Certified`` vectors with enclosures, the comparison runs
vectorised on the enclosures and is decided exactly as the mpmath comparison would decide it: an
element passes or fails there only when every value in its enclosures does; the others (and the
worst element of a refutation) are compared in mpmath. The reported ratio error / budget then
comes from the enclosures: within 2^-8 (1 + ratio) of the mpmath ratio wherever they are that
narrow, and recomputed in mpmath for the few elements that could be the largest otherwise
(docs/tolerances.md, "Fast references").
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from softmax_oracle.oracle.dtypes import DType, round_to
from softmax_oracle.oracle.exact import MPF, Bounds, Certified, concat
from softmax_oracle.oracle.intervals import _F64, _LD

__all__ = ["Assessment", "Refuted", "assess", "concat", "distinct", "index_labeler", "informs"]

#: Enclosures narrower than this fraction of the budget give the ratio directly.
RATIO_PRECISION = 2.0**-8
#: At most this many elements per comparison are recomputed in mpmath for the reported ratio
#: alone (never for a verdict: every undecided element is), and only in comparisons of at most
#: EXACT_FOR_RATIO_SIZE elements (each costs the mpmath reference of its row).
EXACT_FOR_RATIO = 32
EXACT_FOR_RATIO_SIZE = 1 << 16


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


def _short(x: float | MPF, digits: int = 2) -> str:
    if digits > 17 and hasattr(x, "context"):  # beyond float64: mpmath's own digits
        return str(x.context.nstr(x, digits, min_fixed=1, max_fixed=0))
    try:
        return f"{float(x):.{digits}g}"
    except (OverflowError, ValueError):
        return str(x)


def distinct(x: float | MPF, y: float | MPF, digits: int = 2) -> tuple[str, str]:
    """x and y to ``digits`` significant digits, or to as many more as it takes to tell them
    apart when they differ: an error just over its budget must not print as equal to it
    ("fails by 9.03e-06 (allowed 9.03e-06)"). Rounding is monotonic, so the larger number
    never prints as the smaller."""
    a, b = _short(x, digits), _short(y, digits)
    d = digits
    while a == b and x != y and d < 60:
        d += 1
        a, b = _short(x, d), _short(y, d)
    return a, b


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
    if isinstance(refs, Certified) and isinstance(tols, Certified):
        rb, tb = refs.bounds, tols.bounds
        if rb is not None and tb is not None:
            with np.errstate(all="ignore"):
                return _assess_fast(flat, refs, tols, rb, tb, dtype, label, what)
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
        problem = _problem(flat[worst_pos], refs[worst_pos], worst_err, worst_tol, worst_ratio,
                           label(worst_pos), bad, len(refs), what)
    return Assessment(worst_ratio, bad, len(refs), problem, max_ulps)


def _problem(c: float, ref: MPF, err: MPF | None, tol: MPF, ratio: float, where: str, bad: int,
             total: int, what: str) -> str:
    prefix = f"{what}: " if what else ""
    tail = f"\n  Mismatched elements: {bad} / {total} ({100.0 * bad / total:.3g}%)"
    if err is None and math.isnan(c) and ref.context.isnan(ref):
        # the reference is itself an output of the target (e.g. softmax(z) for softmax(z + c))
        return (f"{prefix}{where} = nan, and the value it is compared with is nan too (a NaN "
                f"is never within a budget){tail}")
    if tol == 0 and not math.isnan(c) and not ref.context.isnan(ref):
        exact = _exact(c, ref)
        if exact:
            return f"{prefix}{where} = {_fmt(c)}, {exact}{tail}"
    if err is None:
        detail = _no_error(c, ref)
    else:
        rel = ""
        if ref != 0 and math.isfinite(float(c)):
            rel = f"{_short(abs(err / ref))} relative; "
        error, allowed = distinct(err, tol)
        detail = (f"|error| {error}, {rel}allowed {allowed}: "
                  f"{distinct(ratio, 1)[0]}x the budget")
    return f"{prefix}{where} = {_fmt(c)}, but should be {_fmt(ref)} ({detail}){tail}"


def _exact(c: float, ref: MPF) -> str:
    """What a budget of 0 means, or "" where it does not apply. The budget is 0 exactly where the
    value is exact by definition: the probability (0) and log-probability (-inf) of a masked
    entry, the log-sum-exp of a row of masks (-inf) and the loss of a row whose targets are all 0
    (0). A ratio to a budget of 0 would say nothing ("infx the budget")."""
    if ref == -math.inf:
        want, why = "-inf", ("masked logits (z = -inf) give exactly -inf, as the log-probability "
                             "of a masked entry and as the log-sum-exp of a row of masks")
    elif ref.context.isfinite(ref) and math.isfinite(c):
        want, why = "0", ("a masked entry (z = -inf) gets probability exactly 0 (as a row whose "
                          "targets are all 0 gets loss exactly 0)")
    else:
        return ""
    if ref == float(want):
        return f"but should be exactly {want}, with no budget for rounding: {why}"
    # the value compared with is itself an output of the target (e.g. softmax(z) for
    # softmax(z + c)), wrong too
    return (f"compared with {_fmt(ref)}, but both should be exactly {want}, with no budget for "
            f"rounding: {why}")


def _no_error(c: float, ref: MPF) -> str:
    """Why a value that ``_ratio`` gives no error is over any budget."""
    if math.isnan(c):
        return "NaN is never within a budget"
    if ref.context.isinf(ref):
        return "an infinite value must be matched exactly"
    return ("an infinity where a finite value is due: only a value beyond the dtype's largest "
            "number may round to infinity")


def round_vec(x: np.ndarray, dtype: DType) -> np.ndarray:
    """Round every value of a float64 or long double array to the nearest number of ``dtype``,
    ties to even, subnormals and overflow included -- ``round_to`` elementwise. x = m 2^e with
    1/2 <= |m| < 1; the spacing at x is 2^q, q = max(e - 1, emin) - t + 1; x 2^-q and the
    rounded integer times 2^q are exact (powers of two, no over- or underflow)."""
    with np.errstate(all="ignore"):
        _, e = np.frexp(x)
        q = np.maximum(e - 1, dtype.emin) - dtype.t + 1
        y = np.ldexp(np.rint(np.ldexp(x, -q)), q)
        y = np.where(np.abs(y) > dtype.rmax, np.copysign(np.inf, x), y)
        return np.where(np.isfinite(x), y, x)


def _half_spacings(rr: np.ndarray, dtype: DType, W: Any) -> tuple[np.ndarray, np.ndarray]:
    """Half the distances from numbers rr of the dtype to their neighbours away from zero and
    towards zero (the edges of their rounding cells; powers of two have a finer side)."""
    mant, e = np.frexp(rr)
    q = np.maximum(e - 1, dtype.emin) - dtype.t + 1
    out = np.where(rr == 0, dtype.rmin_sub, np.ldexp(1.0, q)).astype(W) / 2
    power = (np.abs(mant) == 0.5) & (e - 1 > dtype.emin)
    return out, np.where(power, out / 2, out)


def _assess_fast(flat: np.ndarray, refs: Certified, tols: Certified, rb: Bounds, tb: Bounds,
                 dtype: DType, label: Callable[[int], str], what: str) -> Assessment:
    """``assess`` on enclosures: ref in R -+ Er, tol in T -+ Et (see the module docstring).

    Every certain decision below is a comparison that is false for NaN, so a NaN or infinite
    radius (masked entries, astronomically large budgets) only ever sends an element to mpmath.
    """
    W = np.result_type(rb[0].dtype, tb[0].dtype)
    f = _F64 if W.type is np.float64 else _LD
    R, Er = np.asarray(rb[0], dtype=W), np.asarray(rb[1], dtype=W)
    low = np.asarray(rb[2], dtype=W) if rb[2] is not None else None
    T, Et = np.asarray(tb[0], dtype=W), np.asarray(tb[1], dtype=W)
    c = flat.astype(W)
    g, tiny, u4 = f.grow - 1, 16 * f.eta, 4 * f.u
    nan_c = np.isnan(flat)
    ref_inf = np.isinf(R) & (Er == 0)  # exact infinities (log-softmax of masked entries)
    d = np.abs(c - R) if low is None else np.abs((c - R) - low)
    # |c - ref| and tol enclosed; 2^-20 and 16 eta cover the rounding of these expressions.
    d_hi = (d * (1 + u4) + Er * (1 + u4)) * f.grow + tiny
    d_lo = np.maximum(d * (1 - u4) - Er * (1 + u4) - g * (d + Er) - tiny, 0)
    T_hi = (T + Et) * f.grow + tiny
    T_lo = T - Et - g * (T + Et) - tiny
    # Is c the correctly rounded reference? For sure when the whole enclosure lies strictly
    # inside the rounding cell of c (ties are left undecided); for sure not when it lies inside
    # another cell, or when c lies outside the roundings of the enclosure's ends (rounding is
    # monotonic). The offset R - rr from the nearest number rr is exact (Sterbenz).
    rr = round_vec(R, dtype)
    off = R - rr if low is None else (R - rr) + low
    half_out, half_in = _half_spacings(rr, dtype, W)
    away = np.where(rr < 0, -off, off)
    # R sits on a tie, or the low part crosses into a neighbour's cell: move there (exactly).
    cross = (away > half_out) | (away < -half_in)
    if np.any(cross):
        step = np.where(away > half_out, 2 * half_out, np.where(away < -half_in, -2 * half_in, 0))
        step = np.where(rr < 0, -step, step)
        rr, off = rr + step, off - step
        half_out, half_in = _half_spacings(rr, dtype, W)
        away = np.where(rr < 0, -off, off)
    w = (Er + 2 * f.u1 * np.abs(off)) * f.grow + tiny
    inside = np.isfinite(rr) & (away - w > -half_in) & (away + w < half_out)
    cr = inside & (rr == c)
    ncr = inside & (rr != c)
    rest = np.flatnonzero(~inside)
    if rest.size:
        Rr, Err = R[rest], Er[rest]
        lowr = np.abs(low[rest]) if low is not None else 0
        wide = (Err + lowr + 2 * f.u1 * (np.abs(Rr) + Err + lowr)) * f.grow + tiny
        cc = c[rest]
        ncr[rest] = (cc < round_vec(Rr - wide, dtype)) | (cc > round_vec(Rr + wide, dtype))
    exact_zero = (d == 0) & (Er == 0)  # err == 0 exactly: ratio 0, as in _ratio
    pos_T = T_lo > 0
    hi = np.where(pos_T, d_hi / np.where(pos_T, T_lo, 1), np.inf)
    lo = np.where(ncr & ~exact_zero, d_lo / T_hi, 0)
    est = np.where(T > 0, d / np.where(T > 0, T, 1), np.where(d > 0, np.inf, 0))
    zero = cr | exact_zero
    hi, est = np.where(zero, 0, hi), np.where(zero, 0, est)
    # not numbers, and exact infinities: decided as _ratio decides them
    inf_ref_ok = ref_inf & (c == R)
    fixed = nan_c | ref_inf
    fixed_ratio = np.where(inf_ref_ok & ~nan_c, 0.0, np.inf)
    lo, hi = np.where(fixed, fixed_ratio, lo), np.where(fixed, fixed_ratio, hi)
    est = np.where(fixed, fixed_ratio, est)
    bad_sure = lo > 1
    good_sure = hi <= 1
    undecided = ~(bad_sure | good_sure)
    precise = fixed | zero | (ncr & (Er <= RATIO_PRECISION * T_lo)
                              & (Et <= RATIO_PRECISION * T_lo))
    ratios = est.astype(np.float64)
    # ulps of the reference: the spacing of the dtype at |ref| (below a power of two: the finer)
    spacing = 2 * np.where(np.abs(R) < np.abs(rr), half_in, half_out)
    ulps = np.where(np.isfinite(flat) & ~fixed, d / spacing, 0).astype(np.float64)
    exact_bad = 0
    errs: dict[int, MPF | None] = {}

    def evaluate(i: int) -> float:
        ratio, err = _ratio(float(flat[i]), refs[i], tols[i], dtype)
        errs[i] = err
        ratios[i] = ratio
        ulps[i] = 0.0
        if err is not None and math.isfinite(float(flat[i])):
            with contextlib.suppress(OverflowError, ValueError):
                ulps[i] = float(err) / dtype.ulp(float(refs[i]))
        return ratio

    for i in np.flatnonzero(undecided):
        exact_bad += evaluate(int(i)) > 1
    # Elements whose estimate is loose and that could hold the largest ratio: in mpmath.
    decided_max = max(float(np.max(np.where(undecided, 0, lo.astype(np.float64)), initial=0)),
                      float(np.max(np.where(undecided, ratios, 0), initial=0)))
    # (reporting any of the others changes the largest ratio by at most 2^-8 (1 + ratio))
    margin = decided_max + RATIO_PRECISION * (1 + decided_max)
    loose = np.flatnonzero(~undecided & ~precise & (hi > margin))
    if loose.size and flat.size <= EXACT_FOR_RATIO_SIZE:
        order = loose[np.argsort(-hi[loose].astype(np.float64), kind="stable")]
        for i in order[:EXACT_FOR_RATIO]:
            evaluate(int(i))
    bad = int(np.count_nonzero(bad_sure)) + int(exact_bad)
    max_ulps = float(np.nanmax(ulps, initial=0.0)) if ulps.size else 0.0
    if not bad:
        return Assessment(float(np.max(ratios, initial=0.0)), 0, flat.size, None, max_ulps)
    is_bad = bad_sure | (undecided & (ratios > 1))
    pos = int(np.flatnonzero(is_bad)[np.argmax(ratios[is_bad])])
    if pos not in errs:
        evaluate(pos)
    ratio, err = float(ratios[pos]), errs[pos]
    problem = _problem(flat[pos], refs[pos], err, tols[pos], ratio, label(pos), bad, flat.size,
                       what)
    return Assessment(ratio, bad, flat.size, problem, max_ulps)


def informs(refs: Sequence[MPF], tols: Sequence[MPF]) -> bool | None:
    """Do the budgets say something? True if some budget is below the magnitude of its
    reference; False if none is but some is at least it (vacuous: every value between 0 and
    twice the reference passes there, so the comparison cannot tell a right value from one off
    by 100%); None if no reference counts. Only references that are finite and not zero count:
    a zero or infinite reference is held to a floor or matched exactly, which says nothing about
    accuracy either way.

    Decided on the enclosures where they are narrow enough, else in mpmath, and only until the
    first informative element (docs/tolerances.md, "Uninformative budgets")."""
    rb = refs.bounds if isinstance(refs, Certified) else None
    tb = tols.bounds if isinstance(tols, Certified) else None
    if rb is None or tb is None:
        candidates: Any = range(len(refs))
        vacuous = False
    else:
        W = np.result_type(rb[0].dtype, tb[0].dtype)
        f = _F64 if W.type is np.float64 else _LD
        g, tiny = f.grow - 1, 16 * f.eta
        with np.errstate(all="ignore"):
            R, Er = np.abs(np.asarray(rb[0], dtype=W)), np.asarray(rb[1], dtype=W)
            low = np.abs(np.asarray(rb[2], dtype=W)) if rb[2] is not None else W.type(0)
            T, Et = np.asarray(tb[0], dtype=W), np.asarray(tb[1], dtype=W)
            a_hi = (R + low + Er) * f.grow + tiny
            a_lo = R - low - Er - g * (R + low + Er) - tiny
            t_hi = (T + Et) * f.grow + tiny
            t_lo = T - Et - g * (T + Et) - tiny
            # comparisons with NaN are false: a NaN or infinite radius decides nothing
            counts = a_lo > 0
            if np.any(counts & (t_hi < a_lo)):
                return True
            vacuous = bool(np.any(counts & (t_lo >= a_hi) & np.isfinite(a_hi)))
            neutral = ((R == 0) & (Er == 0) & (low == 0)) | (np.isinf(R) & (Er == 0))
            sure = (counts & (t_lo >= a_hi) & np.isfinite(a_hi)) | neutral
        candidates = (int(i) for i in np.flatnonzero(~sure))
    for i in candidates:
        ref, tol = refs[i], tols[i]
        if ref == 0 or not ref.context.isfinite(ref):
            continue
        if tol < abs(ref):
            return True
        vacuous = True
    return False if vacuous else None


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
