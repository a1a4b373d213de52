"""The tolerance model: per-element error budgets |computed - reference| <= tol, derived, not tuned.

Every budget is the first-order sum of the local rounding errors of a max-shifted algorithm
(Blanchard, Higham & Higham 2021, Alg. 4.1 and the variants used by numpy, SciPy, PyTorch and JAX),
for any summation order, written in units of the unit roundoff u. ``docs/tolerances.md`` derives
each one; the symbols follow it:

* n  the row length, Λ = ln n, gap_j = max(x) - x_j, g = softmax(x), l = log-softmax, y = LSE;
* μ  the elementary-function factor: exp/log/log1p err by at most μ u relatively (μ = 4, 2 ulp);
* c  = 2, the gap coefficient that also covers softmax evaluated as exp(log-softmax);
* K  = 2, the factor that makes first-order bounds rigorous while u B <= 1/2;
* Φ0 the absolute floor: the smallest subnormal, or the smallest normal if the backend flushes.

Relative budgets (those of the form g_j (...)) are applied as g_j expm1(K u B) rather than
K u B g_j, which is the same to first order and stays a valid bound when u B is not small (bf16
rows of thousands of entries, gaps of 1e300): products of (1 + δ) factors are bounded by
exp(sum |δ|), never by 1 + sum |δ|.

Every budget is defined by its mpmath evaluation (in float64 the budgets themselves underflow:
u g_j B for g_j near 1e-309 is 0 in float64, which once refuted a correct implementation by 14x).
Each budget vector is a ``Certified``: its elements are evaluated in mpmath only on demand, and
its enclosures (``_fast_*``) are evaluated in interval arithmetic from the rows' fast references,
in float64 or long double, wide enough to contain the mpmath values (docs/tolerances.md, "Fast
references").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from softmax_oracle.oracle.dtypes import DType
from softmax_oracle.oracle.exact import MPF, Bounds, Certified, _float_values
from softmax_oracle.oracle.intervals import Ball, bexp, blog_expm1, minimum, mp_slack
from softmax_oracle.oracle.reference import DenseRef, FastRows, RowRef

__all__ = ["MU", "Model"]

#: Elementary-function factor: exp, log, log1p within 2 ulp (= 4 u), as libm, numpy, SVML
#: and CUDA document; measured maxima are 0.5 - 1.8 ulp (docs/tolerances.md).
MU = 4
#: Gap coefficient: 1 for fl(exp(fl(x_j - a))), 2 for exp(log-softmax) paths.
C_GAP = 2
#: First-order to rigorous factor.
K = 2

#: Functions computed by one fused kernel, whose declared internal precision applies.
SINGLE_KERNEL = frozenset({"softmax", "log_softmax", "logsumexp"})


@dataclass(frozen=True)
class Model:
    """The tolerance model for one dtype, one level and one target's declared arithmetic.

    ``uc`` is the unit roundoff of the target's internal arithmetic for single-kernel functions
    (u of the output dtype unless the target declares a wider compute dtype); ``phi0`` the
    absolute floor (smallest subnormal, or smallest normal when the target flushes subnormals).
    """

    dtype: DType
    level: str = "stable"
    phi0: float = 0.0
    uc: float = 0.0  # 0 means: same as dtype.u
    flushes: bool = False

    @classmethod
    def for_target(cls, dtype: DType, level: str, *, flushes: bool = False,
                   compute: DType | None = None) -> Model:
        phi0 = dtype.rmin if flushes else dtype.rmin_sub
        uc = compute.u if compute is not None and compute.u < dtype.u else dtype.u
        return cls(dtype=dtype, level=level, phi0=phi0, uc=uc, flushes=flushes)

    # ------------------------------------------------------------------ helpers
    def _u(self, fname: str) -> tuple[float, bool]:
        """(unit roundoff of the computation, whether a final rounding to the dtype follows)."""
        if fname in SINGLE_KERNEL and self.uc and self.uc < self.dtype.u:
            return self.uc, True
        return self.dtype.u, False

    def _final(self, fname: str, ref: MPF) -> MPF:
        """The final rounding to the output dtype when computing in a wider one: u |ref|."""
        _, final = self._u(fname)
        return self.dtype.u * abs(ref) if final else 0

    @staticmethod
    def _rel(r: RowRef, j: int, uc: float) -> MPF:
        """Relative error bound of a softmax component g_j, in units of u (first order):
        c gap_j (shifted argument) + μ (exp) + (n - 1 + Λ + μ) (the sum, lemma of §2.2)
        + 1 (division), or, via exp(log-softmax), 2 gap_j + n - 1 + 2μ + (1+μ)Λ."""
        return C_GAP * r.gap(j) + r.n + 2 * MU + (1 + MU) * r.log_n + 1

    @staticmethod
    def _grow(r: RowRef, uc: float, B: MPF) -> MPF:
        """expm1(K u B): the relative error of a product of (1 + δ) factors with sum |δ| <= u B."""
        return r.ctx.expm1(K * uc * B)

    def _certified(self, r: RowRef, name: str, exact: Callable[[int], MPF], size: int | None = None,
                   fast: Callable[[FastRows], Ball] | None = None,
                   row_fast: Callable[[], Ball | None] | None = None) -> Certified:
        """A budget vector: exact elements on demand (the formulas below, in mpmath), and its
        enclosures from the row's fast references (computed for all rows of the array at once
        when ``fast`` is given, for this row only with ``row_fast``). Cached per row."""

        def bounds() -> Bounds | None:
            fr = r.fast
            if fr is None:
                return None
            if fast is not None:
                b = fr.cached((self, name), lambda: fast(fr))[r.index]
            else:
                assert row_fast is not None
                got = row_fast()
                if got is None:
                    return None
                b = got
            return b.m.reshape(-1), b.r.reshape(-1), None

        return Certified(r.n if size is None else size, exact, bounds)

    # ------------------------------------------------------------------ softmax
    def softmax(self, r: RowRef) -> Certified:
        """tol(g_j) = g_j expm1(K u (c gap_j + n + 2μ + (1+μ)Λ + 1)) + 2Φ0 (+ u g_j)."""
        return r.memo((self, "softmax"), lambda: self._certified(
            r, "softmax", lambda j: self._softmax_at(r, j), fast=self._fast_softmax))

    def _softmax_at(self, r: RowRef, j: int) -> MPF:
        if r.x[j] is None:
            return r.ctx.zero  # masked: exactly 0 is required
        uc, _ = self._u("softmax")
        gj = r.g[j]
        return gj * self._grow(r, uc, self._rel(r, j, uc)) + 2 * self.phi0 + self._final(
            "softmax", gj)

    def _growth(self, fr: FastRows, uc: float, extra: int = 0) -> tuple[Ball, Ball]:
        """(x, log expm1(x)) with x = K u (c gap_j + n + 2μ + (1+μ)Λ + 1 + extra)."""
        B = fr.gap * C_GAP + (fr.n + 2 * MU + 1 + extra) + fr.log_n * (1 + MU)
        x = B * (K * uc)
        return x, blog_expm1(x)

    def _fast_softmax(self, fr: FastRows) -> Ball:
        uc, final = self._u("softmax")
        x, lem = self._growth(fr, uc)
        tol = bexp(fr.l_safe + lem, saturate=True) + 2 * self.phi0
        if final:
            tol = tol + fr.g * self.dtype.u
        tol = mp_slack(tol, fr.prec, fr.n, (np.abs(tol.m) + tol.r) * (2 + x.m + x.r))
        return tol.where(~fr.finite, 0, 0)

    def softmax_sum(self, r: RowRef) -> MPF:
        """|sum_j ĝ_j - 1| <= sum_j tol(g_j): the sum of the component bounds (summed exactly)."""
        return r.ctx.fsum(self.softmax(r))

    def vjp(self, r: RowRef, v: Sequence[MPF]) -> list[MPF]:
        """r_j = g_j (v_j - m), m = <g, v>:
        tol = g_j [(ε_j + 2)|v_j - m| + sum_i g_i (ε_i + n)|v_i|] + floors, ε = the softmax
        component bound (relative, in units of u): each ĝ_i enters m and the final product."""
        ctx, u = r.ctx, self.dtype.u
        g = list(r.g)
        m = ctx.fsum(gi * vi for gi, vi in zip(g, v) if gi != 0)
        eps = [self._grow(r, u, self._rel(r, i, u) + 2) if r.x[i] is not None else ctx.zero
               for i in range(r.n)]
        grow_n = self._grow(r, u, ctx.mpf(r.n))
        inner = ctx.fsum(gi * (ei + grow_n) * abs(vi)
                         for gi, ei, vi in zip(g, eps, v) if gi != 0)
        sum_abs_v = ctx.fsum(abs(vi) for vi in v)
        out = []
        for j in range(r.n):
            if r.x[j] is None:
                out.append(ctx.zero)
                continue
            d = abs(v[j] - m)
            floor = 2 * self.phi0 * (d + sum_abs_v) + (r.n + 2) * self.phi0
            out.append(g[j] * (eps[j] * d + (1 + eps[j]) * inner) + floor)
        return out

    # ------------------------------------------------------------------ log domain
    def logsumexp(self, r: RowRef, certified: bool = False) -> Any:
        """Stable: K u (μ|y| + n + μ + (1+μ)Λ); accurate: also <= K u (2n + 2μ + 2)(P + |y|)
        + 2nΦ0 with P = sum_i |x_i| g_i (condition-scaled, met by log1p-refined algorithms).
        With ``certified``: a Certified vector of one value (for ``concat``)."""
        if not certified:
            return r.memo((self, "lse_exact"), lambda: self._logsumexp_exact(r))
        return r.memo((self, "lse"), lambda: self._certified(
            r, "logsumexp", lambda _: self.logsumexp(r), size=1, fast=self._fast_logsumexp))

    def _P(self, r: RowRef) -> MPF:
        return r.memo("P", lambda: r.ctx.fsum(abs(xi) * gi for xi, gi in zip(r.x, r.g)
                                              if xi is not None))

    def _logsumexp_exact(self, r: RowRef) -> MPF:
        if r.all_masked:
            return r.ctx.zero
        uc, _ = self._u("logsumexp")
        y = r.y
        tol = K * uc * (MU * abs(y) + r.n + MU + (1 + MU) * r.log_n) + self._final("logsumexp", y)
        if self.level == "accurate":
            acc = K * uc * (2 * r.n + 2 * MU + 2) * (self._P(r) + abs(y)) + 2 * r.n * self.phi0
            tol = min(tol, acc + self._final("logsumexp", y))
        return tol

    def _fast_logsumexp(self, fr: FastRows) -> Ball:
        uc, final = self._u("logsumexp")
        y = abs(fr.y.where(~fr.any_finite, 0, 0))
        tol = (y * MU + (fr.n + MU) + fr.log_n * (1 + MU)) * (K * uc)
        fin = y * self.dtype.u if final else None
        if fin is not None:
            tol = tol + fin
        if self.level == "accurate":
            acc = (fr.P() + y) * (K * uc * (2 * fr.n + 2 * MU + 2)) + 2 * fr.n * self.phi0
            if fin is not None:
                acc = acc + fin
            tol = minimum(tol, acc)
        tol = mp_slack(tol, fr.prec, fr.n)
        return tol.where(~fr.any_finite, 0, 0)

    def log_softmax(self, r: RowRef) -> Certified:
        """Stable: K u (2|l_j| + n + μ + (1+μ)Λ); accurate: also <= K u (2n + 2μ + 2)(P_j + |l_j|)
        + 2nΦ0 with P_j = |x_j|(1 - g_j) + sum_{i != j} |x_i| g_i."""
        return r.memo((self, "log_softmax"), lambda: self._certified(
            r, "log_softmax", lambda j: self._log_softmax_at(r, j), fast=self._fast_log_softmax))

    def _log_softmax_at(self, r: RowRef, j: int) -> MPF:
        ctx, xv = r.ctx, r.x[j]
        if xv is None:
            return ctx.zero
        uc, _ = self._u("log_softmax")
        lj = r.l[j]
        tol = K * uc * (2 * abs(lj) + r.n + MU + (1 + MU) * r.log_n)
        if self.level == "accurate":
            xj = abs(xv)
            Pj = self._P(r) - xj * r.g[j] + xj * r.one_minus_g[j]
            tol = min(tol, K * uc * (2 * r.n + 2 * MU + 2) * (Pj + abs(lj)) + 2 * r.n * self.phi0)
        return tol + self._final("log_softmax", lj)

    def _fast_log_softmax(self, fr: FastRows) -> Ball:
        uc, final = self._u("log_softmax")
        absl = abs(fr.l.where(~fr.finite, 0, 0))
        tol = (absl * 2 + (fr.n + MU) + fr.log_n * (1 + MU)) * (K * uc)
        mag = np.abs(tol.m) + tol.r
        if self.level == "accurate":
            absx = np.abs(fr.x)
            xg = fr.absx_g()
            P = fr.P()
            Q = Ball(P.m[:, None], P.r[:, None], fr.f) - xg  # sum_{i != j} |x_i| g_i ...
            rows = np.arange(fr.x.shape[0])
            others = fr.finite.copy()
            others[rows, fr.k] = False
            Qk = xg.sum(mask=others)  # ... and without cancellation where g_j ~ 1
            Q.m[rows, fr.k], Q.r[rows, fr.k] = Qk.m, Qk.r
            Pj = Q + fr.one_minus_g * absx
            c = K * uc * (2 * fr.n + 2 * MU + 2)
            acc = (Pj + absl) * c + 2 * fr.n * self.phi0
            # mpmath forms P - |x_j| g_j + |x_j| (1 - g_j): its rounding is relative to these
            mag = mag + c * (P.m[:, None] + P.r[:, None] + absx * (fr.g.m + fr.g.r + 1))
            tol = minimum(tol, acc)
        if final:
            tol = tol + absl * self.dtype.u
        tol = mp_slack(tol, fr.prec, fr.n, mag + np.abs(tol.m) + tol.r)
        return tol.where(~fr.finite, 0, 0)

    def cross_entropy(self, r: RowRef, n: Sequence[MPF], certified: bool = False) -> Any:
        """C = -sum n_j l_j: sum_j |n_j| tol(l_j) (in units of u) + n sum_j |n_j l_j| (products
        and the sum), i.e. (n+2) sum |n_j||l_j| + N1 (n + μ + (1+μ)Λ) at the stable level.
        Floor Φ0 sum_{n_j != 0} (1 + |l_j|): a product n_j l_j that underflows, or a subnormal
        n_j that a flushing backend reads as 0. With ``certified``: a Certified vector of one."""
        if not certified:
            return self._cross_entropy_exact(r, n)
        vals = _float_values(n)

        def row_fast() -> Ball | None:
            return None if vals is None else self._fast_cross_entropy(r, vals)

        def build() -> Certified:
            return self._certified(r, "cross_entropy", lambda _: self._cross_entropy_exact(r, n),
                                   size=1, row_fast=row_fast)

        return build() if vals is None else r.memo((self, "ce", vals.tobytes()), build)

    def _cross_entropy_exact(self, r: RowRef, n: Sequence[MPF]) -> MPF:
        ctx, u = r.ctx, self.dtype.u
        terms = [(j, nj) for j, nj in enumerate(n) if nj != 0]
        if not terms:
            return ctx.zero
        ltol = self.log_softmax(r) if self.level == "accurate" else None
        total = ctx.zero
        for j, nj in terms:
            lj = r.l[j]
            stable = K * u * (2 * abs(lj) + r.n + MU + (1 + MU) * r.log_n)
            t = stable if ltol is None else min(stable, ltol[j])
            total += abs(nj) * t + K * u * r.n * abs(nj * lj)
        floor = self.phi0 * ctx.fsum(1 + abs(r.l[j]) for j, _ in terms)
        return total + floor

    def _fast_cross_entropy(self, r: RowRef, vals: np.ndarray) -> Ball | None:
        fr = r.fast
        assert fr is not None
        i, u = r.index, self.dtype.u
        nz = vals != 0
        if np.any(nz & ~fr.finite[i]):
            return None  # a target on a masked entry: C = +inf, exactly only
        if not np.any(nz):
            return Ball.exact(0.0, fr.f)
        absl = abs(fr.l[i][nz])
        nv = np.abs(vals[nz]).astype(fr.f.np)
        t = (absl * 2 + (fr.n + MU) + fr.log_n * (1 + MU)) * (K * u)
        if self.level == "accurate":
            ls = fr.cached((self, "log_softmax"), lambda: self._fast_log_softmax(fr))
            t = minimum(t, ls[i][nz])
        total = (t * nv + absl * (nv * (K * u * fr.n))).sum()
        floor = (absl + 1).sum() * self.phi0
        tol = total + floor
        return mp_slack(tol, fr.prec, fr.n)

    # ------------------------------------------------------------------ gradients
    def grad(self, r: RowRef, n: Sequence[MPF]) -> Certified:
        """δ_j = S_n g_j - n_j: N1 g_j expm1(K u (ε_j + n + 1)) + K u |δ_j| + 2(N1 + n + 1)Φ0,
        ε_j the softmax bound (covers ĝ S_n - n and the log-softmax backward exp(l̂) S_n - n)."""
        vals = _float_values(n)
        delta = r.grad(n)
        state: list[MPF] = []

        def exact(j: int) -> MPF:
            ctx, u = r.ctx, self.dtype.u
            if not state:
                N1 = ctx.fsum(abs(nj) for nj in n)
                state.extend([N1, 2 * (N1 + r.n + 1) * self.phi0])
            N1, floor = state
            if r.x[j] is None:
                return abs(delta[j]) * K * u + floor
            B = self._rel(r, j, u) + r.n + 1
            return N1 * r.g[j] * self._grow(r, u, B) + K * u * abs(delta[j]) + floor

        def row_fast() -> Ball | None:
            return None if vals is None else self._fast_grad(r, vals)

        def build() -> Certified:
            return self._certified(r, "grad", exact, row_fast=row_fast)

        return build() if vals is None else r.memo((self, "grad", vals.tobytes()), build)

    def _fast_grad(self, r: RowRef, vals: np.ndarray) -> Ball:
        fr = r.fast
        assert fr is not None
        i, u, f = r.index, self.dtype.u, fr.f
        N1 = Ball.exact(np.abs(vals).astype(f.np), f).sum()
        delta = r.fast_grad(vals)
        x, lem = fr.cached(("growth_grad", u), lambda: self._growth(fr, u, extra=r.n + 1))
        term = bexp(fr.l_safe[i] + lem[i], saturate=True) * Ball(np.full(r.n, N1.m),
                                                            np.full(r.n, N1.r), f)
        floor = (N1 + (r.n + 1)) * (2 * self.phi0)
        tol = term + abs(delta) * (K * u) + Ball(np.full(r.n, floor.m), np.full(r.n, floor.r), f)
        masked = abs(delta) * (K * u) + Ball(np.full(r.n, floor.m), np.full(r.n, floor.r), f)
        fin = fr.finite[i]
        tol = Ball(np.where(fin, tol.m, masked.m), np.where(fin, tol.r, masked.r), f)
        return mp_slack(tol, fr.prec, fr.n, (np.abs(tol.m) + tol.r) * (2 + x.m[i] + x.r[i]))

    def dense(self, ref: DenseRef, W: Any, x: Any, n: Any) -> tuple[list[list[MPF]], list[MPF],
                                                                   list[list[MPF]]]:
        """Budgets for (dW, db, dx) of a dense layer with softmax cross-entropy, including the
        forward error of the implementation's own logits: |Δz_i| <= (m + 3) u ζ_i,
        ζ_i = sum_j |W_ij||x_j| + |b_i|. See docs/tolerances.md, "Dense layer"."""
        ctx, u = ref.rows[0].ctx, self.dtype.u
        k, m = len(ref.db), len(ref.dx[0])
        Wm = [[ctx.mpf(float(w)) for w in row] for row in W]
        xs = [[ctx.mpf(float(v)) for v in row] for row in x]
        ns = [[ctx.mpf(float(v)) for v in row] for row in n]
        E, F = [], []  # per sample: budget of δ_i (units of absolute error), and its floor
        for r, nb, zeta, delta in zip(ref.rows, ns, ref.zeta, ref.delta):
            N1 = ctx.fsum(abs(v) for v in nb)
            azeta = ctx.fsum(gi * zi for gi, zi in zip(r.g, zeta))
            Eb = []
            for i in range(k):
                B = self._rel(r, i, u) + (m + 3) * (zeta[i] + azeta) + r.n + 1
                Eb.append(N1 * r.g[i] * self._grow(r, u, B) + K * u * abs(delta[i]))
            E.append(Eb)
            F.append(2 * (N1 + r.n + 1) * self.phi0)
        nb_ = len(xs)
        dW = [[ctx.fsum(E[b][i] * abs(xs[b][j]) + F[b] * abs(xs[b][j]) for b in range(nb_))
               + K * u * (nb_ + 3) * ctx.fsum(abs(ref.delta[b][i] * xs[b][j]) for b in range(nb_))
               + nb_ * self.phi0 for j in range(m)] for i in range(k)]
        db = [ctx.fsum(E[b][i] + F[b] for b in range(nb_))
              + K * u * nb_ * ctx.fsum(abs(ref.delta[b][i]) for b in range(nb_)) + nb_ * self.phi0
              for i in range(k)]
        dx = [[ctx.fsum(abs(Wm[i][j]) * (E[b][i] + F[b]) for i in range(k))
               + K * u * (k + 3) * ctx.fsum(abs(Wm[i][j] * ref.delta[b][i]) for i in range(k))
               + k * self.phi0 for j in range(m)] for b in range(nb_)]
        return dW, db, dx
