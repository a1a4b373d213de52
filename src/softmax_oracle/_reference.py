"""The oracle: every quantity of the specification computed in mpmath, at high precision.

Precision is scoped to a private ``mpmath.MPContext`` per working precision (never ``mp.prec``),
inputs are converted exactly (every binary float is an mpf), and nothing is rounded here: the
unrounded references feed the tolerance model, and ``round_to`` rounds them once for display.

The recipe follows the corrected notes (design notes, "Measured on the real libraries", item 4):
with a = max x and L = log1p(sum_{i != k} exp(x_i - a)), compute l_j = (x_j - a) - L with x_j - a
at working precision, g_j = exp(l_j), 1 - g_j = -expm1(l_j), and y = a + L only for LSE itself.
That keeps every output relatively accurate even where a + L would lose L (|a| ~ 1e300).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np

__all__ = ["RowRef", "context", "row_ref", "rows_of", "to_mpf"]

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


@dataclass
class RowRef:
    """Everything the claims need about one softmax row x, exactly (to working precision).

    Masked entries (x_j = -inf) have ``x[j] is None``, g_j = 0 and l_j = -inf.
    """

    ctx: mpmath.MPContext
    x: list[MPF | None]
    k: int  # index of the (first) maximum, -1 if the row is all -inf
    a: MPF  # max x (ctx.ninf if all masked)
    L: MPF  # log1p(sum_{i != k} exp(x_i - a))
    l: list[MPF]  # log-softmax
    g: list[MPF]  # softmax
    one_minus_g: list[MPF]  # 1 - g_j without cancellation

    @property
    def n(self) -> int:
        return len(self.x)

    @property
    def all_masked(self) -> bool:
        return self.k < 0

    @property
    def y(self) -> MPF:
        """log-sum-exp, a + L added exactly (unless L is far below an ulp of a at this
        precision, where any rounding of the sum gives a)."""
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

    def cross_entropy(self, n: Sequence[MPF]) -> MPF:
        """C = -sum n_j l_j with 0 log 0 = 0."""
        return -self.ctx.fsum(nj * lj for nj, lj in zip(n, self.l) if nj != 0)

    def grad(self, n: Sequence[MPF]) -> list[MPF]:
        """dC/dz = g S_n - n, evaluated as g_j sum_{i != j} n_i - n_j (1 - g_j) so that it stays
        relatively accurate where g_j S_n and n_j nearly cancel (a confident correct class)."""
        s = self.ctx.fsum(n)
        return [gj * (s - nj) - nj * omg for gj, nj, omg in zip(self.g, n, self.one_minus_g)]

    def vjp(self, v: Sequence[MPF]) -> list[MPF]:
        """v^T J = g * (v - <g, v>) (J symmetric)."""
        m = self.ctx.fsum(gj * vj for gj, vj in zip(self.g, v) if gj != 0)
        return [gj * (vj - m) if gj != 0 else self.ctx.zero for gj, vj in zip(self.g, v)]


def row_ref(row: np.ndarray, prec: int) -> RowRef:
    """The reference for one 1-D row of finite values and -inf masks, at ``prec`` bits."""
    ctx = context(prec)
    x: list[MPF | None] = [None if v == -np.inf else ctx.mpf(float(v)) for v in row]
    finite = [j for j, v in enumerate(x) if v is not None]
    if not finite:
        ninf = ctx.ninf
        return RowRef(ctx, x, -1, ninf, ctx.zero, [ninf] * len(x), [ctx.zero] * len(x),
                      [ctx.one] * len(x))
    k = max(finite, key=lambda j: x[j])
    a = x[k]
    shifted = [None if v is None else ctx.fsub(v, a, exact=True) for v in x]
    L = ctx.log1p(ctx.fsum(ctx.exp(s) for j, s in enumerate(shifted) if s is not None and j != k))
    l = [ctx.ninf if s is None else s - L for s in shifted]
    g = [ctx.zero if s is None else ctx.exp(lj) for s, lj in zip(shifted, l)]
    omg = [ctx.one if s is None else -ctx.expm1(lj) for s, lj in zip(shifted, l)]
    return RowRef(ctx, x, k, a, L, l, g, omg)


def row_refs(z: np.ndarray, axis: int, prec: int) -> list[RowRef]:
    """References for every row of z along ``axis`` (rows in C order of the other axes)."""
    return [row_ref(r, prec) for r in rows_of(z, axis)]


def mp_vector(ctx: mpmath.MPContext, values: np.ndarray) -> list[MPF]:
    """Exact mpf list of a 1-D float array."""
    return [ctx.mpf(float(v)) for v in np.asarray(values, dtype=np.float64)]


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


def dense_ref(W: np.ndarray, b: np.ndarray, x: np.ndarray, n: np.ndarray, prec: int) -> DenseRef:
    ctx = context(prec)
    W64, b64, x64, n64 = (np.asarray(t, dtype=np.float64) for t in (W, b, x, n))
    k, m = W64.shape
    Wm = [mp_vector(ctx, W64[i]) for i in range(k)]
    bm = mp_vector(ctx, b64)
    logits, zeta, rows, delta = [], [], [], []
    for xb, nb in zip(x64, n64):
        xm = mp_vector(ctx, xb)
        # exact products, one rounding of the sum at the working precision
        zb = [ctx.fsum([bm[i], *(ctx.fmul(w, xj, exact=True) for w, xj in zip(Wm[i], xm))])
              for i in range(k)]
        zeta.append([ctx.fsum(abs(w * xj) for w, xj in zip(Wm[i], xm)) + abs(bm[i])
                     for i in range(k)])
        logits.append(zb)
        # The exact logits need more than the input precision; keep them as mpf rows.
        r = _row_ref_mp(ctx, zb)
        rows.append(r)
        delta.append(r.grad(mp_vector(ctx, nb)))
    xs = [mp_vector(ctx, xb) for xb in x64]
    dW = [[ctx.fsum(delta[bi][i] * xs[bi][j] for bi in range(len(xs))) for j in range(m)]
          for i in range(k)]
    db = [ctx.fsum(delta[bi][i] for bi in range(len(xs))) for i in range(k)]
    dx = [[ctx.fsum(delta[bi][i] * Wm[i][j] for i in range(k)) for j in range(m)]
          for bi in range(len(xs))]
    return DenseRef(logits, rows, delta, dW, db, dx, zeta)


def _row_ref_mp(ctx: mpmath.MPContext, z: list[MPF]) -> RowRef:
    """Like row_ref, for a row that is already a list of finite mpf values."""
    k = max(range(len(z)), key=lambda j: z[j])
    a = z[k]
    shifted = [ctx.fsub(v, a, exact=True) for v in z]
    L = ctx.log1p(ctx.fsum(ctx.exp(s) for j, s in enumerate(shifted) if j != k))
    l = [s - L for s in shifted]
    return RowRef(ctx, list(z), k, a, L, l, [ctx.exp(v) for v in l], [-ctx.expm1(v) for v in l])
