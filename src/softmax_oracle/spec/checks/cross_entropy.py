"""The checks of cross-entropy and of its gradient with respect to the logits."""

from __future__ import annotations

import numpy as np

from softmax_oracle.oracle.compare import Refuted, assess
from softmax_oracle.oracle.exact import MPF, rows_of
from softmax_oracle.oracle.reference import row_ref
from softmax_oracle.spec.checks.common import (
    Differs,
    Example,
    at_most,
    ce_of,
    fd_gradient,
    labeler,
    mp_rows,
    per_element,
    per_row,
)
from softmax_oracle.targets.call import Env


def check_ce_ref(env: Env, ex: Example, accurate: bool = False) -> float:
    z, n, axis = ex["z"], ex["n"], ex["axis"]
    out = env.call("cross_entropy", z, n, axis=axis)
    ns = mp_rows(env, n, axis)
    model = env.accurate if accurate else env.stable
    return per_row(env, out, z, axis, lambda r, i: r.cross_entropy(ns[i], certified=True),
                   lambda r, i: model.cross_entropy(r, ns[i], certified=True),
                   "cross_entropy (accurate)" if accurate else "cross_entropy")


def check_ce_masked(env: Env, ex: Example) -> float:
    """The convention 0 log 0 = 0 where a logit is masked (z_j = -inf) and its target is 0. A row
    that is NaN there follows the other convention, 0 * (-inf) = NaN (``Differs``, once the other
    rows are judged); every other row must match the reference within the stable budget."""
    from softmax_oracle.oracle.dtypes import round_to

    z, n, axis = ex["z"], ex["n"], ex["axis"]
    out = env.call("cross_entropy", z, n, axis=axis)
    ns = mp_rows(env, n, axis)
    zero_at_mask = np.any(np.isneginf(rows_of(z, axis)) & (rows_of(n, axis) == 0), axis=-1)
    nan_rows = np.flatnonzero(np.isnan(out.reshape(-1)) & zero_at_mask)
    judged = out.reshape(-1).copy()
    rows = env.rows(z, axis)
    for k in nan_rows:  # compared as their correctly rounded values: they always pass
        judged[k] = round_to(rows[k].cross_entropy(ns[k]), env.dtype)
    ratio = per_row(env, judged.reshape(out.shape), z, axis,
                    lambda r, i: r.cross_entropy(ns[i], certified=True),
                    lambda r, i: env.stable.cross_entropy(r, ns[i], certified=True),
                    "cross_entropy")
    if nan_rows.size:
        i = int(nan_rows[0])
        exact = float(rows[i].cross_entropy(ns[i]))
        raise Differs(f"{labeler(z, axis, reduce=True)(i)} = nan, but 0 log 0 = 0 gives "
                      f"{exact!r}: the target evaluates the zero target at a masked logit as "
                      f"0 * (-inf) = NaN ({nan_rows.size} of {int(zero_at_mask.sum())} rows with "
                      f"such an entry)")
    return ratio


def check_ce_lse(env: Env, ex: Example) -> float:
    z, n, axis = ex["z"], ex["n"], ex["axis"]
    ce = env.call("cross_entropy", z, n, axis=axis).reshape(-1)
    lse = env.call("logsumexp", z, axis=axis).reshape(-1)
    ns, zr = mp_rows(env, n, axis), rows_of(z, axis)
    worst = 0.0
    for i, r in enumerate(env.rows(z, axis)):
        ctx = r.ctx
        Sn = ctx.fsum(ns[i])
        nz = ctx.fsum(nj * ctx.mpf(float(zj)) for nj, zj in zip(ns[i], zr[i]) if nj != 0)
        c, y = ctx.mpf(float(ce[i])), ctx.mpf(float(lse[i]))
        rhs = Sn * y - nz if Sn != 0 else -nz
        if not (ctx.isfinite(c) and ctx.isfinite(rhs)):
            raise Refuted(f"row {i}: cross_entropy = {float(c)!r}, S_n LSE - <n, z> = "
                          f"{float(rhs)!r}")
        tol = env.stable.cross_entropy(r, ns[i]) + abs(Sn) * env.stable.logsumexp(r)
        worst = max(worst, at_most(abs(c - rhs), ctx.zero, tol,
                                   f"row {i}: |C - (S_n LSE(z) - <n, z>)|", "<="))
    return worst


def check_ce_gibbs(env: Env, ex: Example) -> float:
    z, n, axis = ex["z"], ex["n"], ex["axis"]
    ce = env.call("cross_entropy", z, n, axis=axis).reshape(-1)
    ns = mp_rows(env, n, axis)
    worst = 0.0
    for i, r in enumerate(env.rows(z, axis)):
        ctx = r.ctx
        Sn = ctx.fsum(ns[i])
        if Sn == 0:
            continue
        H = -ctx.fsum(nj * ctx.log(nj) for nj in ns[i] if nj != 0)
        bound = H + Sn * ctx.log(Sn)  # log-sum inequality; = H(n) when sum(n) = 1
        c = ctx.mpf(float(ce[i]))
        if ctx.isnan(c):
            raise Refuted(f"row {i}: cross_entropy is NaN")
        worst = max(worst, at_most(bound, c, env.stable.cross_entropy(r, ns[i]),
                                   f"row {i}: C >= H(n) + S_n log S_n", "<="))
    return worst


def check_ce_finite(env: Env, ex: Example) -> float:
    z, n, axis = ex["z"], ex["n"], ex["axis"]
    ce = env.call("cross_entropy", z, n, axis=axis).reshape(-1)
    ns = mp_rows(env, n, axis)
    from softmax_oracle.oracle.dtypes import round_to

    for i, r in enumerate(env.rows(z, axis)):
        exact = r.cross_entropy(ns[i])
        if np.isfinite(round_to(exact, env.dtype)) and not np.isfinite(ce[i]):
            raise Refuted(f"row {i}: cross_entropy = {float(ce[i])!r}, but the exact value "
                          f"{float(exact)!r} is finite in {env.dtype}")
    return 0.0


# =============================================================================== gradient


def check_grad_ref(env: Env, ex: Example) -> float:
    z, n, axis = ex["z"], ex["n"], ex["axis"]
    out = env.call("cross_entropy_grad", z, n, axis=axis)
    ns = mp_rows(env, n, axis)
    return per_element(env, out, z, axis, lambda r, i: r.grad(ns[i]),
                       lambda r, i: env.stable.grad(r, ns[i]), "cross_entropy_grad")


def check_grad_sum(env: Env, ex: Example) -> float:
    z, n, axis = ex["z"], ex["n"], ex["axis"]
    out = rows_of(env.call("cross_entropy_grad", z, n, axis=axis), axis)
    ns = mp_rows(env, n, axis)
    worst = 0.0
    for i, r in enumerate(env.rows(z, axis)):
        s = r.ctx.fsum(r.ctx.mpf(float(t)) for t in out[i])
        if not r.ctx.isfinite(s):
            raise Refuted(f"row {i}: the gradient sums to {float(s)!r}")
        worst = max(worst, at_most(abs(s), r.ctx.zero, r.ctx.fsum(env.stable.grad(r, ns[i])),
                                   f"row {i}: |sum_j dC/dz_j|", "<="))
    return worst


def check_grad_fd(env: Env, ex: Example) -> float:
    z, n, axis = ex["z"], ex["n"], ex["axis"]
    out = rows_of(env.call("cross_entropy_grad", z, n, axis=axis), axis)
    ns = mp_rows(env, n, axis)
    refs: list[MPF] = []
    tols: list[MPF] = []
    for i, r in enumerate(env.rows(z, axis)):
        fd, err = fd_gradient(r.ctx, ce_of(ns[i]), [v for v in r.x])
        refs.extend(fd)
        tols.extend(t + e for t, e in zip(env.stable.grad(r, ns[i]), err))
    a = assess(out, refs, tols, env.dtype, labeler(z, axis), "cross_entropy_grad vs finite "
               "differences")
    a.raise_if_bad()
    return a.ratio


def check_grad_own_loss(env: Env, ex: Example) -> float:
    """(Ĉ(z + Δ) - Ĉ(z - Δ)) - <ĝ, 2Δ> is bounded by the two loss budgets, the exact second-order
    remainder of the true loss, and the gradient budget along 2Δ (triangle inequality)."""
    z, n, axis, seed = ex["z"], ex["n"], ex["axis"], ex.get("dir_seed", 0)
    dt = env.dtype
    rng = np.random.default_rng(seed)
    z64 = z.astype(np.float64)
    step = 2.0 ** -(dt.t // 3) * np.maximum(1.0, np.abs(np.where(np.isfinite(z64), z64, 0)))
    d = rng.choice([-1.0, 1.0], size=z.shape) * step * np.isfinite(z64)
    zp = (np.where(np.isfinite(z64), z64 + d, z64)).astype(z.dtype)
    zm = (np.where(np.isfinite(z64), z64 - d, z64)).astype(z.dtype)
    if not (np.all(np.isfinite(zp.astype(np.float64)) | np.isneginf(z64))
            and np.all(np.isfinite(zm.astype(np.float64)) | np.isneginf(z64))):
        return 0.0  # the perturbed logits overflow the dtype: nothing to compare
    grad = rows_of(env.call("cross_entropy_grad", z, n, axis=axis), axis)
    cp = env.call("cross_entropy", zp, n, axis=axis).reshape(-1)
    cm = env.call("cross_entropy", zm, n, axis=axis).reshape(-1)
    ns = mp_rows(env, n, axis)
    zpr, zmr = rows_of(zp, axis), rows_of(zm, axis)
    worst = 0.0
    for i, r in enumerate(env.rows(z, axis)):
        ctx = r.ctx
        rp, rm = row_ref(zpr[i], env.prec), row_ref(zmr[i], env.prec)
        D = [ctx.mpf(float(p)) - ctx.mpf(float(m)) if np.isfinite(p) else ctx.zero
             for p, m in zip(zpr[i], zmr[i])]
        if not (np.isfinite(cp[i]) and np.isfinite(cm[i]) and np.all(np.isfinite(grad[i]))):
            raise Refuted(f"row {i}: cross_entropy or its gradient is not finite "
                          f"(C(z+Δ) = {float(cp[i])!r}, C(z-Δ) = {float(cm[i])!r})")
        # (Ĉ(z+Δ) - Ĉ(z-Δ) - <ĝ, D>) - (C(z+Δ) - C(z-Δ) - <g, D>)
        #   = (Ĉ(z+Δ) - C(z+Δ)) - (Ĉ(z-Δ) - C(z-Δ)) - <ĝ - g, D>
        computed = (ctx.mpf(float(cp[i])) - ctx.mpf(float(cm[i]))
                    - ctx.fsum(ctx.mpf(float(gj)) * dj for gj, dj in zip(grad[i], D)))
        exact = (rp.cross_entropy(ns[i]) - rm.cross_entropy(ns[i])
                 - ctx.fsum(gj * dj for gj, dj in zip(r.grad(ns[i]), D)))
        tol = (env.stable.cross_entropy(rp, ns[i]) + env.stable.cross_entropy(rm, ns[i])
               + ctx.fsum(t * abs(dj) for t, dj in zip(env.stable.grad(r, ns[i]), D)))
        worst = max(worst, at_most(abs(computed - exact), ctx.zero, tol,
                                   f"row {i}: C(z+Δ) - C(z-Δ) - <grad, 2Δ> differs from its exact "
                                   f"value (the gradient is not the derivative of this "
                                   f"cross_entropy)", "<="))
    return worst
