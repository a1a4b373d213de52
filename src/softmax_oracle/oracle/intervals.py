"""Fast references: midpoint-radius interval arithmetic in a hardware format.

The quantities of the oracle are also computed in a hardware format -- float64 for
float32/float16/bfloat16 inputs, x87 long double (64-bit significand) for float64 inputs -- with
midpoint-radius interval arithmetic (``Ball``): every value comes with a radius that provably
bounds its distance both to the real number and to the working-precision mpmath value
(docs/tolerances.md, "Fast references"). ``reference.FastRows`` applies it to rows of logits; the
format is used only where its exp, expm1, log and log1p pass a calibration against mpmath.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import mpmath
import numpy as np

from softmax_oracle.oracle.exact import MPF, context

__all__ = [
    "MU_W",
    "Ball",
    "Format",
    "bexp",
    "bexpm1",
    "blog1p",
    "blog_exact",
    "blog_expm1",
    "exact_only",
    "minimum",
    "mp_slack",
    "working_format",
]

# =================================================================================================
# Working formats and midpoint-radius arithmetic
# =================================================================================================

#: Assumed accuracy of the working format's exp, expm1, log and log1p, in units of its u:
#: |fl(f(x)) - f(x)| <= MU_W (u |f(x)| + eta). Checked at run time against mpmath (``_calibrated``),
#: which must measure at most MU_W / 4.
MU_W = 16


class Format:
    """A hardware format the fast references compute in, with the constants of its error model:
    u (unit roundoff), u1 = u (1 + 2^-20) >= u / (1 - u) (rounding error relative to a rounded
    result), eta (smallest positive subnormal) and ``log_big`` (exp overflows not far beyond)."""

    def __init__(self, name: str, np_type: Any, t: int, eta_exponent: int) -> None:
        self.name, self.np, self.t = name, np_type, t
        self.u = np_type(2.0) ** -t
        self.u1 = self.u * (1 + np_type(2.0) ** -20)
        self.eta = np_type(2.0) ** eta_exponent
        self.eta_exponent = eta_exponent
        self.grow = 1 + np_type(2.0) ** -20
        self.log_big = float(np.log(np.finfo(np_type).max)) - 8.0
        self.saturated = np_type(2.0) ** (np.finfo(np_type).maxexp - 64)

    def __repr__(self) -> str:
        return f"Format({self.name})"


_F64 = Format("float64", np.float64, 53, -1074)
_LD = Format("longdouble", np.longdouble, 64, -16445)


def _up(f: Format, r: np.ndarray) -> np.ndarray:
    """An upper bound of a radius evaluated in floating point. Radii are formed with nonnegative
    coefficients only, so rounding makes a computed radius fall short of its formula by at most
    2ku relative after k operations (and an any-order sum of N <= 2^24 radii by (N - 1)u); each
    exported enclosure (``mp_slack``) therefore ends with one factor 1 + 2^-20 for a chain of up to
    2^20 operations, and 1024 eta for the products that underflow on the way (eta/2 each)."""
    return r * f.grow + 1024 * f.eta


class Ball:
    """Midpoint-radius enclosures: each real value lies in [m - r, m + r] (arrays of a Format).

    Every operation returns the correctly rounded (or, for exp/expm1/log/log1p, MU_W-accurate)
    midpoint and a radius that bounds the propagated radii plus the rounding of the midpoint
    (docs/tolerances.md, "Fast references"). Constants (Python ints and floats) must be exact in
    the format; all the kit's constants are (integers, powers of two).
    """

    __slots__ = ("f", "m", "r")

    def __init__(self, m: Any, r: Any, f: Format) -> None:
        self.m, self.r, self.f = m, r, f  # arrays (or scalars) of the format

    @classmethod
    def exact(cls, m: Any, f: Format) -> Ball:
        m = np.asarray(m, dtype=f.np)
        return cls(m, np.zeros_like(m), f)

    def __getitem__(self, idx: Any) -> Ball:
        return Ball(self.m[idx], self.r[idx], self.f)

    def where(self, mask: Any, m: Any, r: Any = 0.0) -> Ball:
        """The same ball with (m, r) replaced where mask holds (exact values set by hand)."""
        return Ball(np.where(mask, m, self.m), np.where(mask, r, self.r), self.f)

    def __add__(self, o: Ball | float) -> Ball:
        f = self.f
        if isinstance(o, Ball):
            m = self.m + o.m
            return Ball(m, self.r + o.r + f.u1 * np.abs(m), f)
        m = self.m + o
        return Ball(m, self.r + f.u1 * np.abs(m), f)

    __radd__ = __add__

    def __neg__(self) -> Ball:
        return Ball(-self.m, self.r, self.f)

    def __sub__(self, o: Ball | float) -> Ball:
        return self + (-o)

    def __rsub__(self, o: float) -> Ball:
        return (-self) + o

    def __mul__(self, o: Ball | float) -> Ball:
        f = self.f
        if isinstance(o, Ball):
            m = self.m * o.m
            r = np.abs(self.m) * o.r + (np.abs(o.m) + o.r) * self.r + f.u1 * np.abs(m)
            return Ball(m, r, f)
        m = self.m * o
        return Ball(m, abs(o) * self.r + f.u1 * np.abs(m), f)

    __rmul__ = __mul__

    def __abs__(self) -> Ball:
        return Ball(np.abs(self.m), self.r, self.f)

    def sum(self, mask: np.ndarray | None = None) -> Ball:
        """Sum along the last axis (over ``mask`` only), by an explicit pairwise tree: every term
        goes through at most ceil(log2 N) additions, so the error is <= ceil(log2 N) u1 sum |m_i|
        (Higham, Accuracy and Stability, §4.2)."""
        f = self.f
        m, r = (self.m, self.r) if mask is None else (np.where(mask, self.m, 0), np.where(
            mask, self.r, 0))
        count = m.shape[-1]
        s = _pairwise(m)
        depth = max(count - 1, 0).bit_length()
        err = np.sum(r, axis=-1) + depth * f.u1 * np.sum(np.abs(m), axis=-1)
        return Ball(s, err, f)


def _pairwise(a: np.ndarray) -> np.ndarray:
    """Sum along the last axis by halving: ceil(log2 N) levels of elementwise additions."""
    if a.shape[-1] == 0:
        return np.zeros(a.shape[:-1], dtype=a.dtype)
    while a.shape[-1] > 1:
        n = a.shape[-1]
        h = n // 2
        head = a[..., :h] + a[..., h:2 * h]
        a = np.concatenate([head, a[..., 2 * h:]], axis=-1) if n % 2 else head
    return a[..., 0]


def minimum(a: Ball, b: Ball) -> Ball:
    """min(x, y) for x in a, y in b: with a.m <= b.m, min lies in a.m -+ max(a.r, b.r)."""
    return Ball(np.minimum(a.m, b.m), np.maximum(a.r, b.r), a.f)


def _patch(base: np.ndarray, mask: np.ndarray, fn: Callable[[Any], np.ndarray]) -> np.ndarray:
    """base with fn(index) at the positions in mask, fn evaluated on those positions only."""
    if not np.any(mask):
        return base
    if np.ndim(base) == 0:
        return np.where(mask, fn(()), base)
    out = np.array(base, copy=True)
    idx = np.nonzero(mask)
    out[idx] = fn(idx)
    return out


def bexp(b: Ball, saturate: bool = False) -> Ball:
    """exp. |e^x - e^m| <= e^m (e^r - 1) <= e^m r (1 + r) for r <= 1/8; for wider balls,
    |e^x - m'| <= max(e^(m + r), m'). With ``saturate`` (budgets only, where a lower bound is all
    that matters once a budget is astronomically large), arguments whose lower end exceeds the
    overflow range give the exact lower bound 2^(maxexp - 64) instead of infinity."""
    f = b.f
    mu, u, eta = MU_W, f.u, f.eta
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        big = (b.m - b.r > f.log_big) if saturate else False
        arg = np.where(big, 0, b.m) if saturate else b.m
        m = np.exp(arg)
        r = (m + mu * eta) * (1 + 2 * mu * u) * (b.r * (1 + b.r) + mu * u) + mu * eta

        def wide(i: Any) -> np.ndarray:
            top = np.asarray(arg)[i] + np.asarray(b.r)[i]
            top = top + (f.u1 * np.abs(top) + eta)
            return np.maximum((np.exp(top) + mu * eta) * (1 + 2 * mu * u), np.asarray(m)[i])

        r = _patch(r, b.r > 0.125, wide)
        if saturate and np.any(big):
            m, r = np.where(big, f.saturated, m), np.where(big, 0, r)
    return Ball(m, r, f)


def bexpm1(b: Ball) -> Ball:
    """expm1: |expm1(x) - expm1(m)| = e^m |e^(x - m) - 1| <= e^m r (1 + r) (r <= 1/8), with
    e^m = 1 + expm1(m); wider: <= e^(m + r)."""
    f = b.f
    mu, u, eta = MU_W, f.u, f.eta
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        m = np.expm1(b.m)
        fe = mu * u * np.abs(m) + mu * eta  # evaluation error
        r = (1 + m + 2 * fe) * b.r * (1 + b.r) + fe  # 1 + m + 2 fe >= e^m

        def wide(i: Any) -> np.ndarray:
            top = np.asarray(b.m)[i] + np.asarray(b.r)[i]
            top = top + (f.u1 * np.abs(top) + eta)
            return (np.exp(top) + mu * eta) * (1 + 2 * mu * u) + np.asarray(fe)[i]

        r = _patch(r, b.r > 0.125, wide)
    return Ball(m, r, f)


def blog1p(b: Ball) -> Ball:
    """log1p of a nonnegative quantity: |log1p(x) - log1p(m)| <= r / (1 + max(m - r, 0))."""
    f = b.f
    m = np.log1p(b.m)
    lo = np.maximum(b.m - b.r, 0)
    r = b.r / (1 + lo) + MU_W * (f.u * np.abs(m) + f.eta)
    return Ball(m, r, f)


def blog_exact(x: float, f: Format) -> Ball:
    """log of an exact positive number."""
    m = np.log(f.np(x))
    return Ball(m, MU_W * (f.u * np.abs(m) + f.eta), f)


def blog_expm1(b: Ball) -> Ball:
    """log(expm1(x)) for x > 0 (the log of a relative budget's growth factor): its derivative
    1 / (1 - e^-x) <= 1 + 1/x; evaluated as x + log1p(-e^-x) for x > 30, else log(expm1(x)),
    each within 3 MU_W (u (1 + |result|) + eta)."""
    f = b.f
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        x = b.m
        big = x > 30
        m = np.log(np.expm1(np.where(big, 1, x)))
        m = _patch(m, big, lambda i: np.asarray(x)[i] + np.log1p(-np.exp(-np.asarray(x)[i])))
        lo = b.m - b.r
        prop = np.where(lo > 0, b.r * (1 + 1 / np.where(lo > 0, lo, 1)), np.inf)
        r = prop + 3 * MU_W * (f.u * (1 + np.abs(m)) + f.eta)
    return Ball(m, r, f)


def mp_slack(b: Ball, prec: int, n: int, magnitude: Any = None) -> Ball:
    """Widen an enclosure of a real quantity so that it also holds the working-precision mpmath
    value of the same formula: at most (n + 64) 2^-(prec - 4) relative to the magnitudes the
    formula adds (n-term sums, a few dozen roundings, log/exp at prec bits)."""
    f = b.f
    mag = np.abs(b.m) + b.r if magnitude is None else magnitude
    sl = f.np(n + 64) * f.np(2.0) ** -(prec - 4)
    return Ball(b.m, _up(f, b.r + sl * mag), f)


def _to_mpf_exact(ctx: mpmath.MPContext, v: Any) -> MPF:
    """Exact mpf of a float64 or long double number."""
    if isinstance(v, np.longdouble) and not isinstance(v, np.float64) and np.isfinite(v):
        mant, e = np.frexp(v)
        hi = np.float64(mant)
        lo = np.float64(mant - np.longdouble(hi))  # the remaining <= 11 bits, exactly
        return ctx.ldexp(ctx.mpf(float(hi)) + ctx.mpf(float(lo)), int(e))
    return ctx.mpf(float(v))


@functools.cache
def _calibrated(f: Format) -> bool:
    """Do the format's exp, expm1, log1p and log meet MU_W with a factor 4 to spare, on arguments
    spread over the ranges the fast references use? (Compared with mpmath at 200 bits.)"""
    if np.finfo(f.np).nmant + 1 < f.t:
        return False
    ctx = context(200)
    rng = np.random.default_rng(20240601)
    lim = 740.0 if f.t == 53 else 11350.0
    args = {
        "exp": np.concatenate([-rng.uniform(0, lim, 96), -rng.uniform(0, 40, 96),
                               rng.normal(0, 1, 32)]),
        "expm1": np.concatenate([-rng.uniform(0, 50, 64), rng.normal(0, 1e-3, 32),
                                 rng.uniform(0, 40, 32), -np.exp(-rng.uniform(0, 700, 32))]),
        "log1p": np.concatenate([np.exp(rng.uniform(-700, 40, 96)), rng.uniform(0, 10, 32)]),
        "log": np.concatenate([rng.integers(1, 2**24, 48).astype(float),
                               np.exp(rng.uniform(-30, 30, 48))]),
    }
    fns = {"exp": (np.exp, ctx.exp), "expm1": (np.expm1, ctx.expm1),
           "log1p": (np.log1p, ctx.log1p), "log": (np.log, ctx.log)}
    u, eta = ctx.ldexp(1, -f.t), ctx.ldexp(1, f.eta_exponent)
    worst = ctx.zero
    with np.errstate(all="ignore"):
        for name, xs in args.items():
            fw, fm = fns[name]
            xw = xs.astype(np.float64).astype(f.np)  # float64 arguments, exact in both formats
            for x, y in zip(xw, fw(xw)):
                if not np.isfinite(y):
                    return False
                exact = fm(ctx.mpf(float(x)))
                err = abs(_to_mpf_exact(ctx, y) - exact)
                worst = max(worst, err / (u * abs(exact) + eta))
    return bool(worst <= MU_W / 4)


_FAST_ENABLED = [True]


@contextlib.contextmanager
def exact_only() -> Iterator[None]:
    """Within this block, new references carry no enclosures: every comparison uses mpmath (as
    before the fast references). For tests and benchmarks."""
    _FAST_ENABLED.append(False)
    try:
        yield
    finally:
        _FAST_ENABLED.pop()


def working_format(prec: int) -> Format | None:
    """The format of the fast references for a working precision 2t + 64: float64 when t <= 24
    (float32, float16, bfloat16), the 64-bit long double otherwise; None when there is none on
    this platform (or it fails calibration, or fast references are switched off)."""
    if not _FAST_ENABLED[-1]:
        return None
    f = _F64 if prec <= 2 * 24 + 64 else _LD
    return f if _calibrated(f) else None
