"""The checks of softmax and its vector-Jacobian product."""

from __future__ import annotations

import itertools

import numpy as np

from softmax_oracle.oracle.compare import Refuted, assess, index_labeler
from softmax_oracle.oracle.exact import context, rows_of
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
        worst = max(worst, at_most(abs(s - 1), r.ctx.zero, env.stable.softmax_sum(r),
                                   f"row {i}: |sum - 1|", "<="))
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
        tol = env.stable.softmax(r)
        order = np.argsort(zr[i], kind="stable")
        for p, q in itertools.pairwise(order):
            if zr[i][p] < zr[i][q]:  # z_p < z_q must give a_p <= a_q (within budgets)
                worst = max(worst, at_most(r.ctx.mpf(float(out[i][p])),
                                           r.ctx.mpf(float(out[i][q])), tol[p] + tol[q],
                                           f"row {i}: z[{p}] = {float(zr[i][p])!r} < z[{q}] = "
                                           f"{float(zr[i][q])!r} but softmax", "<="))
    return worst


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
