"""The oracle: every quantity of the specification computed in mpmath, at high precision, and
enclosed in certified float intervals for fast comparisons.

The recipe follows the corrected notes (design notes, "Measured on the real libraries", item 4):
with a = max x and L = log1p(sum_{i != k} exp(x_i - a)), compute l_j = (x_j - a) - L with x_j - a
at working precision, g_j = exp(l_j), 1 - g_j = -expm1(l_j), and y = a + L only for LSE itself.
That keeps every output relatively accurate even where a + L would lose L (|a| ~ 1e300).

Each quantity comes twice: exactly (mpmath at the working precision, ``exact``), and as a fast
enclosure of all rows of an array at once (``FastRows``, in the interval arithmetic of
``intervals``). A ``RowRef`` hands both out as ``Certified`` vectors. Dense layers have exact
references only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np

from softmax_oracle.oracle.exact import (
    MPF,
    Bounds,
    Certified,
    _float_values,
    concat,
    context,
    mp_vector,
    rows_of,
)
from softmax_oracle.oracle.intervals import (
    Ball,
    Format,
    _up,
    bexp,
    bexpm1,
    blog1p,
    blog_exact,
    exact_only,
    mp_slack,
    working_format,
)

# Ball, Certified, concat, context, exact_only, mp_vector and rows_of are re-exported: they were
# importable from here before exact.py and intervals.py were split off.
__all__ = [
    "Ball",
    "Certified",
    "DenseRef",
    "FastRows",
    "RowRef",
    "concat",
    "context",
    "dense_ref",
    "exact_only",
    "mp_vector",
    "row_ref",
    "row_ref_mp",
    "row_refs",
    "rows_of",
]


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
        r = row_ref_mp(ctx, zb)
        rows.append(r)
        delta.append(list(r.grad(_mp_list(ctx, nb))))
    xs = [_mp_list(ctx, xb) for xb in x64]
    dW = [[ctx.fsum(delta[bi][i] * xs[bi][j] for bi in range(len(xs))) for j in range(m)]
          for i in range(k)]
    db = [ctx.fsum(delta[bi][i] for bi in range(len(xs))) for i in range(k)]
    dx = [[ctx.fsum(delta[bi][i] * Wm[i][j] for i in range(k)) for j in range(m)]
          for bi in range(len(xs))]
    return DenseRef(logits, rows, delta, dW, db, dx, zeta)


def row_ref_mp(ctx: mpmath.MPContext, z: Sequence[MPF]) -> RowRef:
    """Like row_ref, for a row that is already a list of finite mpf values (exact only)."""
    z = list(z)
    k = max(range(len(z)), key=lambda j: z[j])
    a = z[k]
    shifted = [ctx.fsub(v, a, exact=True) for v in z]
    L = ctx.log1p(ctx.fsum(ctx.exp(s) for j, s in enumerate(shifted) if j != k))
    l = [s - L for s in shifted]
    return RowRef._from_values(ctx, z, k, a, L, l, [ctx.exp(v) for v in l],
                               [-ctx.expm1(v) for v in l])
