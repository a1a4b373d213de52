"""mpmath as a target: every result computed at 2t + 64 bits and rounded once to the input's dtype.

The input entries are floats of the dtype under test and convert to mpmath exactly. Each row (the
slice along ``axis``) is evaluated in a private ``mpmath.MPContext`` at ``DType.prec`` = 2t + 64
bits, the global ``mpmath.mp`` is never touched. The arrangement is Alg. 4.1 of Blanchard, Higham
& Higham (2021), chosen so that no step loses what the next one needs:

    a = max_i x_i (index k),  gap_i = x_i - a (exact),  L = log1p(sum_{i != k} exp(gap_i)),
    l_j = gap_j - L,  softmax_j = exp(l_j),  LSE = a + L (exact addition),  C = -sum_j n_j l_j.

``a + log(sum of all exp(...))`` would lose L beside a huge a, and ``1 - g`` would cancel even at
2t + 64 bits, so the gradient is formed as dC/dz_j = g_j * sum_{i != j} n_i + n_j * expm1(l_j)
(= g_j S_n - n_j), and the softmax vector-Jacobian product as g_j * sum_{i != j} g_i (v_j - v_i)
(= g_j (v_j - <g, v>)) with exact differences, for rows up to ``_PAIRWISE_MAX`` entries.

Each result is then rounded once, directly to the input's dtype (``round_to``: nearest, ties to
even, subnormals and overflow included), never through float64 first.

Conventions: -inf logits are masks; a row that is entirely -inf has LSE -inf and NaN softmax and
log-softmax; a row with a +inf logit has LSE +inf and NaN for the rest; NaN propagates.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import mpmath
import numpy as np

from softmax_oracle._dtypes import DType, get_dtype, round_to

__all__ = [
    "cross_entropy",
    "cross_entropy_grad",
    "dense_grads",
    "log_softmax",
    "logsumexp",
    "softmax",
    "softmax_vjp",
]

__softmax_oracle__ = {"name": "reference", "version": mpmath.__version__, "is_reference": True}

#: Rows longer than this use the O(n) forms of the VJP (g_j (v_j - <g, v>)), still at 2t + 64 bits.
_PAIRWISE_MAX = 256

Mpf = Any  # mpmath.mpf of a private context


@functools.cache
def _context(prec: int) -> Any:
    ctx = mpmath.MPContext()
    ctx.prec = prec
    return ctx


def _dtype(array: np.ndarray) -> DType:
    return get_dtype(array.dtype.name)


def _mpfs(ctx: Any, row: np.ndarray) -> list[Mpf]:
    return [ctx.mpf(float(x)) for x in row]  # exact: every format here is a subset of float64


class _Row:
    """Log-softmax of one row: l_j, L and the max a, all at the context's precision."""

    def __init__(self, ctx: Any, x: Sequence[Mpf], t: int) -> None:
        self.ctx = ctx
        size = len(x)
        nan = ctx.nan
        if any(ctx.isnan(xi) for xi in x) or size == 0:
            self.a, self.lse, self.l = nan, (nan if size else ctx.ninf), [nan] * size
            return
        if any(xi == ctx.inf for xi in x):
            self.a, self.lse, self.l = ctx.inf, ctx.inf, [nan] * size
            return
        k = max(range(size), key=lambda i: x[i])
        a = x[k]
        self.a = a
        if a == ctx.ninf:
            self.lse, self.l = ctx.ninf, [nan] * size
            return
        gaps = [ctx.fsub(xi, a, exact=True) for xi in x]
        s = ctx.fsum(ctx.exp(gaps[i]) for i in range(size) if i != k)
        big_l = ctx.log1p(s)
        self.lse = _plus_small(ctx, a, big_l, t)
        self.l = [ctx.fsub(gi, big_l) for gi in gaps]

    def softmax(self) -> list[Mpf]:
        return [self.ctx.exp(lj) for lj in self.l]


def _plus_small(ctx: Any, a: Mpf, small: Mpf, t: int) -> Mpf:
    """a + small, exact unless |small| is below an eighth of an ulp of the t-bit float a (then any
    rounding to t bits gives a; an exact sum could need astronomically many bits)."""
    if a == 0 or small == 0:
        return a + small
    if ctx.mag(small) < ctx.mag(a) - t - 3:
        return a
    return ctx.fadd(a, small, exact=True)


def _rows(z: np.ndarray, axis: int) -> tuple[np.ndarray, DType, Any]:
    """z with ``axis`` moved last, flattened to 2-D rows, plus its DType and mpmath context."""
    z = np.asarray(z)
    dt = _dtype(z)
    zl = np.moveaxis(z, axis, -1)
    return zl.reshape(-1, zl.shape[-1]), dt, _context(dt.prec)


def _pack(values: list[list[Mpf]], dt: DType, shape: tuple[int, ...]) -> np.ndarray:
    flat = [round_to(v, dt) for row in values for v in row]
    return np.asarray(flat, dtype=np.float64).astype(dt.np).reshape(shape)


def _per_row(z: Any, axis: int, fn: Callable[[Any, _Row, int], list[Mpf]]) -> np.ndarray:
    """Apply fn(ctx, row, index) to each row of z along axis; the result has z's shape."""
    z = np.asarray(z)
    rows, dt, ctx = _rows(z, axis)
    out = [fn(ctx, _Row(ctx, _mpfs(ctx, r), dt.t), i) for i, r in enumerate(rows)]
    moved_shape = np.moveaxis(z, axis, -1).shape
    return np.moveaxis(_pack(out, dt, moved_shape), -1, axis)


def _aligned(arr: Any, like: np.ndarray, axis: int) -> np.ndarray:
    a = np.moveaxis(np.asarray(arr, dtype=like.dtype), axis, -1)
    return a.reshape(-1, a.shape[-1])


# --- log-softmax and its relatives ---------------------------------------------------------------


def softmax(z: Any, axis: int = -1) -> np.ndarray:
    """softmax(z)_j = exp(l_j), rounded once to z's dtype."""
    return _per_row(z, axis, lambda ctx, row, i: row.softmax())


def log_softmax(z: Any, axis: int = -1) -> np.ndarray:
    """log_softmax(z)_j = l_j = (z_j - a) - log1p(sum_{i != k} exp(z_i - a)), rounded once."""
    return _per_row(z, axis, lambda ctx, row, i: row.l)


def logsumexp(z: Any, axis: int = -1) -> np.ndarray:
    """log sum_j exp(z_j) = a + L, added exactly and rounded once; ``axis`` is removed."""
    z = np.asarray(z)
    rows, dt, ctx = _rows(z, axis)
    shape = np.moveaxis(z, axis, -1).shape[:-1]
    values = [[_Row(ctx, _mpfs(ctx, r), dt.t).lse] for r in rows]
    return _pack(values, dt, shape)


def softmax_vjp(z: Any, v: Any, axis: int = -1) -> np.ndarray:
    """g_j (v_j - <v, g>), formed as g_j sum_{i != j} g_i (v_j - v_i) with exact differences."""
    z = np.asarray(z)
    vr = _aligned(v, z, axis)

    def fn(ctx: Any, row: _Row, i: int) -> list[Mpf]:
        g = row.softmax()
        vs = _mpfs(ctx, vr[i])
        size = len(g)
        if size > _PAIRWISE_MAX:
            mean = ctx.fsum(gj * vj for gj, vj in zip(g, vs, strict=True))
            return [gj * (vj - mean) for gj, vj in zip(g, vs, strict=True)]
        out = []
        for j in range(size):
            terms = (g[i2] * ctx.fsub(vs[j], vs[i2], exact=True) for i2 in range(size) if i2 != j)
            out.append(g[j] * ctx.fsum(terms))
        return out

    return _per_row(z, axis, fn)


def cross_entropy(z: Any, n: Any, axis: int = -1) -> np.ndarray:
    """C = -sum_{n_j != 0} n_j l_j per row (``axis`` removed), rounded once."""
    z = np.asarray(z)
    rows, dt, ctx = _rows(z, axis)
    nr = _aligned(n, z, axis)
    shape = np.moveaxis(z, axis, -1).shape[:-1]
    values = []
    for r, nrow in zip(rows, nr, strict=True):
        row = _Row(ctx, _mpfs(ctx, r), dt.t)
        ns = _mpfs(ctx, nrow)
        values.append([-ctx.fsum(nj * lj for nj, lj in zip(ns, row.l, strict=True) if nj != 0)])
    return _pack(values, dt, shape)


def cross_entropy_grad(z: Any, n: Any, axis: int = -1) -> np.ndarray:
    """dC/dz_j = g_j S_n - n_j, formed as g_j sum_{i != j} n_i + n_j expm1(l_j)."""
    z = np.asarray(z)
    nr = _aligned(n, z, axis)
    return _per_row(z, axis, lambda ctx, row, i: _delta(ctx, row, _mpfs(ctx, nr[i])))


def _delta(ctx: Any, row: _Row, ns: list[Mpf]) -> list[Mpf]:
    g = row.softmax()
    size = len(ns)
    # sums of the other targets from prefix and suffix sums (no cancellation for n >= 0)
    prefix, suffix = [ctx.zero] * (size + 1), [ctx.zero] * (size + 1)
    for j in range(size):
        prefix[j + 1] = ctx.fadd(prefix[j], ns[j], exact=True)
        suffix[size - 1 - j] = ctx.fadd(suffix[size - j], ns[size - 1 - j], exact=True)
    out = []
    for j in range(size):
        others = ctx.fadd(prefix[j], suffix[j + 1])
        term = ns[j] * ctx.expm1(row.l[j]) if ns[j] != 0 else ctx.zero
        out.append(ctx.fadd(g[j] * others, term))
    return out


def dense_grads(W: Any, b: Any, x: Any, n: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dW = delta^T x, db = sum_b delta, dx = delta W for z = x W^T + b, each rounded once.

    z is formed from exact products with one rounding at 2t + 64 bits; delta per row as in
    ``cross_entropy_grad``.
    """
    W = np.asarray(W)
    dt = _dtype(W)
    ctx = _context(dt.prec)
    Wm = [_mpfs(ctx, r) for r in np.asarray(W)]
    bm = _mpfs(ctx, np.asarray(b, dtype=W.dtype))
    xm = [_mpfs(ctx, r) for r in np.asarray(x, dtype=W.dtype)]
    nm = [_mpfs(ctx, r) for r in np.asarray(n, dtype=W.dtype)]
    k, m = W.shape
    deltas = []
    for xr, nr in zip(xm, nm, strict=True):
        z = [ctx.fsum([bm[i], *(ctx.fmul(Wm[i][j], xr[j], exact=True) for j in range(m))])
             for i in range(k)]
        deltas.append(_delta(ctx, _Row(ctx, z, dt.t), nr))
    dW = [[ctx.fsum(d[i] * xr[j] for d, xr in zip(deltas, xm, strict=True)) for j in range(m)]
          for i in range(k)]
    db = [[ctx.fsum(d[i] for d in deltas) for i in range(k)]]
    dx = [[ctx.fsum(d[i] * Wm[i][j] for i in range(k)) for j in range(m)] for d in deltas]
    return (_pack(dW, dt, (k, m)), _pack(db, dt, (k,)), _pack(dx, dt, (len(xm), m)))
