"""The checks of log-sum-exp."""

from __future__ import annotations

import numpy as np

from softmax_oracle.oracle.compare import Refuted
from softmax_oracle.oracle.exact import rows_of
from softmax_oracle.oracle.reference import row_ref
from softmax_oracle.spec.checks.common import Example, at_most, per_row
from softmax_oracle.targets.call import Env


def check_lse_ref(env: Env, ex: Example) -> float:
    z, axis = ex["z"], ex["axis"]
    out = env.call("logsumexp", z, axis=axis)
    return per_row(env, out, z, axis, lambda r, i: r.logsumexp(certified=True),
                   lambda r, i: env.stable.logsumexp(r, certified=True), "logsumexp")


def check_lse_accurate(env: Env, ex: Example) -> float:
    z, axis = ex["z"], ex["axis"]
    out = env.call("logsumexp", z, axis=axis)
    return per_row(env, out, z, axis, lambda r, i: r.logsumexp(certified=True),
                   lambda r, i: env.accurate.logsumexp(r, certified=True),
                   "logsumexp (accurate)")


def check_lse_bounds(env: Env, ex: Example) -> float:
    z, axis = ex["z"], ex["axis"]
    out = env.call("logsumexp", z, axis=axis).reshape(-1)
    worst = 0.0
    for i, r in enumerate(env.rows(z, axis)):
        y = r.ctx.mpf(float(out[i]))
        if not r.ctx.isfinite(y):
            raise Refuted(f"out[{i}] = {float(out[i])!r} for a row with max z = {float(r.a)!r}")
        tol = env.stable.logsumexp(r)
        worst = max(worst, at_most(r.a, y, tol, f"row {i}: max z <= LSE", "<="),
                    at_most(y, r.a + r.log_n, tol, f"row {i}: LSE <= max z + log n", "<="))
    return worst


def check_lse_shift(env: Env, ex: Example) -> float:
    z, axis, c = ex["z"], ex["axis"], ex["c"]
    zc = (z.astype(np.float64) + c).astype(z.dtype)
    out = env.call("logsumexp", z, axis=axis).reshape(-1)
    out_c = env.call("logsumexp", zc, axis=axis).reshape(-1)
    rows, rows_c = env.rows(z, axis), [row_ref(r, env.prec) for r in rows_of(zc, axis)]
    worst = 0.0
    for i, (r, rc) in enumerate(zip(rows, rows_c)):
        ctx = r.ctx
        lhs, rhs = ctx.mpf(float(out_c[i])) - ctx.mpf(c), ctx.mpf(float(out[i]))
        if not (ctx.isfinite(lhs) and ctx.isfinite(rhs)):
            raise Refuted(f"row {i}: LSE(z) = {float(out[i])!r}, LSE(z + c) = "
                          f"{float(out_c[i])!r} with c = {float(c)!r}")
        worst = max(worst, at_most(abs(lhs - rhs), ctx.zero,
                                   env.stable.logsumexp(r) + env.stable.logsumexp(rc),
                                   f"row {i}: |LSE(z + c) - c - LSE(z)| with c = {float(c)!r}",
                                   "<="))
    return worst


def check_lse_masked(env: Env, ex: Example) -> float:
    z, axis = ex["z"], ex["axis"]
    out = env.call("logsumexp", z, axis=axis).reshape(-1)
    for i, r in enumerate(env.rows(z, axis)):
        if r.all_masked and out[i] != -np.inf:
            raise Refuted(f"row {i} is all -inf, so LSE must be -inf; got {float(out[i])!r}")
    return check_lse_ref(env, ex)


def check_lse_pos_inf(env: Env, ex: Example) -> float:
    z, axis = ex["z"], ex["axis"]
    out = env.call("logsumexp", z, axis=axis).reshape(-1)
    rows = rows_of(z, axis)
    for i in range(rows.shape[0]):
        if out[i] != np.inf:
            count = int(np.sum(np.isposinf(rows[i].astype(np.float64))))
            raise Refuted(f"row {i} holds {count} +inf logit{'s' * (count != 1)}, so LSE is +inf;"
                          f" got {float(out[i])!r}")
    return 0.0


def check_lse_finite(env: Env, ex: Example) -> float:
    z, axis = ex["z"], ex["axis"]
    out = env.call("logsumexp", z, axis=axis)
    if not np.all(np.isfinite(out)):
        bad = np.argwhere(~np.isfinite(out.reshape(-1)))[0][0]
        raise Refuted(f"out (row {bad}) = {float(out.reshape(-1)[bad])!r} for finite logits "
                      f"(max |z| = {np.max(np.abs(z.astype(np.float64))):.3g})")
    return 0.0
