"""The checks of log-softmax."""

from __future__ import annotations

import numpy as np

from softmax_oracle.oracle.compare import Refuted
from softmax_oracle.oracle.exact import rows_of
from softmax_oracle.spec.checks.common import Example, at_most, per_element
from softmax_oracle.targets.call import Env


def check_ls_ref(env: Env, ex: Example) -> float:
    z, axis = ex["z"], ex["axis"]
    out = env.call("log_softmax", z, axis=axis)
    return per_element(env, out, z, axis, lambda r, i: r.l,
                       lambda r, i: env.stable.log_softmax(r), "log_softmax")


def check_ls_accurate(env: Env, ex: Example) -> float:
    z, axis = ex["z"], ex["axis"]
    out = env.call("log_softmax", z, axis=axis)
    return per_element(env, out, z, axis, lambda r, i: r.l,
                       lambda r, i: env.accurate.log_softmax(r), "log_softmax (accurate)")


def check_ls_nonpositive(env: Env, ex: Example) -> float:
    z, axis = ex["z"], ex["axis"]
    out = rows_of(env.call("log_softmax", z, axis=axis), axis)
    worst = 0.0
    for i, r in enumerate(env.rows(z, axis)):
        tol = env.stable.log_softmax(r)
        for j, v in enumerate(out[i]):
            if np.isnan(v):
                raise Refuted(f"row {i}: log_softmax[{j}] is NaN")
            worst = max(worst, at_most(r.ctx.mpf(float(v)), r.ctx.zero, tol[j],
                                       f"row {i}: log_softmax[{j}] <= 0", "<="))
    return worst


def check_ls_finite(env: Env, ex: Example) -> float:
    z, axis = ex["z"], ex["axis"]
    out = rows_of(env.call("log_softmax", z, axis=axis), axis)
    from softmax_oracle.oracle.dtypes import round_to

    for i, r in enumerate(env.rows(z, axis)):
        for j, lj in enumerate(r.l):
            if r.x[j] is None:
                continue
            if np.isfinite(round_to(lj, env.dtype)) and not np.isfinite(out[i][j]):
                raise Refuted(f"row {i}: log_softmax[{j}] = {float(out[i][j])!r}, but the exact "
                              f"value "
                              f"{float(lj)!r} is finite in {env.dtype} (log of an underflowed "
                              f"probability?)")
    return 0.0


def check_ls_lse(env: Env, ex: Example) -> float:
    z, axis = ex["z"], ex["axis"]
    out = rows_of(env.call("log_softmax", z, axis=axis), axis)
    lse = env.call("logsumexp", z, axis=axis).reshape(-1)
    zr = rows_of(z, axis)
    worst = 0.0
    for i, r in enumerate(env.rows(z, axis)):
        ctx = r.ctx
        tl, ty = env.stable.log_softmax(r), env.stable.logsumexp(r)
        y = ctx.mpf(float(lse[i]))
        for j in range(r.n):
            if r.x[j] is None:
                continue
            lhs, rhs = ctx.mpf(float(out[i][j])), ctx.mpf(float(zr[i][j])) - y
            if not (ctx.isfinite(lhs) and ctx.isfinite(rhs)):
                if lhs == rhs:
                    continue
                raise Refuted(f"row {i}, entry {j}: log_softmax = {float(lhs)!r}, "
                              f"z - logsumexp = {float(rhs)!r}")
            worst = max(worst, at_most(abs(lhs - rhs), ctx.zero, tl[j] + ty,
                                       f"row {i}, entry {j}: |log_softmax - (z - LSE)|", "<="))
    return worst


def check_ls_exp(env: Env, ex: Example) -> float:
    z, axis = ex["z"], ex["axis"]
    ls = rows_of(env.call("log_softmax", z, axis=axis), axis)
    sm = rows_of(env.call("softmax", z, axis=axis), axis)
    worst = 0.0
    for i, r in enumerate(env.rows(z, axis)):
        ctx = r.ctx
        tl, tg = env.stable.log_softmax(r), env.stable.softmax(r)
        for j in range(r.n):
            if r.x[j] is None:
                continue
            e = ctx.exp(ctx.mpf(float(ls[i][j]))) if np.isfinite(ls[i][j]) else ctx.zero
            s = ctx.mpf(float(sm[i][j]))
            if np.isnan(ls[i][j]) or np.isnan(sm[i][j]):
                raise Refuted(f"row {i}, entry {j}: log_softmax = {float(ls[i][j])!r}, "
                              f"softmax = {float(sm[i][j])!r}")
            tol = r.g[j] * ctx.expm1(tl[j]) + tg[j]
            worst = max(worst, at_most(abs(e - s), ctx.zero, tol,
                                       f"row {i}, entry {j}: |exp(log_softmax) - softmax|", "<="))
    return worst


def check_ls_masked(env: Env, ex: Example) -> float:
    z, axis = ex["z"], ex["axis"]
    out = env.call("log_softmax", z, axis=axis)
    masked = np.isneginf(z)
    if np.any(out[masked] != -np.inf):
        pos = np.argwhere(masked & (out != -np.inf))[0]
        raise Refuted(f"out[{', '.join(map(str, pos))}] = {float(out[tuple(pos)])!r} for a -inf "
                      f"(masked) logit; it must be -inf")
    return check_ls_ref(env, ex)
