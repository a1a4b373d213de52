"""The loss API exactly, and its budgets: class-index or probability targets, class weights,
label smoothing, ignore_index, reductions, and a dense layer fused in front of it.

Every form of the loss is a cross-entropy per row with *effective targets* t_i (docs/tolerances.md,
"The loss API"), K classes, weights w (1 when absent) and smoothing ε:

    class index y_i:    t_i = (1 - ε) w_{y_i} e_{y_i} + (ε/K) w     (no t_i: the row is ignored)
    probabilities q_i:  t_i = w ⊙ ((1 - ε) q_i + ε/K)

    ℓ_i = -Σ_j t_ij l_ij = S_i LSE(z_i) - <t_i, z_i>,   S_i = Σ_j t_ij,   ∂ℓ_i/∂z_i = g_i S_i - t_i.

Reductions: ``none`` gives ℓ_i (0 for an ignored row), ``sum`` Σ ℓ_i, ``mean`` Σ ℓ_i / D with
D = Σ_{i not ignored} w_{y_i} for class indices and D = B for probabilities (PyTorch's semantics,
checked against torch itself); the gradient of the mean is divided by D too. D = 0 (every row
ignored, or no rows) makes the mean 0/0: a convention, outside the reference.

Budgets: ``stable`` is what a max-shifted algorithm computing in the dtype guarantees; ``accurate``
what accumulating in a wider format (float32 for 16-bit formats, float64 for float32) and
rounding to the dtype achieves: the log-probabilities and the result each rounded once. In float64
the two levels coincide. The fused layer adds the forward error of the implementation's own
logits, bounded rigorously (not to first order): a perturbation |Δz_j| <= e_j changes LSE by at
most log Σ_j g_j exp(e_j), and each g_j by a factor within exp(±2 max e).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import mpmath
import numpy as np

from softmax_oracle.oracle.dtypes import DType, get_dtype
from softmax_oracle.oracle.exact import MPF, context
from softmax_oracle.oracle.reference import RowRef, row_ref_mp, row_refs
from softmax_oracle.oracle.tolerance import C_GAP, K, Model

__all__ = ["FusedRef", "LossRef", "LossSpec", "accumulation_dtype", "fused_ref", "loss_ref"]

#: Roundings in forming one effective target and combining the smoothed and unsmoothed parts:
#: ε/K (2: ε to the dtype, the division), the weight product, (1 - ε) times a part, and the sum
#: of the two parts.
_COEF = 6


@dataclass(frozen=True)
class LossSpec:
    """What one call of the loss API asks (every array holds the dtype's values as float64)."""

    y: np.ndarray  # (B,) class indices (int64), or (B, K) probabilities
    index: bool
    weight: np.ndarray | None = None  # (K,)
    ignore_index: int = -100
    smoothing: float = 0.0
    reduction: str = "mean"

    @classmethod
    def of(cls, y: np.ndarray, options: dict[str, Any]) -> LossSpec:
        index = np.asarray(y).dtype.kind in "iu"
        w = options.get("weight")
        return cls(y=np.asarray(y) if index else np.asarray(y, dtype=np.float64), index=index,
                   weight=None if w is None else np.asarray(w, dtype=np.float64),
                   ignore_index=int(options.get("ignore_index", -100)),
                   smoothing=float(options.get("label_smoothing", 0.0)),
                   reduction=str(options.get("reduction", "mean")))

    def ignored(self) -> np.ndarray:
        """(B,) bool: the rows that are ignored (class indices equal to ignore_index)."""
        if not self.index:
            return np.zeros(self.y.shape[0], dtype=bool)
        return self.y == self.ignore_index


def accumulation_dtype(dtype: DType) -> DType:
    """The wider format the accurate level assumes: float32 for 16-bit formats, float64 for
    float32 and float64."""
    return get_dtype("float32" if dtype.t < 24 else "float64")


# =============================================================================== exact values


class LossRef:
    """The exact loss and gradient of one call, on rows of logits (``RowRef``)."""

    def __init__(self, ctx: mpmath.MPContext, rows: Sequence[RowRef], spec: LossSpec,
                 classes: int) -> None:
        self.ctx, self.rows, self.spec, self.classes = ctx, list(rows), spec, classes
        eps = ctx.mpf(spec.smoothing)
        self.eps = eps
        w = ([ctx.one] * classes if spec.weight is None
             else [ctx.mpf(float(v)) for v in spec.weight])
        self.t: list[list[MPF] | None] = []
        self.p: list[list[MPF] | None] = []  # the part multiplied by (1 - ε)
        ignored = spec.ignored()
        D = ctx.zero
        for i in range(len(self.rows)):
            if ignored[i]:
                self.t.append(None)
                self.p.append(None)
                continue
            if spec.index:
                y = int(spec.y[i])
                p = [w[j] if j == y else ctx.zero for j in range(classes)]
                D += w[y]
            else:
                p = [wj * ctx.mpf(float(q)) for wj, q in zip(w, spec.y[i])]
                D += 1
            self.p.append(p)
            self.t.append([(1 - eps) * pj + eps * wj / classes for pj, wj in zip(p, w)])
        if not spec.index:
            D = ctx.mpf(len(self.rows))
        self.D = D
        self.scale = (1 / D if D != 0 else ctx.nan) if spec.reduction == "mean" else ctx.one
        self.row_losses = [ctx.zero if t is None else r.cross_entropy(t)
                           for r, t in zip(self.rows, self.t)]

    @property
    def defined(self) -> bool:
        """False for a mean over no weight (0/0): a convention, not a value."""
        return self.spec.reduction != "mean" or self.D != 0

    def loss(self) -> list[MPF]:
        """The output: B values for ``none``, else one."""
        if self.spec.reduction == "none":
            return list(self.row_losses)
        total = self.ctx.fsum(self.row_losses)
        return [total * self.scale if self.spec.reduction == "mean" else total]

    def grad(self, i: int) -> list[MPF]:
        """∂L/∂z_i."""
        t = self.t[i]
        if t is None:
            return [self.ctx.zero] * self.classes
        return [self.scale * d for d in self.rows[i].grad(t)]


def loss_ref(z: np.ndarray, spec: LossSpec, prec: int,
             rows: Sequence[RowRef] | None = None) -> LossRef:
    """The exact loss of logits z (B, K) (rows along the last axis)."""
    ctx = context(prec)
    if rows is None:
        rows = row_refs(z, -1, prec) if z.shape[0] else []
    return LossRef(ctx, rows, spec, z.shape[-1])


# =============================================================================== budgets


def _expm1(ctx: mpmath.MPContext, x: MPF) -> MPF:
    """An upper bound of expm1(x) for x >= 0: x + x**2 below 1/2 (the series' tail after x is
    at most (e - 2) x**2), mpmath's expm1 beyond. Budgets need bounds, and mpmath's expm1 of a
    tiny argument costs a careful series each time."""
    return x + x * x if x < 0.5 else ctx.expm1(x)


def _models(model: Model) -> tuple[Model, float]:
    """(the model whose unit roundoff the algorithm's errors are measured in, the unit roundoff
    of the final rounding to the dtype: 0 at the stable level)."""
    if model.level != "accurate":
        return model, 0.0
    acc = accumulation_dtype(model.dtype)
    if acc.u >= model.dtype.u:
        return replace(model, level="stable"), 0.0
    return Model(dtype=acc, level="stable", phi0=model.phi0, flushes=model.flushes), model.dtype.u


def _row_loss_tol(m: Model, r: RowRef, t: list[MPF], p: list[MPF], eps: MPF,
                  e: Sequence[MPF] | None) -> MPF:
    """Budget of one row's loss: the cross-entropy budget with targets t, the rounding of the
    targets' coefficients, and (fused) the effect of the logits' own forward error e."""
    ctx, u = r.ctx, m.dtype.u
    base = m.cross_entropy(r, t)
    coef = K * u * ctx.fsum((_COEF * tj + eps * pj) * abs(r.l[j])
                            for j, (tj, pj) in enumerate(zip(t, p)) if tj != 0 or pj != 0)
    if e is None:
        return base + coef
    S = ctx.fsum(t)
    M = max(e)
    # |ℓ(z + Δ) - ℓ(z)| <= S log Σ g_j e^{e_j} + Σ t_j e_j; the budget's |l_j| grow by <= 2M.
    moved = S * ctx.log(ctx.fsum(gj * ctx.exp(ej) for gj, ej in zip(r.g, e))) + ctx.fsum(
        tj * ej for tj, ej in zip(t, e))
    grown = K * u * (r.n + 2 + _COEF + eps) * S * 2 * M
    return base + coef + moved + grown


def _grad_tol(m: Model, r: RowRef, t: list[MPF], p: list[MPF], eps: MPF,
              e: Sequence[MPF] | None) -> list[MPF]:
    """Budget of ∂ℓ/∂z = g S - t per element (unscaled): the softmax's relative error, the
    product and difference, the targets' coefficients and (fused) the logits' forward error."""
    ctx, u = r.ctx, m.dtype.u
    S = ctx.fsum(t)
    P = ctx.fsum(p)
    M = max(e) if e is not None else ctx.zero
    grow = ctx.exp(2 * M)
    spread = _expm1(ctx, 2 * M)
    delta = r.grad(t)
    floor = 2 * (S + r.n + 1) * m.phi0
    out = []
    for j in range(r.n):
        g = r.g[j]
        B = Model._rel(r, j, u) + r.n + 1 + 2 * C_GAP * M
        moved = S * min(g, r.one_minus_g[j]) * spread  # |Δδ_j| from the logits' error
        tol = (S * g * grow * _expm1(ctx, K * u * B) + K * u * (abs(delta[j]) + moved) + floor
               + moved + K * u * (_COEF * (S * g * grow + t[j]) + eps * (P * g * grow + p[j])))
        out.append(tol)
    return out


def _scale_err(m: Model, spec: LossSpec, batch: int) -> MPF:
    """Relative error of dividing by the computed D (mean): D's sum and the division."""
    ctx = context(64)
    if spec.reduction != "mean":
        return ctx.zero
    return _expm1(ctx, K * m.dtype.u * (batch + 1))


def _reduce(m: Model, ref: LossRef, tols: list[MPF], final_u: float) -> list[MPF]:
    """Budgets of the reduced output from the rows' budgets."""
    ctx, spec, B = ref.ctx, ref.spec, len(ref.rows)
    absl = [abs(v) for v in ref.row_losses]
    if spec.reduction == "none":
        return [t + final_u * 2 * a for t, a in zip(tols, absl)]
    T, A = ctx.fsum(tols), ctx.fsum(absl)
    tol = T + _expm1(ctx, K * m.dtype.u * max(B - 1, 0)) * (A + T)
    if spec.reduction == "mean":
        E = _scale_err(m, spec, B)
        tol = tol / ref.D * (1 + E) + A / ref.D * E
        A = A / ref.D
    return [tol + final_u * 2 * A + m.phi0]


def loss_tol(model: Model, ref: LossRef) -> list[MPF]:
    """Budgets of the loss output (one per output element)."""
    m, final_u = _models(model)
    tols = [ref.ctx.zero if t is None or p is None else _row_loss_tol(m, r, t, p, ref.eps, None)
            for r, t, p in zip(ref.rows, ref.t, ref.p)]
    return _reduce(m, ref, tols, final_u)


def grad_tol(model: Model, ref: LossRef, i: int) -> list[MPF]:
    """Budgets of ∂L/∂z_i."""
    m, final_u = _models(model)
    t, p = ref.t[i], ref.p[i]
    if t is None or p is None:
        return [ref.ctx.zero] * ref.classes  # an ignored row's gradient is exactly 0
    return _scaled(m, ref, _grad_tol(m, ref.rows[i], t, p, ref.eps, None), ref.grad(i), final_u)


def _scaled(m: Model, ref: LossRef, tols: list[MPF], exact: list[MPF],
            final_u: float) -> list[MPF]:
    c = abs(ref.scale)
    E = _scale_err(m, ref.spec, len(ref.rows))
    return [c * t + (abs(d) + c * t) * E + final_u * abs(d) + m.phi0 for t, d in zip(tols, exact)]


# =============================================================================== fused layer


@dataclass
class FusedRef:
    """linear_cross_entropy(x, W, b, y) exactly: z = x W^T + b, the loss and its gradients."""

    loss: LossRef
    z: list[list[MPF]]  # (B, K)
    zeta: list[list[MPF]]  # (B, K): Σ_j |W_ij x_j| + |b_i|
    x: list[list[MPF]]
    W: list[list[MPF]]
    delta: list[list[MPF]]  # (B, K): ∂L/∂z
    dW: list[list[MPF]]
    db: list[MPF]
    dx: list[list[MPF]]


def _mp(ctx: mpmath.MPContext, a: np.ndarray) -> list[Any]:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        return [ctx.mpf(float(v)) for v in a]
    return [_mp(ctx, row) for row in a]


def exact_logits(ctx: mpmath.MPContext, x: list[list[MPF]], W: list[list[MPF]],
                 b: list[MPF]) -> list[list[MPF]]:
    return [[ctx.fsum([bi, *(ctx.fmul(w, v, exact=True) for w, v in zip(Wi, xb))])
             for Wi, bi in zip(W, b)] for xb in x]


def fused_ref(x: np.ndarray, W: np.ndarray, b: np.ndarray, spec: LossSpec, prec: int) -> FusedRef:
    ctx = context(prec)
    xm, Wm, bm = _mp(ctx, x), _mp(ctx, W), _mp(ctx, b)
    classes, m = np.shape(W)
    z = exact_logits(ctx, xm, Wm, bm)
    zeta = [[ctx.fsum(abs(w * v) for w, v in zip(Wi, xb)) + abs(bi) for Wi, bi in zip(Wm, bm)]
            for xb in xm]
    rows = [row_ref_mp(ctx, zb) for zb in z]
    ref = LossRef(ctx, rows, spec, classes)
    delta = [ref.grad(i) for i in range(len(rows))]
    B = len(rows)
    dW = [[ctx.fsum(delta[bi][i] * xm[bi][j] for bi in range(B)) for j in range(m)]
          for i in range(classes)]
    db = [ctx.fsum(delta[bi][i] for bi in range(B)) for i in range(classes)]
    dx = [[ctx.fsum(delta[bi][i] * Wm[i][j] for i in range(classes)) for j in range(m)]
          for bi in range(B)]
    return FusedRef(ref, z, zeta, xm, Wm, delta, dW, db, dx)


def _logit_errors(m: Model, f: FusedRef, final_u: float) -> list[list[MPF]]:
    """|ẑ - z| per logit: m products and m additions (any order, FMA or not), then the rounding
    to the dtype at the accurate level."""
    ctx = f.loss.ctx
    inner = len(f.x[0]) if f.x else 0
    E = _expm1(ctx, K * m.dtype.u * (inner + 1))
    return [[E * zt + final_u * abs(zv) * (1 + E) for zt, zv in zip(zr, zvr)]
            for zr, zvr in zip(f.zeta, f.z)]


def fused_tols(model: Model, f: FusedRef) -> tuple[list[MPF], list[list[MPF]], list[list[MPF]],
                                                   list[MPF]]:
    """Budgets of (loss, dx, dW, db)."""
    m, final_u = _models(model)
    ref, ctx = f.loss, f.loss.ctx
    e = _logit_errors(m, f, final_u)
    B, classes = len(ref.rows), ref.classes
    inner = len(f.x[0]) if f.x else len(f.W[0])
    rows_tol = [ctx.zero if t is None or p is None else _row_loss_tol(m, r, t, p, ref.eps, e[i])
                for i, (r, t, p) in enumerate(zip(ref.rows, ref.t, ref.p))]
    loss = _reduce(m, ref, rows_tol, final_u)
    tdelta = []
    for i, (r, t, p) in enumerate(zip(ref.rows, ref.t, ref.p)):
        if t is None or p is None:
            tdelta.append([ctx.zero] * classes)
            continue
        raw = _grad_tol(m, r, t, p, ref.eps, e[i])
        tdelta.append(_scaled(m, ref, raw, f.delta[i], final_u))
    u = m.dtype.u
    EB, EB1, EK = (_expm1(ctx, K * u * B), _expm1(ctx, K * u * (B + 1)),
                   _expm1(ctx, K * u * (classes + 1)))
    dW = [[ctx.fsum(tdelta[b][i] * abs(f.x[b][j]) for b in range(B)) * (1 + EB1)
           + EB1 * ctx.fsum(abs(f.delta[b][i] * f.x[b][j]) for b in range(B))
           + final_u * abs(f.dW[i][j]) + B * m.phi0 for j in range(inner)] for i in range(classes)]
    db = [ctx.fsum(tdelta[b][i] for b in range(B)) * (1 + EB)
          + EB * ctx.fsum(abs(f.delta[b][i]) for b in range(B)) + final_u * abs(f.db[i])
          + B * m.phi0 for i in range(classes)]
    dx = [[ctx.fsum(tdelta[b][i] * abs(f.W[i][j]) for i in range(classes)) * (1 + EK)
           + EK * ctx.fsum(abs(f.delta[b][i] * f.W[i][j]) for i in range(classes))
           + final_u * abs(f.dx[b][j]) + classes * m.phi0 for j in range(inner)] for b in range(B)]
    return loss, dx, dW, db


def fused_loss_fn(ctx: mpmath.MPContext, spec: LossSpec, classes: int, B: int,
                  inner: int) -> Any:
    """The exact loss as a function of the flat parameters (x, W, b), for finite differences."""

    def f(params: list[MPF]) -> MPF:
        hi = params[0].context
        x = [params[b * inner:(b + 1) * inner] for b in range(B)]
        off = B * inner
        W = [params[off + i * inner: off + (i + 1) * inner] for i in range(classes)]
        bias = params[off + classes * inner:]
        z = exact_logits(hi, x, W, bias)
        ref = LossRef(hi, [row_ref_mp(hi, zb) for zb in z], spec, classes)
        return hi.fsum(ref.loss())

    return f
