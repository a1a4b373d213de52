"""What the checks share: comparing an output with per-row references within budgets, one
bound at a time, and numerical differentiation in mpmath."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from softmax_oracle.oracle.compare import Refuted, assess, distinct, index_labeler, informs
from softmax_oracle.oracle.exact import MPF, concat, context, mp_vector, rows_of
from softmax_oracle.oracle.reference import RowRef, row_ref_mp
from softmax_oracle.spec.inputs import Example
from softmax_oracle.targets.call import Env

Check = Callable[[Env, Example], float]


class Differs(Refuted):
    """Raised by the check of a convention claim where the target follows the other legitimate
    convention (the claim's ``alternative``, e.g. 0 * (-inf) = NaN rather than 0 log 0 = 0): not
    a bug, and reported apart as "differs". A value that follows neither convention is
    ``Refuted``."""


def labeler(z: np.ndarray, axis: int, reduce: bool = False) -> Callable[[int], str]:
    """Names the positions of an output shaped like z (or, with ``reduce``, like z without the
    axis) in messages: ``out[1, 2]``."""
    if reduce:
        shape = tuple(s for i, s in enumerate(z.shape) if i != axis % z.ndim)
        return lambda pos: ("out[" + ", ".join(str(int(i)) for i in np.unravel_index(pos, shape))
                            + "]") if shape else "out"
    return index_labeler(z.shape, axis)


def mp_rows(env: Env, n: np.ndarray, axis: int) -> list[Sequence[MPF]]:
    """The rows of targets or cotangents along the axis, as exact mpf vectors."""
    ctx = context(env.prec)
    return [mp_vector(ctx, r) for r in rows_of(n, axis)]


def per_element(env: Env, out: np.ndarray, z: np.ndarray, axis: int,
                ref: Callable[[RowRef, int], Sequence[MPF]],
                tol: Callable[[RowRef, int], Sequence[MPF]], what: str) -> float:
    """Compare an output shaped like z against per-row references and tolerances. They stay
    lazy (Certified vectors): the float enclosures decide what they can, and mpmath evaluates
    only the elements they cannot."""
    rows = env.rows(z, axis)
    refs = concat([ref(r, i) for i, r in enumerate(rows)])
    tols = concat([tol(r, i) for i, r in enumerate(rows)])
    a = assess(rows_of(out, axis), refs, tols, env.dtype, labeler(z, axis), what)
    env.max_ulps = max(env.max_ulps, a.max_ulps)
    a.raise_if_bad()
    env.note(informs(refs, tols))
    return a.ratio


def per_row(env: Env, out: np.ndarray, z: np.ndarray, axis: int,
            ref: Callable[[RowRef, int], Any], tol: Callable[[RowRef, int], Any],
            what: str) -> float:
    """Compare a reduced output (axis removed) against one reference per row."""
    rows = env.rows(z, axis)
    refs = concat([ref(r, i) for i, r in enumerate(rows)])
    tols = concat([tol(r, i) for i, r in enumerate(rows)])
    a = assess(out.reshape(-1), refs, tols, env.dtype, labeler(z, axis, reduce=True), what)
    env.max_ulps = max(env.max_ulps, a.max_ulps)
    a.raise_if_bad()
    env.note(informs(refs, tols))
    return a.ratio


def at_most(value: MPF, limit: MPF, tol: MPF, where: str, relation: str) -> float:
    """value <= limit + tol; returns the excess ratio."""
    excess = value - limit
    if excess <= 0:
        return 0.0
    if tol == 0 or excess > tol:
        by, allowed = distinct(excess, tol, 3)
        raise Refuted(f"{where}: {float(value)!r} {relation} {float(limit)!r} fails by "
                      f"{by} (allowed {allowed})",
                      float(excess / tol) if tol else float("inf"))
    return float(excess / tol)


# =============================================================================== derivatives


def fd_gradient(ctx: Any, f: Callable[..., MPF],
                x: Sequence[MPF]) -> tuple[list[MPF], list[MPF]]:
    """Central differences at 3x the working precision, with step 2**-prec: truncation and
    rounding errors are both O(2**(-2 prec)). Returns (derivatives, error estimates), the
    estimate being the change when the step is doubled."""
    prec = ctx.prec
    hi = context(3 * prec)
    xs = [hi.mpf(v) for v in x]
    out, err = [], []
    for i in range(len(xs)):
        ds = []
        for h in (hi.ldexp(1, -prec), hi.ldexp(1, 1 - prec)):
            xp, xm = list(xs), list(xs)
            xp[i] += h
            xm[i] -= h
            ds.append((f(xp) - f(xm)) / (2 * h))
        out.append(ctx.mpf(ds[0]))
        err.append(ctx.mpf(abs(ds[1] - ds[0])))
    return out, err


def ce_of(ns: Sequence[MPF]) -> Callable[[list[MPF]], MPF]:
    """The exact cross-entropy as a function of the logits, for fixed targets."""

    def f(zs: list[MPF]) -> MPF:
        hi = zs[0].context
        return row_of_mp(zs).cross_entropy([hi.mpf(v) for v in ns])

    return f


def row_of_mp(zs: Sequence[MPF]) -> RowRef:
    """The exact reference of a row that is already a list of finite mpf values."""
    return row_ref_mp(zs[0].context, zs)
