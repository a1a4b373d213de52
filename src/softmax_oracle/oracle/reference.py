"""The oracle: every quantity of the specification computed in mpmath, at high precision, and
enclosed in certified float intervals for fast comparisons.

Precision is scoped to a private ``mpmath.MPContext`` per working precision (never ``mp.prec``),
inputs are converted exactly (every binary float is an mpf), and nothing is rounded here: the
unrounded references feed the tolerance model, and ``round_to`` rounds them once for display.

The recipe follows the corrected notes (design notes, "Measured on the real libraries", item 4):
with a = max x and L = log1p(sum_{i != k} exp(x_i - a)), compute l_j = (x_j - a) - L with x_j - a
at working precision, g_j = exp(l_j), 1 - g_j = -expm1(l_j), and y = a + L only for LSE itself.
That keeps every output relatively accurate even where a + L would lose L (|a| ~ 1e300).

Fast references (docs/tolerances.md, "Fast references"). The same quantities are also computed
in a hardware format -- float64 for float32/float16/bfloat16 inputs, x87 long double (64-bit
significand) for float64 inputs -- with midpoint-radius interval arithmetic (``Ball``): every
value comes with a radius that provably bounds its distance both to the real number and to the
mpmath value above. A ``Certified`` vector carries these enclosures and computes the exact mpf
of an element only when asked, so the comparison (``_compare.assess``) runs vectorised and falls
back to mpmath only for the elements an enclosure cannot decide.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np

__all__ = [
    "Ball",
    "Certified",
    "RowRef",
    "concat",
    "context",
    "exact_only",
    "mp_vector",
    "row_ref",
    "row_refs",
    "rows_of",
    "to_mpf",
]

MPF = Any  # mpmath.mpf of some private context


@functools.cache
def context(prec: int) -> mpmath.MPContext:
    """A private mpmath context at ``prec`` bits (shared per precision, never the global one)."""
    ctx = mpmath.MPContext()
    ctx.prec = prec
    return ctx


def to_mpf(ctx: mpmath.MPContext, x: float) -> MPF:
    """Exact conversion of a binary float (any of our dtypes, widened to float64) to an mpf."""
    return ctx.mpf(float(x))


def rows_of(a: np.ndarray, axis: int) -> np.ndarray:
    """View an array as (rows, length) with the softmax axis last, as float64 (exact widening)."""
    moved = np.moveaxis(np.asarray(a, dtype=np.float64), axis, -1)
    return moved.reshape(-1, moved.shape[-1]) if moved.ndim else moved.reshape(1, 1)


# =================================================================================================
# Certified vectors: float enclosures now, exact values on demand
# =================================================================================================

#: Enclosures (approx, err, lo): each value lies within err of approx + lo, lo being None or the
#: exact low part of a midpoint that one working-format number cannot hold.
Bounds = tuple[np.ndarray, np.ndarray, np.ndarray | None]


class Certified(Sequence[MPF]):
    """Real numbers v_i, each known to lie in [approx_i - err_i, approx_i + err_i], whose exact
    (working-precision mpmath) values are computed only when indexed, and then cached.

    A drop-in read-only sequence of mpf: iterating or indexing gives exact values. ``bounds``
    gives the enclosures (``Bounds``: arrays of the working format), or None when there are none
    (rows of mpf, a platform without a wide enough format); both are computed lazily.
    """

    __slots__ = ("_bounds", "_cache", "_exact", "_make_bounds", "_size")

    def __init__(self, size: int, exact: Callable[[int], MPF],
                 bounds: Callable[[], Bounds | None] | None = None) -> None:
        self._size = size
        self._exact = exact
        self._make_bounds = bounds
        self._bounds: Bounds | bool | None = False  # False: not computed yet
        self._cache: dict[int, MPF] = {}

    @classmethod
    def of_values(cls, values: Sequence[MPF]) -> Certified:
        """Exact values without enclosures."""
        vals = list(values)
        return cls(len(vals), vals.__getitem__)

    @property
    def bounds(self) -> Bounds | None:
        if self._bounds is False:
            # Masked entries and astronomically wide balls make inf and NaN radii on purpose:
            # a NaN or infinite radius never decides anything (see _compare).
            with np.errstate(all="ignore"):
                self._bounds = self._make_bounds() if self._make_bounds is not None else None
        return self._bounds  # type: ignore[return-value]

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._size))]
        j = int(i)
        if j < 0:
            j += self._size
        if not 0 <= j < self._size:
            raise IndexError(i)
        v = self._cache.get(j)
        if v is None:
            v = self._cache[j] = self._exact(j)
        return v

    def __iter__(self) -> Iterator[MPF]:
        for j in range(self._size):
            yield self[j]

    def __repr__(self) -> str:
        return f"Certified({self._size} values)"


def concat(parts: Iterable[Certified | Sequence[MPF] | MPF]) -> Certified:
    """Join per-row references (Certified vectors, lists of mpf, or single mpf values) into one
    Certified vector; it has enclosures only if every part has them."""
    pieces: list[Certified] = []
    for p in parts:
        if isinstance(p, Certified):
            pieces.append(p)
        elif isinstance(p, (list, tuple)) or (isinstance(p, Sequence) and not hasattr(p, "_mpf_")):
            pieces.append(Certified.of_values(p))
        else:
            pieces.append(Certified.of_values([p]))
    if len(pieces) == 1:
        return pieces[0]
    starts = [0]
    for p in pieces:
        starts.append(starts[-1] + len(p))

    def exact(i: int) -> MPF:
        which = bisect.bisect_right(starts, i) - 1
        return pieces[which][i - starts[which]]

    def bounds() -> Bounds | None:
        got = [p.bounds for p in pieces]
        if any(b is None for b in got):
            return None
        lows = None
        if any(b[2] is not None for b in got):  # type: ignore[index]
            lows = np.concatenate([b[2] if b[2] is not None else np.zeros_like(b[0])  # type: ignore[index]
                                   for b in got])
        return (np.concatenate([b[0] for b in got]),  # type: ignore[index]
                np.concatenate([b[1] for b in got]), lows)  # type: ignore[index]

    return Certified(starts[-1], exact, bounds)


class MpVector(Sequence[MPF]):
    """The exact mpf values of a float vector, converted when indexed (a read-only list).
    ``values`` keeps the float64 numbers, for the fast references."""

    __slots__ = ("_cache", "ctx", "values")

    def __init__(self, ctx: mpmath.MPContext, values: np.ndarray) -> None:
        self.ctx = ctx
        self.values = np.asarray(values, dtype=np.float64).reshape(-1)
        self._cache: list[MPF | None] = [None] * self.values.size

    def __len__(self) -> int:
        return self.values.size

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        v = self._cache[i]
        if v is None:
            v = self._cache[i] = self.ctx.mpf(float(self.values[i]))
        return v

    def __iter__(self) -> Iterator[MPF]:
        for j in range(len(self)):
            yield self[j]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MpVector({self.values.tolist()!r})"


def mp_vector(ctx: mpmath.MPContext, values: np.ndarray) -> MpVector:
    """Exact mpf values of a 1-D float array (converted lazily)."""
    return MpVector(ctx, values)


def _float_values(n: Sequence[MPF] | np.ndarray) -> np.ndarray | None:
    """The float64 numbers behind a vector of targets or cotangents, if they are floats exactly
    (None otherwise: such vectors only have exact references)."""
    if isinstance(n, MpVector):
        return n.values
    if isinstance(n, np.ndarray):
        return n.astype(np.float64).reshape(-1)
    out = np.empty(len(n))
    for i, v in enumerate(n):
        f = float(v)
        if not math.isfinite(f) or f != v:
            return None
        out[i] = f
    return out


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


# =================================================================================================
# The fast layer: all rows of one array at once
# =================================================================================================


class FastRows:
    """Enclosures of a, L, l, g, 1 - g and y for every row of a (rows, n) array, in one format.

    Masked entries (-inf) get exact values (l = -inf, g = 0, 1 - g = 1); a row of only -inf has
    y = -inf and L = 0. Every enclosure holds the real value and the working-precision mpmath
    value of ``RowRef`` (``mp_slack``). ``memo`` caches budgets computed from these (tolerance.py).
    """

    def __init__(self, rows: np.ndarray, prec: int, f: Format) -> None:
        self.f, self.prec = f, prec
        R, n = rows.shape
        self.n = n
        self.finite = rows > -np.inf
        self.any_finite = self.finite.any(axis=-1)
        self.k = np.argmax(rows, axis=-1) if n else np.zeros(R, dtype=int)
        W = f.np
        a64 = np.where(self.any_finite, rows[np.arange(R), self.k], 0.0)
        self.x = np.where(self.finite, rows, a64[:, None]).astype(W)  # masked: a placeholder
        self.a = a64.astype(W)
        with np.errstate(all="ignore"):
            t = self.x - self.a[:, None]
            self.t = Ball(t, _up(f, f.u1 * np.abs(t)), f)  # x - a, rounded once
            others = self.finite.copy()
            others[np.arange(R), self.k] = False
            w = bexp(self.t)
            s = w.sum(mask=others)
            L = blog1p(s)
            l = self.t - Ball(L.m[:, None], L.r[:, None], f)
            g = bexp(l)
            omg = -bexpm1(l)
            y = Ball.exact(self.a, f) + L
        mag = L.m[:, None] + L.r[:, None]
        l = mp_slack(l, prec, n, np.abs(l.m) + l.r + mag)
        g = mp_slack(g, prec, n, (g.m + g.r) * (2 + np.abs(l.m) + l.r + mag))
        omg = mp_slack(omg, prec, n, (g.m + g.r) * (1 + np.abs(l.m) + l.r + mag) + omg.m + omg.r)
        self.L = mp_slack(L, prec, n)
        self.y = mp_slack(y, prec, n, np.abs(y.m) + y.r + L.m + L.r)
        masked = ~self.finite
        self.l = l.where(masked, -np.inf, 0)
        self.l_safe = l.where(masked, 0, 0)  # for budgets, whose masked entries are set apart
        self.g = g.where(masked, 0, 0)
        self.one_minus_g = omg.where(masked, 1, 0)
        none = ~self.any_finite
        self.L = self.L.where(none, 0, 0)
        self.y = self.y.where(none, -np.inf, 0)
        self.gap = Ball(-self.t.m, self.t.r, f).where(masked, 0, 0)  # a - x_j (0 where masked)
        self.log_n = blog_exact(max(n, 1), f)
        self.memo: dict[Any, Any] = {}

    def cached(self, key: Any, build: Callable[[], Any]) -> Any:
        if key not in self.memo:
            self.memo[key] = build()
        return self.memo[key]

    def absx_g(self) -> Ball:
        """|x_i| g_i (0 where masked)."""
        return self.cached("absx_g", lambda: (self.g * np.abs(self.x)).where(~self.finite, 0, 0))

    def P(self) -> Ball:
        """P = sum_i |x_i| g_i per row."""
        return self.cached("P", lambda: self.absx_g().sum(mask=self.finite))


# =================================================================================================
# The exact reference of one row
# =================================================================================================


class _Exact:
    """The mpmath side of a float row, shared work first: exp(x_j - a) once per distinct value,
    L = log1p(fsum of the terms in row order) exactly as the single-row recipe computes it."""

    def __init__(self, ctx: mpmath.MPContext, row: np.ndarray, k: int, a: MPF) -> None:
        finite = np.flatnonzero(row > -np.inf)
        self.uniq, inv = np.unique(row[finite], return_inverse=True)
        self.index = np.full(row.size, -1)
        self.index[finite] = inv
        self.shifted = [ctx.fsub(ctx.mpf(float(v)), a, exact=True) for v in self.uniq]
        exps = [ctx.exp(s) for s in self.shifted]
        self.L = ctx.log1p(ctx.fsum([exps[self.index[j]] for j in finite if j != k]))
        self.ctx = ctx
        self._l: dict[int, MPF] = {}
        self._g: dict[int, MPF] = {}
        self._omg: dict[int, MPF] = {}

    def log_p(self, j: int) -> MPF:
        i = int(self.index[j])
        if i < 0:
            return self.ctx.ninf
        if i not in self._l:
            self._l[i] = self.shifted[i] - self.L
        return self._l[i]

    def p(self, j: int) -> MPF:
        i = int(self.index[j])
        if i < 0:
            return self.ctx.zero
        if i not in self._g:
            self._g[i] = self.ctx.exp(self.log_p(j))
        return self._g[i]

    def one_minus_g(self, j: int) -> MPF:
        i = int(self.index[j])
        if i < 0:
            return self.ctx.one
        if i not in self._omg:
            self._omg[i] = -self.ctx.expm1(self.log_p(j))
        return self._omg[i]


class RowRef:
    """Everything the claims need about one softmax row x, exactly (to working precision), and
    certified float enclosures of the same values.

    Masked entries (x_j = -inf) have ``x[j] is None``, g_j = 0 and l_j = -inf. ``l``, ``g`` and
    ``one_minus_g`` are ``Certified`` vectors (read-only sequences of mpf, computed on demand);
    ``fast`` is the row's enclosures (``FastRows``, ``index``) or None.
    """

    def __init__(self, ctx: mpmath.MPContext, row: np.ndarray | None, k: int,
                 fast: FastRows | None = None, index: int = 0) -> None:
        self.ctx = ctx
        self._row = row
        self.k = k  # index of the (first) maximum, -1 if the row is all -inf
        self.fast = fast
        self.index = index
        self._memo: dict[Any, Any] = {}

    # ---------------------------------------------------------------- construction from mpf
    @classmethod
    def _from_values(cls, ctx: mpmath.MPContext, x: list[MPF | None], k: int, a: MPF, L: MPF,
                     l: list[MPF], g: list[MPF], omg: list[MPF]) -> RowRef:
        r = cls(ctx, None, k)
        r.__dict__.update(x=x, a=a, L=L, l=l, g=g, one_minus_g=omg, n=len(x))
        return r

    def memo(self, key: Any, build: Callable[[], Any]) -> Any:
        """Per-row cache (budgets of each tolerance model, targets' products, ...)."""
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]

    # ---------------------------------------------------------------- basic facts
    @functools.cached_property
    def n(self) -> int:
        assert self._row is not None
        return int(self._row.size)

    @property
    def all_masked(self) -> bool:
        return self.k < 0

    @functools.cached_property
    def x(self) -> list[MPF | None]:
        assert self._row is not None
        ctx = self.ctx
        return [None if v == -np.inf else ctx.mpf(float(v)) for v in self._row]

    @functools.cached_property
    def a(self) -> MPF:
        """max x (ctx.ninf if all masked)."""
        assert self._row is not None
        return self.ctx.ninf if self.all_masked else self.ctx.mpf(float(self._row[self.k]))

    @functools.cached_property
    def _exact(self) -> _Exact:
        assert self._row is not None
        return _Exact(self.ctx, self._row, self.k, self.a)

    @functools.cached_property
    def L(self) -> MPF:
        """log1p(sum_{i != k} exp(x_i - a))."""
        return self.ctx.zero if self.all_masked else self._exact.L

    def _bounds(self, name: str) -> Callable[[], Bounds | None]:
        def get() -> Bounds | None:
            if self.fast is None:
                return None
            b = getattr(self.fast, name)[self.index]
            return b.m, b.r, None
        return get

    def _vector(self, name: str, exact: Callable[[int], MPF], masked: MPF) -> Certified:
        if self.all_masked:
            return Certified(self.n, lambda j: masked, self._bounds(name))
        return Certified(self.n, exact, self._bounds(name))

    @functools.cached_property
    def l(self) -> Certified:  # noqa: E743 - l is log-softmax throughout (pyproject: E741)
        """log-softmax."""
        return self._vector("l", lambda j: self._exact.log_p(j), self.ctx.ninf)

    @functools.cached_property
    def g(self) -> Certified:
        """softmax."""
        return self._vector("g", lambda j: self._exact.p(j), self.ctx.zero)

    @functools.cached_property
    def one_minus_g(self) -> Certified:
        """1 - g_j without cancellation (-expm1(l_j))."""
        return self._vector("one_minus_g", lambda j: self._exact.one_minus_g(j), self.ctx.one)

    @functools.cached_property
    def y(self) -> MPF:
        """log-sum-exp, a + L added exactly (unless L is far below an ulp of a at this
        precision, where any rounding of the sum gives a)."""
        if self.all_masked:
            return self.ctx.ninf
        ctx, a, L = self.ctx, self.a, self.L
        if a == 0 or L == 0 or ctx.mag(L) >= ctx.mag(a) - ctx.prec:
            return ctx.fadd(a, L, exact=True) if a != 0 and L != 0 else a + L
        return a

    def logsumexp(self, certified: bool = False) -> Any:
        """y; with ``certified``, as a Certified vector of one value (for ``concat``)."""
        if not certified:
            return self.y
        return self.memo("lse", lambda: Certified(1, lambda _: self.y, self._scalar("y")))

    def _scalar(self, name: str) -> Callable[[], Bounds | None]:
        def get() -> Bounds | None:
            if self.fast is None:
                return None
            b = getattr(self.fast, name)[self.index]
            return b.m.reshape(1), b.r.reshape(1), None
        return get

    def gap(self, j: int) -> MPF:
        xj = self.x[j]
        return self.ctx.inf if xj is None else self.a - xj

    @functools.cached_property
    def log_n(self) -> MPF:
        return self.ctx.log(self.n)

    # ---------------------------------------------------------------- with targets / cotangents
    def _targets_key(self, n: Sequence[MPF] | np.ndarray) -> tuple[Any, np.ndarray | None]:
        vals = _float_values(n)
        return (None if vals is None else vals.tobytes()), vals

    def cross_entropy(self, n: Sequence[MPF], certified: bool = False) -> Any:
        """C = -sum n_j l_j with 0 log 0 = 0; with ``certified``, a Certified vector of one."""
        if not certified:
            return -self.ctx.fsum(nj * self.l[j] for j, nj in enumerate(n) if nj != 0)
        key, vals = self._targets_key(n)

        def build() -> Certified:
            def bounds() -> Bounds | None:
                if self.fast is None or vals is None:
                    return None
                b = self._fast_ce(vals)
                return None if b is None else (b.m.reshape(1), b.r.reshape(1), None)
            return Certified(1, lambda _: self.cross_entropy(n), bounds)

        return build() if key is None else self.memo(("ce", key), build)

    def _fast_ce(self, vals: np.ndarray) -> Ball | None:
        fr = self.fast
        assert fr is not None
        i = self.index
        nz = vals != 0
        if np.any(nz & ~fr.finite[i]):
            return None  # a target on a masked entry: C = +inf, exactly only
        if not np.any(nz):
            return Ball.exact(0.0, fr.f)
        l = fr.l[i][nz]
        nv = vals[nz].astype(fr.f.np)
        prod = l * nv
        C = -prod.sum()
        return mp_slack(C, self.ctx.prec, self.n, np.sum(np.abs(prod.m) + prod.r))

    def grad(self, n: Sequence[MPF]) -> Certified:
        """dC/dz = g S_n - n, evaluated as g_j sum_{i != j} n_i - n_j (1 - g_j) so that it stays
        relatively accurate where g_j S_n and n_j nearly cancel (a confident correct class)."""
        key, vals = self._targets_key(n)

        def build() -> Certified:
            s: list[MPF] = []

            def exact(j: int) -> MPF:
                if not s:
                    s.append(self.ctx.fsum(n))
                nj = n[j]
                return self.g[j] * (s[0] - nj) - nj * self.one_minus_g[j]

            def bounds() -> Bounds | None:
                if self.fast is None or vals is None:
                    return None
                return self._fast_grad_parts(vals)

            return Certified(self.n, exact, bounds)

        return build() if key is None else self.memo(("grad", key), build)

    def _fast_grad_parts(self, vals: np.ndarray) -> Bounds:
        """dC/dz = g S_n - n for float targets as (hi, err, lo): p = g S_n enclosed, then
        hi = fl(p - n) with its rounding error lo kept exactly (Knuth's TwoSum)."""
        fr = self.fast
        assert fr is not None

        def build() -> Bounds:
            f = fr.f
            nv = vals.astype(f.np)
            S = Ball.exact(nv, f).sum()
            g = fr.g[self.index]
            p = g * Ball(np.full(self.n, S.m), np.full(self.n, S.r), f)
            hi = p.m - nv
            back = hi - p.m
            lo = (p.m - (hi - back)) + (-nv - back)
            mag = (g.m + g.r) * (np.sum(np.abs(nv)) + np.abs(nv)) + np.abs(nv)
            err = mp_slack(Ball(hi, p.r, f), self.ctx.prec, self.n, mag).r
            return hi, err, lo

        return self.memo(("fast_grad", vals.tobytes()), build)

    def fast_grad(self, vals: np.ndarray) -> Ball:
        """Enclosure of dC/dz for float targets, as one ball (for the gradient budgets)."""
        hi, err, lo = self._fast_grad_parts(vals)
        assert lo is not None
        return Ball(hi, _up(self.fast.f, err + np.abs(lo)), self.fast.f)  # type: ignore[union-attr]

    def vjp(self, v: Sequence[MPF]) -> list[MPF]:
        """v^T J = g * (v - <g, v>) (J symmetric)."""
        m = self.ctx.fsum(gj * vj for gj, vj in zip(self.g, v) if gj != 0)
        return [gj * (vj - m) if gj != 0 else self.ctx.zero for gj, vj in zip(self.g, v)]


def row_ref(row: np.ndarray, prec: int) -> RowRef:
    """The reference for one 1-D row of finite values and -inf masks, at ``prec`` bits."""
    return row_refs(np.asarray(row, dtype=np.float64).reshape(1, -1), -1, prec)[0]


def row_refs(z: np.ndarray, axis: int, prec: int) -> list[RowRef]:
    """References for every row of z along ``axis`` (rows in C order of the other axes); the
    rows share one fast layer, computed when first needed."""
    rows = rows_of(z, axis)
    ctx = context(prec)
    f = working_format(prec)
    regular = bool(np.all(np.isfinite(rows) | (rows == -np.inf)))
    fast = _LazyFast(rows, prec, f) if f is not None and regular and rows.size else None
    out = []
    for i, row in enumerate(rows):
        k = int(np.argmax(row)) if np.any(row > -np.inf) else -1
        out.append(RowRef(ctx, row, k, None, i))
    if fast is not None:
        for r in out:
            r.fast = fast  # type: ignore[assignment]
    return out


class _LazyFast:
    """Builds the FastRows of an array on first attribute access and then behaves as it."""

    def __init__(self, rows: np.ndarray, prec: int, f: Format) -> None:
        self._args = (rows, prec, f)
        self._fast: FastRows | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if self._fast is None:
            self._fast = FastRows(*self._args)
        return getattr(self._fast, name)


# =================================================================================================
# Dense layers (exact only)
# =================================================================================================


@dataclass
class DenseRef:
    """Reference gradients of L = sum_b C(x_b W^T + b, n_b), exactly (to working precision)."""

    logits: list[list[MPF]]  # (B, k) exact z = x W^T + b
    rows: list[RowRef]
    delta: list[list[MPF]]  # (B, k) dC/dz per sample
    dW: list[list[MPF]]  # (k, m)
    db: list[MPF]  # (k,)
    dx: list[list[MPF]]  # (B, m)
    zeta: list[list[MPF]]  # (B, k) sum_j |W_ij||x_j| + |b_i|


def _mp_list(ctx: mpmath.MPContext, values: np.ndarray) -> list[MPF]:
    return [ctx.mpf(float(v)) for v in np.asarray(values, dtype=np.float64)]


def dense_ref(W: np.ndarray, b: np.ndarray, x: np.ndarray, n: np.ndarray, prec: int) -> DenseRef:
    ctx = context(prec)
    W64, b64, x64, n64 = (np.asarray(t, dtype=np.float64) for t in (W, b, x, n))
    k, m = W64.shape
    Wm = [_mp_list(ctx, W64[i]) for i in range(k)]
    bm = _mp_list(ctx, b64)
    logits, zeta, rows, delta = [], [], [], []
    for xb, nb in zip(x64, n64):
        xm = _mp_list(ctx, xb)
        # exact products, one rounding of the sum at the working precision
        zb = [ctx.fsum([bm[i], *(ctx.fmul(w, xj, exact=True) for w, xj in zip(Wm[i], xm))])
              for i in range(k)]
        zeta.append([ctx.fsum(abs(w * xj) for w, xj in zip(Wm[i], xm)) + abs(bm[i])
                     for i in range(k)])
        logits.append(zb)
        # The exact logits need more than the input precision; keep them as mpf rows.
        r = _row_ref_mp(ctx, zb)
        rows.append(r)
        delta.append(list(r.grad(_mp_list(ctx, nb))))
    xs = [_mp_list(ctx, xb) for xb in x64]
    dW = [[ctx.fsum(delta[bi][i] * xs[bi][j] for bi in range(len(xs))) for j in range(m)]
          for i in range(k)]
    db = [ctx.fsum(delta[bi][i] for bi in range(len(xs))) for i in range(k)]
    dx = [[ctx.fsum(delta[bi][i] * Wm[i][j] for i in range(k)) for j in range(m)]
          for bi in range(len(xs))]
    return DenseRef(logits, rows, delta, dW, db, dx, zeta)


def _row_ref_mp(ctx: mpmath.MPContext, z: Sequence[MPF]) -> RowRef:
    """Like row_ref, for a row that is already a list of finite mpf values (exact only)."""
    z = list(z)
    k = max(range(len(z)), key=lambda j: z[j])
    a = z[k]
    shifted = [ctx.fsub(v, a, exact=True) for v in z]
    L = ctx.log1p(ctx.fsum(ctx.exp(s) for j, s in enumerate(shifted) if j != k))
    l = [s - L for s in shifted]
    return RowRef._from_values(ctx, z, k, a, L, l, [ctx.exp(v) for v in l],
                               [-ctx.expm1(v) for v in l])
