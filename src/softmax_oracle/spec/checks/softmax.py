"""The checks of softmax and its vector-Jacobian product."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from softmax_oracle.oracle.compare import Refuted, assess, index_labeler
from softmax_oracle.oracle.exact import MPF, context, rows_of
from softmax_oracle.oracle.reference import RowRef
from softmax_oracle.spec.checks.common import Example, at_most, labeler, mp_rows, per_element
from softmax_oracle.targets.call import Env


def check_softmax_unit(env: Env, ex: Example) -> float:
    z, axis = ex["z"], ex["axis"]
    out = env.call("softmax", z, axis=axis)
    finite_rows = np.any(np.isfinite(np.moveaxis(z, axis, -1)), axis=-1, keepdims=True)
    vals = np.moveaxis(out, axis, -1)
    bad = (np.isnan(vals) | (vals < 0) | (vals > 1)) & finite_rows
    if np.any(bad):
        pos = int(np.flatnonzero(bad)[0])
        label = index_labeler(z.shape, axis)
        raise Refuted(f"{label(pos)} = {float(vals.reshape(-1)[pos])!r}, outside [0, 1]"
                      f"\n  Mismatched elements: {int(bad.sum())} / {bad.size}")
    return 0.0


def check_softmax_sum(env: Env, ex: Example) -> float:
    z, axis = ex["z"], ex["axis"]
    out = rows_of(env.call("softmax", z, axis=axis), axis)
    worst = 0.0
    for i, r in enumerate(env.rows(z, axis)):
        if r.all_masked:
            continue
        s = r.ctx.fsum(r.ctx.mpf(float(v)) for v in out[i])
        if not r.ctx.isfinite(s):
            raise Refuted(f"row {i}: softmax sums to {float(s)!r}")
        tol = env.stable.softmax_sum(r)
        worst = max(worst, at_most(abs(s - 1), r.ctx.zero, tol, f"row {i}: |sum - 1|", "<="))
        env.bound(1, tol)  # a budget of 1 or more passes a row of zeros
    return worst


def check_softmax_ref(env: Env, ex: Example) -> float:
    z, axis = ex["z"], ex["axis"]
    out = env.call("softmax", z, axis=axis)
    return per_element(env, out, z, axis, lambda r, i: r.g,
                       lambda r, i: env.stable.softmax(r), "softmax")


def check_softmax_shift(env: Env, ex: Example) -> float:
    z, axis, c = ex["z"], ex["axis"], ex["c"]
    zc = (z.astype(np.float64) + c).astype(z.dtype)
    out = env.call("softmax", z, axis=axis)
    out_c = env.call("softmax", zc, axis=axis)
    tol = [t * 2 for r in env.rows(z, axis) for t in env.stable.softmax(r)]
    ctx = context(env.prec)
    a = assess(rows_of(out_c, axis), [ctx.mpf(float(v)) for v in rows_of(out, axis).ravel()],
               tol, env.dtype, labeler(z, axis), f"softmax(z + {float(c)!r}) vs softmax(z)")
    a.raise_if_bad()
    return a.ratio


def check_softmax_perm(env: Env, ex: Example) -> float:
    z, axis, perm = ex["z"], ex["axis"], ex["perm"]
    out = env.call("softmax", z, axis=axis)
    out_p = env.call("softmax", np.take(z, perm, axis=axis), axis=axis)
    expected = np.take(out, perm, axis=axis)
    tol = [t * 2 for r in env.rows(np.take(z, perm, axis=axis), axis)
           for t in env.stable.softmax(r)]
    ctx = context(env.prec)
    a = assess(rows_of(out_p, axis), [ctx.mpf(float(v)) for v in rows_of(expected, axis).ravel()],
               tol, env.dtype, labeler(z, axis), f"softmax(z[perm]) vs softmax(z)[perm], "
               f"perm={perm.tolist()}")
    a.raise_if_bad()
    return a.ratio


def check_softmax_order(env: Env, ex: Example) -> float:
    z, axis = ex["z"], ex["axis"]
    out = rows_of(env.call("softmax", z, axis=axis), axis)
    zr = rows_of(z, axis)
    worst = 0.0
    for i, r in enumerate(env.rows(z, axis)):
        if not r.all_masked:
            worst = max(worst, _ordered(r, zr[i], out[i], env.stable.softmax(r), f"row {i}"))
    return worst


def _ordered(r: RowRef, z: np.ndarray, a: np.ndarray, tol: Sequence[MPF], where: str) -> float:
    """z_p <= z_q must give a_p <= a_q within tol_p + tol_q, for every pair: the exact values are
    ordered (equal for ties), and each computed one lies within its budget of its exact value.

    Decided exactly: in increasing order of z, the largest a_p - tol_p over all entries up to
    and including z_q's ties must not exceed a_q + tol_q (the largest one is the only candidate
    for a violation). The returned ratio max (a_p - a_q) / (tol_p + tol_q) over all such pairs
    is estimated in float64 (steering only)."""
    n = len(z)
    if n < 2:
        return 0.0
    if np.any(np.isnan(a)):
        p = int(np.flatnonzero(np.isnan(a))[0])
        raise Refuted(f"{where}: softmax[{p}] = nan (z[{p}] = {float(z[p])!r}): a nan is ordered "
                      f"with no other probability")
    ctx = r.ctx
    t = [tol[j] for j in range(n)]
    av = [ctx.mpf(float(v)) for v in a]
    low = [av[j] - t[j] for j in range(n)]
    order = np.argsort(z, kind="stable")
    best = -1
    start = 0
    while start < n:
        stop = start + 1
        while stop < n and z[order[stop]] == z[order[start]]:
            stop += 1
        group = [int(j) for j in order[start:stop]]
        for p in group:
            if best < 0 or low[p] > low[best]:
                best = p
        for q in group:
            if low[best] > av[q] + t[q]:
                _disorder(z, a, t, best, q, where)
        start = stop
    zf = np.asarray(z, dtype=np.float64)
    af = np.asarray(a, dtype=np.float64)
    tf = np.array([float(v) for v in t])
    with np.errstate(all="ignore"):
        excess = af[:, None] - af[None, :]
        ratio = np.where(excess > 0, excess / (tf[:, None] + tf[None, :]), 0.0)
    pairs = (zf[:, None] <= zf[None, :]) & ~np.eye(n, dtype=bool)
    return min(float(np.max(np.where(pairs, np.nan_to_num(ratio, nan=0.0), 0.0))), 1.0)


def _disorder(z: np.ndarray, a: np.ndarray, t: Sequence[MPF], p: int, q: int,
              where: str) -> None:
    """Raise the violation of z_p <= z_q => a_p <= a_q (within tol_p + tol_q)."""
    budget = t[p] + t[q]
    excess = t[p].context.mpf(float(a[p])) - t[p].context.mpf(float(a[q]))
    ratio = float(excess / budget) if budget else float("inf")
    ap, aq = float(a[p]), float(a[q])
    if z[p] == z[q]:
        raise Refuted(f"{where}: z[{p}] = z[{q}] = {float(z[p])!r}, but softmax[{p}] = {ap!r} and "
                      f"softmax[{q}] = {aq!r} differ by {float(excess):.3g} (allowed "
                      f"{float(budget):.3g}): equal logits must get equal probabilities", ratio)
    raise Refuted(f"{where}: z[{p}] = {float(z[p])!r} < z[{q}] = {float(z[q])!r}, but "
                  f"softmax[{p}] = {ap!r} > softmax[{q}] = {aq!r} by {float(excess):.3g} "
                  f"(allowed {float(budget):.3g})", ratio)


def check_softmax_masked(env: Env, ex: Example) -> float:
    z, axis = ex["z"], ex["axis"]
    out = env.call("softmax", z, axis=axis)
    masked = np.isneginf(z)
    if np.any(out[masked] != 0):
        pos = np.argwhere(masked & (out != 0))[0]
        raise Refuted(f"out[{', '.join(map(str, pos))}] = {float(out[tuple(pos)])!r} for a -inf "
                      f"(masked) logit; it must be exactly 0")
    return check_softmax_ref(env, ex)


def check_softmax_finite(env: Env, ex: Example) -> float:
    z, axis = ex["z"], ex["axis"]
    out = env.call("softmax", z, axis=axis)
    if not np.all(np.isfinite(out)):
        pos = np.argwhere(~np.isfinite(out))[0]
        raise Refuted(f"out[{', '.join(map(str, pos))}] = {float(out[tuple(pos)])!r} for finite "
                      f"logits (max |z| = {np.max(np.abs(z.astype(np.float64))):.3g})")
    return 0.0


def check_vjp_ref(env: Env, ex: Example) -> float:
    z, v, axis = ex["z"], ex["v"], ex["axis"]
    out = env.call("softmax_vjp", z, v, axis=axis)
    vs = mp_rows(env, v, axis)
    return per_element(env, out, z, axis, lambda r, i: r.vjp(vs[i]),
                       lambda r, i: env.stable.vjp(r, vs[i]), "softmax_vjp")


def check_vjp_sum(env: Env, ex: Example) -> float:
    z, v, axis = ex["z"], ex["v"], ex["axis"]
    out = rows_of(env.call("softmax_vjp", z, v, axis=axis), axis)
    vs = mp_rows(env, v, axis)
    worst = 0.0
    for i, r in enumerate(env.rows(z, axis)):
        s = r.ctx.fsum(r.ctx.mpf(float(t)) for t in out[i])
        if not r.ctx.isfinite(s):
            raise Refuted(f"row {i}: softmax_vjp sums to {float(s)!r}")
        worst = max(worst, at_most(abs(s), r.ctx.zero, r.ctx.fsum(env.stable.vjp(r, vs[i])),
                                   f"row {i}: |sum of softmax_vjp|", "<="))
    return worst
