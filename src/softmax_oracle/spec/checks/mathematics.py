"""Statements about the mathematics itself, checked by the oracle alone (the target is not
involved): the Jacobian of softmax, the dense-layer formulas, and the seed audit, each statement
compared with numerical differentiation of the truth in mpmath."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from softmax_oracle.oracle.compare import Refuted
from softmax_oracle.oracle.exact import MPF, context, mp_vector, rows_of
from softmax_oracle.oracle.reference import dense_ref
from softmax_oracle.spec.checks.common import Check, Example, ce_of, fd_gradient, row_of_mp
from softmax_oracle.targets.call import Env

MATH_PREC = 200


def _math_close(what: str, got: Sequence[MPF], want: Sequence[MPF], err: Sequence[MPF]) -> float:
    """Mathematical identity check: |got - want| <= 2**-80 (|want| + 1) + FD error estimate.
    Any formula error is O(1); numerical differentiation here is good to ~2**-400."""
    worst = 0.0
    for j, (g_, w, e) in enumerate(zip(got, want, err)):
        tol = (abs(w) + 1) * w.context.ldexp(1, -80) + 4 * e
        d = abs(g_ - w)
        if d > tol:
            raise Refuted(f"{what}[{j}]: the statement gives {float(g_):.6g}, the derivative "
                          f"(numerical differentiation in mpmath) is {float(w):.6g}",
                          float(d / tol))
        worst = max(worst, float(d / tol))
    return worst


def _softmax_mp(zs: Sequence[MPF]) -> Sequence[MPF]:
    return row_of_mp(zs).g


def check_math_jacobian(env: Env, ex: Example) -> float:
    ctx = context(MATH_PREC)
    worst = 0.0
    for zrow in rows_of(ex["z"], ex["axis"]):
        zs = mp_vector(ctx, zrow)
        a = _softmax_mp(zs)
        for i in range(len(zs)):
            fd, err = fd_gradient(ctx, lambda v, i=i: _softmax_mp(v)[i], zs)
            formula = [a[i] * ((1 if i == j else 0) - a[j]) for j in range(len(zs))]
            worst = max(worst, _math_close(f"z = {zrow.tolist()}: J[{i}]", formula, fd, err))
    return worst


def check_seed(kind: str) -> Check:
    """The seed audit: each statement compared with numerical differentiation of the truth."""

    def check(env: Env, ex: Example) -> float:
        ctx = context(MATH_PREC)
        worst = 0.0
        ns: Sequence[MPF]
        for zrow, nrow in zip(rows_of(ex["z"], ex["axis"]), rows_of(ex["n"], ex["axis"])):
            zs, ns = mp_vector(ctx, zrow), mp_vector(ctx, nrow)
            a = _softmax_mp(zs)
            where = f"z = {zrow.tolist()}, n = {nrow.tolist()}"
            if kind == "2_1_diagonal":
                for i in range(len(zs)):
                    fd, err = fd_gradient(ctx, lambda v, i=i: _softmax_mp(v)[i], zs)
                    worst = max(worst, _math_close(f"{where}: da_{i}/dz_{i}", [a[i] * (1 - a[i])],
                                                   [fd[i]], [err[i]]))
            elif kind == "2_1_chain":
                v = [ctx.one] * len(zs)  # a shift direction: softmax(z + t 1) = softmax(z)
                true = row_of_mp(zs).vjp(v)
                worst = max(worst, _math_close(f"{where}, v = 1: v^T da/dz",
                                               [vi * ai * (1 - ai) for vi, ai in zip(v, a)],
                                               true, [ctx.zero] * len(zs)))
            elif kind == "2_2_dC_da":
                # C(a) = -sum n_j log a_j with a treated as the variable
                def cost(av: list[MPF], ns: Sequence[MPF] = ns) -> MPF:
                    hi = av[0].context
                    return -hi.fsum(nj * hi.log(aj) for nj, aj in zip(ns, av) if nj != 0)

                fd, err = fd_gradient(ctx, cost, a)
                worst = max(worst, _math_close(f"{where}: dC/da",
                                               [ai - ni for ai, ni in zip(a, ns)], fd, err))
            elif kind in ("2_2_normalised", "2_2_unnormalised"):
                if kind == "2_2_normalised":
                    s = ctx.fsum(ns)
                    if s == 0:
                        continue
                    ns = [v / s for v in ns]  # exactly sum(n) = 1 (the precondition)
                else:
                    ns = [v * 2 for v in ns]  # targets that do not sum to one
                fd, err = fd_gradient(ctx, ce_of(ns), zs)
                worst = max(worst, _math_close(f"{where}: dC/dz",
                                               [ai - ni for ai, ni in zip(a, ns)], fd, err))
        return worst

    return check


#: Seed 2.3, dC/dW^(L) = (a - n) a(1 - a) w^(L-1), has two errors: the factor a(1 - a), and the
#: hidden layer's weight w^(L-1) where its activation a^(L-1) belongs. Each is also stated alone
#: (the other part corrected), so that each is refuted for its own error.
SEED_2_3 = ("both", "factor_only", "weight_only")


def check_seed_weights(kind: str) -> Check:
    """Seed 2.3 on a one-unit hidden layer h = a^(L-1) = sigmoid(w1 x + b1) (w1 = w^(L-1))
    feeding z = W2 h: the statement ``kind`` (one of SEED_2_3) against numerical
    differentiation of C(W2). The correct gradient is (a - n) h (targets that sum to one)."""
    if kind not in SEED_2_3:
        raise ValueError(f"kind={kind!r}: use one of {', '.join(SEED_2_3)}")

    def check(env: Env, ex: Example) -> float:
        ctx = context(MATH_PREC)
        x, w1, b1 = (ctx.mpf(ex[k]) for k in ("x", "w1", "b1"))
        W2 = [ctx.mpf(v) for v in ex["W2"]]
        ns = [ctx.mpf(v) for v in ex["n"]]
        h = 1 / (1 + ctx.exp(-(w1 * x + b1)))

        def loss(W: list[MPF]) -> MPF:
            # C = S_n LSE(z) - <n, z>, z = W h, in the differentiation's precision (the
            # oracle's row reference, with its certified extras, costs four times as much)
            hi = W[0].context
            z = [wi * h for wi in W]
            m = max(z)
            lse = m + hi.log(hi.fsum(hi.exp(zi - m) for zi in z))
            return hi.fsum(hi.mpf(ni) * (lse - zi) for ni, zi in zip(ns, z) if ni != 0)

        fd, err = fd_gradient(ctx, loss, W2)
        a = _softmax_mp([wi * h for wi in W2])
        factor = [ai * (1 - ai) if kind != "weight_only" else ctx.one for ai in a]
        dz_dw = h if kind == "factor_only" else w1
        seed = [(ai - ni) * fi * dz_dw for ai, ni, fi in zip(a, ns, factor)]
        return _math_close(f"x = {ex['x']}, w1 = {ex['w1']}, b1 = {ex['b1']}, W2 = {ex['W2']}, "
                           f"n = {ex['n']}: dC/dW2", seed, fd, err)

    return check


def check_sigmoid_mse(env: Env, ex: Example) -> float:
    ctx = context(MATH_PREC)
    x, w1, b1 = (ctx.mpf(ex[k]) for k in ("x", "w1", "b1"))
    W2 = [ctx.mpf(v) for v in ex["W2"]]
    ys = [ctx.mpf(v) for v in ex["n"]]
    h = 1 / (1 + ctx.exp(-(w1 * x + b1)))

    def sig(t: MPF) -> MPF:
        return 1 / (1 + t.context.exp(-t))

    def loss(W: list[MPF]) -> MPF:
        return W[0].context.fsum((sig(wi * h) - yi) ** 2 for wi, yi in zip(W, ys))

    fd, err = fd_gradient(ctx, loss, W2)
    a = [sig(wi * h) for wi in W2]
    chain = [2 * (ai - yi) * ai * (1 - ai) * h for ai, yi in zip(a, ys)]
    return _math_close(f"x = {ex['x']}, w1 = {ex['w1']}, W2 = {ex['W2']}, y = {ex['n']}: dC/dW2",
                       chain, fd, err)


def check_dense_fd(env: Env, ex: Example) -> float:
    ctx = context(MATH_PREC)
    W, b, x, n = (np.asarray(ex[k], dtype=np.float64) for k in ("W", "b", "x", "n"))
    ref = dense_ref(W, b, x, n, MATH_PREC)
    k, m = W.shape

    def loss(params: list[MPF]) -> MPF:
        hi = params[0].context
        Wp = [params[i * m:(i + 1) * m] for i in range(k)]
        bp = params[k * m:k * m + k]
        xp = params[k * m + k:]
        total = hi.zero
        for bi in range(x.shape[0]):
            xb = xp[bi * m:(bi + 1) * m]
            zb = [hi.fsum(w * v for w, v in zip(Wp[i], xb)) + bp[i] for i in range(k)]
            total += row_of_mp(zb).cross_entropy([hi.mpf(float(v)) for v in n[bi]])
        return total

    params = mp_vector(ctx, np.concatenate([W.ravel(), b, x.ravel()]))
    fd, err = fd_gradient(ctx, loss, params)
    formula = ([v for row in ref.dW for v in row] + list(ref.db)
               + [v for row in ref.dx for v in row])
    return _math_close("d(sum of C)/d(W, b, x)", formula, fd, err)
