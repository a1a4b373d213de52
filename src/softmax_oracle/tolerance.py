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

All arithmetic is done in mpmath: in float64 the budgets themselves underflow (u g_j B for g_j near
1e-309 is 0 in float64, which once refuted a correct implementation by 14x).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._dtypes import DType
from ._reference import MPF, DenseRef, RowRef

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

    # ------------------------------------------------------------------ softmax
    def softmax(self, r: RowRef) -> list[MPF]:
        """tol(g_j) = g_j expm1(K u (c gap_j + n + 2μ + (1+μ)Λ + 1)) + 2Φ0 (+ u g_j)."""
        uc, _ = self._u("softmax")
        out = []
        for j, gj in enumerate(r.g):
            if r.x[j] is None:
                out.append(r.ctx.zero)  # masked: exactly 0 is required
                continue
            out.append(gj * self._grow(r, uc, self._rel(r, j, uc)) + 2 * self.phi0
                       + self._final("softmax", gj))
        return out

    def softmax_sum(self, r: RowRef) -> MPF:
        """|sum_j ĝ_j - 1| <= sum_j tol(g_j): the sum of the component bounds (summed exactly)."""
        return r.ctx.fsum(self.softmax(r))

    def vjp(self, r: RowRef, v: Sequence[MPF]) -> list[MPF]:
        """r_j = g_j (v_j - m), m = <g, v>:
        tol = g_j [(ε_j + 2)|v_j - m| + sum_i g_i (ε_i + n)|v_i|] + floors, ε = the softmax
        component bound (relative, in units of u): each ĝ_i enters m and the final product."""
        ctx, u = r.ctx, self.dtype.u
        m = ctx.fsum(gi * vi for gi, vi in zip(r.g, v) if gi != 0)
        eps = [self._grow(r, u, self._rel(r, i, u) + 2) if r.x[i] is not None else ctx.zero
               for i in range(r.n)]
        inner = ctx.fsum(gi * (ei + self._grow(r, u, ctx.mpf(r.n))) * abs(vi)
                         for gi, ei, vi in zip(r.g, eps, v) if gi != 0)
        sum_abs_v = ctx.fsum(abs(vi) for vi in v)
        out = []
        for j in range(r.n):
            if r.x[j] is None:
                out.append(ctx.zero)
                continue
            d = abs(v[j] - m)
            floor = 2 * self.phi0 * (d + sum_abs_v) + (r.n + 2) * self.phi0
            out.append(r.g[j] * (eps[j] * d + (1 + eps[j]) * inner) + floor)
        return out

    # ------------------------------------------------------------------ log domain
    def logsumexp(self, r: RowRef) -> MPF:
        """Stable: K u (μ|y| + n + μ + (1+μ)Λ); accurate: also <= K u (2n + 2μ + 2)(P + |y|)
        + 2nΦ0 with P = sum_i |x_i| g_i (condition-scaled, met by log1p-refined algorithms)."""
        if r.all_masked:
            return r.ctx.zero
        uc, _ = self._u("logsumexp")
        y = r.y
        tol = K * uc * (MU * abs(y) + r.n + MU + (1 + MU) * r.log_n) + self._final("logsumexp", y)
        if self.level == "accurate":
            P = r.ctx.fsum(abs(xi) * gi for xi, gi in zip(r.x, r.g) if xi is not None)
            acc = K * uc * (2 * r.n + 2 * MU + 2) * (P + abs(y)) + 2 * r.n * self.phi0
            tol = min(tol, acc + self._final("logsumexp", y))
        return tol

    def log_softmax(self, r: RowRef) -> list[MPF]:
        """Stable: K u (2|l_j| + n + μ + (1+μ)Λ); accurate: also <= K u (2n + 2μ + 2)(P_j + |l_j|)
        + 2nΦ0 with P_j = |x_j|(1 - g_j) + sum_{i != j} |x_i| g_i."""
        uc, _ = self._u("log_softmax")
        ctx = r.ctx
        out = []
        P_all = None
        if self.level == "accurate":
            P_all = ctx.fsum(abs(xi) * gi for xi, gi in zip(r.x, r.g) if xi is not None)
        for j, lj in enumerate(r.l):
            if r.x[j] is None:
                out.append(ctx.zero)
                continue
            tol = K * uc * (2 * abs(lj) + r.n + MU + (1 + MU) * r.log_n)
            if P_all is not None:
                xj = abs(r.x[j])
                Pj = P_all - xj * r.g[j] + xj * r.one_minus_g[j]
                tol = min(tol, K * uc * (2 * r.n + 2 * MU + 2) * (Pj + abs(lj))
                          + 2 * r.n * self.phi0)
            out.append(tol + self._final("log_softmax", lj))
        return out

    def cross_entropy(self, r: RowRef, n: Sequence[MPF]) -> MPF:
        """C = -sum n_j l_j: sum_j |n_j| tol(l_j) (in units of u) + n sum_j |n_j l_j| (products
        and the sum), i.e. (n+2) sum |n_j||l_j| + N1 (n + μ + (1+μ)Λ) at the stable level.
        Floor Φ0 sum_{n_j != 0} (1 + |l_j|): a product n_j l_j that underflows, or a subnormal
        n_j that a flushing backend reads as 0."""
        ctx, u = r.ctx, self.dtype.u
        terms = [(nj, lj) for nj, lj in zip(n, r.l) if nj != 0]
        if not terms:
            return ctx.zero
        ltol = self.log_softmax(r) if self.level == "accurate" else None
        total = ctx.zero
        for j, (nj, lj) in enumerate(zip(n, r.l)):
            if nj == 0:
                continue
            stable = K * u * (2 * abs(lj) + r.n + MU + (1 + MU) * r.log_n)
            t = stable if ltol is None else min(stable, ltol[j])
            total += abs(nj) * t + K * u * r.n * abs(nj * lj)
        floor = self.phi0 * ctx.fsum(1 + abs(lj) for _, lj in terms)
        return total + floor

    # ------------------------------------------------------------------ gradients
    def grad(self, r: RowRef, n: Sequence[MPF]) -> list[MPF]:
        """δ_j = S_n g_j - n_j: N1 g_j expm1(K u (ε_j + n + 1)) + K u |δ_j| + 2(N1 + n + 1)Φ0,
        ε_j the softmax bound (covers ĝ S_n - n and the log-softmax backward exp(l̂) S_n - n)."""
        ctx, u = r.ctx, self.dtype.u
        N1 = ctx.fsum(abs(nj) for nj in n)
        delta = r.grad(n)
        floor = 2 * (N1 + r.n + 1) * self.phi0
        out = []
        for j in range(r.n):
            if r.x[j] is None:
                out.append(abs(delta[j]) * K * u + floor)
                continue
            B = self._rel(r, j, u) + r.n + 1
            out.append(N1 * r.g[j] * self._grow(r, u, B) + K * u * abs(delta[j]) + floor)
        return out

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
