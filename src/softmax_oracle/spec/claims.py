"""The specification: every claim softmax-oracle checks, in one place.

Each claim states a mathematical or numerical fact about softmax, log-softmax, log-sum-exp,
cross-entropy or their gradients, with its preconditions, its source, the protocol functions it
needs, its level, the inputs it is checked on (a Hypothesis strategy) and its check. Everything else
(pytest ids, the CLI's catalogue, the docs, the report rows) is derived from ``CLAIMS``.

A check receives an ``Env`` (the target's functions behind a safe call, the dtype, the tolerance
models, the references) and one example, and returns the ratio |error| / budget (<= 1 when the
claim holds), or raises ``Refuted`` with a message saying what, where and by how much.

Kinds:
  numerical    compares the target's outputs with the mpmath oracle within derived budgets;
  contract     the plug-in contract: no mutation, shape and dtype, axes and batches, determinism;
  mathematics  a statement about the mathematics itself, checked by the oracle alone (the target
               is not involved); the seed audit lives here, with each statement's expected verdict.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st

import softmax_oracle.spec.strategies as S
from softmax_oracle.oracle.compare import Refuted, assess, index_labeler
from softmax_oracle.oracle.dtypes import DType, get_dtype
from softmax_oracle.oracle.reference import (
    MPF,
    RowRef,
    concat,
    context,
    dense_ref,
    mp_vector,
    row_ref,
    rows_of,
)
from softmax_oracle.targets.call import Env

__all__ = ["CLAIMS", "Claim", "Inputs", "get_claim", "select"]

Example = dict[str, Any]
Check = Callable[[Env, Example], float]


@dataclass(frozen=True)
class Inputs:
    """How big examples may get (from the profile)."""

    max_size: int = 64
    dense_size: int = 8
    vocab_size: int = 0  # rows up to this long now and then, for the claims that opt in


@dataclass(frozen=True)
class Claim:
    """One statement of the specification."""

    id: str
    statement: str
    latex: str
    needs: tuple[str, ...]
    source: str
    strategy: Callable[[DType, Inputs], st.SearchStrategy[Example]] = field(repr=False)
    check: Check = field(repr=False)
    preconditions: tuple[str, ...] = ()
    level: str = "stable"  # "accurate": only run at --level accurate
    kind: str = "numerical"  # "numerical" | "contract" | "mathematics"
    expect: str = "holds"  # mathematics claims about the seed may be expected "refuted"
    correct: str = ""  # for refuted statements: the correct statement
    examples: float = 1.0  # share of the profile's max_examples

    @property
    def function(self) -> str:
        return self.id.split(".", 1)[0]


# =============================================================================== shared pieces


def _label(z: np.ndarray, axis: int, reduce: bool = False) -> Callable[[int], str]:
    if reduce:
        shape = tuple(s for i, s in enumerate(z.shape) if i != axis % z.ndim)
        return lambda pos: ("out[" + ", ".join(str(int(i)) for i in np.unravel_index(pos, shape))
                            + "]") if shape else "out"
    return index_labeler(z.shape, axis)


def _targets_rows(env: Env, n: np.ndarray, axis: int) -> list[Sequence[MPF]]:
    ctx = context(env.prec)
    return [mp_vector(ctx, r) for r in rows_of(n, axis)]


def _per_element(env: Env, out: np.ndarray, z: np.ndarray, axis: int,
                 ref: Callable[[RowRef, int], Sequence[MPF]],
                 tol: Callable[[RowRef, int], Sequence[MPF]], what: str) -> float:
    """Compare an output shaped like z against per-row references and tolerances. They stay
    lazy (Certified vectors): the float enclosures decide what they can, and mpmath evaluates
    only the elements they cannot."""
    rows = env.rows(z, axis)
    refs = concat([ref(r, i) for i, r in enumerate(rows)])
    tols = concat([tol(r, i) for i, r in enumerate(rows)])
    a = assess(rows_of(out, axis), refs, tols, env.dtype, _label(z, axis), what)
    env.max_ulps = max(env.max_ulps, a.max_ulps)
    a.raise_if_bad()
    return a.ratio


def _per_row(env: Env, out: np.ndarray, z: np.ndarray, axis: int,
             ref: Callable[[RowRef, int], Any], tol: Callable[[RowRef, int], Any],
             what: str) -> float:
    """Compare a reduced output (axis removed) against one reference per row."""
    rows = env.rows(z, axis)
    refs = concat([ref(r, i) for i, r in enumerate(rows)])
    tols = concat([tol(r, i) for i, r in enumerate(rows)])
    a = assess(out.reshape(-1), refs, tols, env.dtype, _label(z, axis, reduce=True), what)
    env.max_ulps = max(env.max_ulps, a.max_ulps)
    a.raise_if_bad()
    return a.ratio


def _bound(value: MPF, limit: MPF, tol: MPF, where: str, relation: str) -> float:
    """value <= limit + tol; returns the excess ratio."""
    excess = value - limit
    if excess <= 0:
        return 0.0
    if tol == 0 or excess > tol:
        raise Refuted(f"{where}: {float(value)!r} {relation} {float(limit)!r} fails by "
                      f"{float(excess):.3g} (allowed {float(tol):.3g})",
                      float(excess / tol) if tol else float("inf"))
    return float(excess / tol)


def _exact_rows(values: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(values) | np.isneginf(values)))


# =============================================================================== strategies


def _logits(vocab: bool = False, **kw: Any) -> Callable[[DType, Inputs],
                                                       st.SearchStrategy[Example]]:
    """Logits; with ``vocab``, vocabulary-sized rows too where the profile asks for them."""
    return lambda dt, inp: S.logits(dt, max_size=inp.max_size,
                                    vocab_size=inp.vocab_size if vocab else 0, **kw)


def _with_mask(dt: DType, inp: Inputs, full: bool = False) -> st.SearchStrategy[Example]:
    """Logits with at least one -inf entry in some row (and, if full, sometimes a whole row)."""

    def add(ex: Example) -> st.SearchStrategy[Example]:
        def apply(seed: int) -> Example:
            z = ex["z"].copy()
            moved = np.moveaxis(z, ex["axis"], -1)
            rng = np.random.default_rng(seed)
            if moved.shape[-1] == 0:
                return ex
            mask = rng.random(moved.shape) < rng.uniform(0.2, 0.8)
            if not full:
                keep = rng.integers(0, moved.shape[-1], size=moved.shape[:-1])
                np.put_along_axis(mask, keep[..., None], False, axis=-1)
            elif moved.ndim > 1 and rng.random() < 0.5:
                mask[(0,) * (moved.ndim - 1)] = True
            moved[mask] = -np.inf
            return {**ex, "z": z, "regime": (*ex.get("regime", ()), "mask")}
        return st.integers(0, 2**32 - 1).map(apply)

    return S.logits(dt, max_size=inp.max_size, masks=False).flatmap(add)


def _with_shift(dt: DType, inp: Inputs) -> st.SearchStrategy[Example]:
    return S.logits(dt, max_size=inp.max_size).flatmap(
        lambda ex: S.representable_shift(dt, ex["z"]).map(lambda c: {**ex, "c": c}))


def _with_perm(dt: DType, inp: Inputs) -> st.SearchStrategy[Example]:
    return S.logits(dt, max_size=inp.max_size).flatmap(
        lambda ex: S.permutations(ex["z"].shape[ex["axis"]]).map(
            lambda p: {**ex, "perm": np.asarray(p)}))


def _focused(**kw: Any) -> Callable[[DType, Inputs], st.SearchStrategy[Example]]:
    """Any logits, or (as often) the regimes where accuracy is lost: LSE near zero (e.g.
    [0, -40]) and one dominant logit, where log(1 + s) must be log1p(s). Vocabulary-sized rows
    where the profile asks for them."""
    return lambda dt, inp: st.one_of(
        S.logits(dt, max_size=inp.max_size, vocab_size=inp.vocab_size, **kw),
        S.logits(dt, max_size=inp.max_size, regimes=("lse_zero", "dominant"),
                 vocab_size=inp.vocab_size, **kw))


def _focused_targets(dt: DType, inp: Inputs) -> st.SearchStrategy[Example]:
    return st.one_of(S.logits_and_targets(dt, max_size=inp.max_size, masks=False,
                                          vocab_size=inp.vocab_size),
                     S.logits_and_targets(dt, max_size=inp.max_size, masks=False,
                                          regimes=("lse_zero", "dominant"),
                                          vocab_size=inp.vocab_size))


def _zero_targets_at_masks(dt: DType, ex: Example) -> st.SearchStrategy[Example]:
    """Probability targets on the unmasked entries of masked logits (one-hot or soft)."""

    def make(args: tuple[bool, int]) -> Example:
        one_hot, seed = args
        rng = np.random.default_rng(seed)
        z, axis = ex["z"], ex["axis"]
        finite = np.isfinite(np.moveaxis(z, axis, -1).astype(np.float64))
        w = rng.random(finite.shape) * finite
        if one_hot:
            w = (w == w.max(axis=-1, keepdims=True)) & finite
        n = w / np.maximum(w.sum(axis=-1, keepdims=True), 1e-300)
        return {**ex, "n": np.moveaxis(n, -1, axis).astype(dt.np)}

    return st.tuples(st.booleans(), st.integers(0, 2**32 - 1)).map(make)


def _targets(vocab: bool = False, **kw: Any) -> Callable[[DType, Inputs],
                                                        st.SearchStrategy[Example]]:
    """Logits and targets; with ``vocab``, vocabulary-sized rows where the profile asks."""
    return lambda dt, inp: S.logits_and_targets(
        dt, max_size=inp.max_size, vocab_size=inp.vocab_size if vocab else 0, **kw)


def _cotangents(dt: DType, inp: Inputs) -> st.SearchStrategy[Example]:
    return S.logits_and_cotangent(dt, max_size=inp.max_size)


def _dense(dt: DType, inp: Inputs) -> st.SearchStrategy[Example]:
    return S.dense_layers(dt, max_size=inp.dense_size)


def _small(dt: DType, inp: Inputs, targets: bool = False) -> st.SearchStrategy[Example]:
    """Short rows of moderate logits, for checks against numerical differentiation; targets
    one-hot, soft or unnormalised counts."""
    base = S.logits(dt, max_size=min(inp.max_size, 6), masks=False, regimes=("normal",))
    if not targets:
        return base

    def add(ex: Example) -> st.SearchStrategy[Example]:
        def make(args: tuple[int, int]) -> Example:
            kind, seed = args
            rng = np.random.default_rng(seed)
            shape = ex["z"].shape
            if kind == 0:  # one-hot along the axis
                n = np.zeros(shape)
                idx = rng.integers(0, shape[ex["axis"]], size=np.delete(shape, ex["axis"] % len(
                    shape)))
                np.put_along_axis(n, np.expand_dims(idx, ex["axis"]), 1.0, axis=ex["axis"])
            elif kind == 1:  # soft
                n = rng.random(shape)
                n = n / n.sum(axis=ex["axis"], keepdims=True)
            else:  # unnormalised counts
                n = rng.integers(0, 4, size=shape).astype(np.float64)
            return {**ex, "n": n.astype(dt.np)}
        return st.tuples(st.integers(0, 2), st.integers(0, 2**32 - 1)).map(make)

    return base.flatmap(add)


# =============================================================================== softmax


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
        worst = max(worst, _bound(abs(s - 1), r.ctx.zero, env.stable.softmax_sum(r),
                                  f"row {i}: |sum - 1|", "<="))
    return worst


def check_softmax_ref(env: Env, ex: Example) -> float:
    z, axis = ex["z"], ex["axis"]
    out = env.call("softmax", z, axis=axis)
    return _per_element(env, out, z, axis, lambda r, i: r.g,
                        lambda r, i: env.stable.softmax(r), "softmax")


def check_softmax_shift(env: Env, ex: Example) -> float:
    z, axis, c = ex["z"], ex["axis"], ex["c"]
    zc = (z.astype(np.float64) + c).astype(z.dtype)
    out = env.call("softmax", z, axis=axis)
    out_c = env.call("softmax", zc, axis=axis)
    tol = [t * 2 for r in env.rows(z, axis) for t in env.stable.softmax(r)]
    ctx = context(env.prec)
    a = assess(rows_of(out_c, axis), [ctx.mpf(float(v)) for v in rows_of(out, axis).ravel()],
               tol, env.dtype, _label(z, axis), f"softmax(z + {float(c)!r}) vs softmax(z)")
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
               tol, env.dtype, _label(z, axis), f"softmax(z[perm]) vs softmax(z)[perm], "
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
                worst = max(worst, _bound(r.ctx.mpf(float(out[i][p])),
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
    vs = _targets_rows(env, v, axis)
    return _per_element(env, out, z, axis, lambda r, i: r.vjp(vs[i]),
                        lambda r, i: env.stable.vjp(r, vs[i]), "softmax_vjp")


def check_vjp_sum(env: Env, ex: Example) -> float:
    z, v, axis = ex["z"], ex["v"], ex["axis"]
    out = rows_of(env.call("softmax_vjp", z, v, axis=axis), axis)
    vs = _targets_rows(env, v, axis)
    worst = 0.0
    for i, r in enumerate(env.rows(z, axis)):
        s = r.ctx.fsum(r.ctx.mpf(float(t)) for t in out[i])
        if not r.ctx.isfinite(s):
            raise Refuted(f"row {i}: softmax_vjp sums to {float(s)!r}")
        worst = max(worst, _bound(abs(s), r.ctx.zero, r.ctx.fsum(env.stable.vjp(r, vs[i])),
                                  f"row {i}: |sum of softmax_vjp|", "<="))
    return worst


# =============================================================================== log-sum-exp


def check_lse_ref(env: Env, ex: Example) -> float:
    z, axis = ex["z"], ex["axis"]
    out = env.call("logsumexp", z, axis=axis)
    return _per_row(env, out, z, axis, lambda r, i: r.logsumexp(certified=True),
                    lambda r, i: env.stable.logsumexp(r, certified=True), "logsumexp")


def check_lse_accurate(env: Env, ex: Example) -> float:
    z, axis = ex["z"], ex["axis"]
    out = env.call("logsumexp", z, axis=axis)
    return _per_row(env, out, z, axis, lambda r, i: r.logsumexp(certified=True),
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
        worst = max(worst, _bound(r.a, y, tol, f"row {i}: max z <= LSE", "<="),
                    _bound(y, r.a + r.log_n, tol, f"row {i}: LSE <= max z + log n", "<="))
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
        worst = max(worst, _bound(abs(lhs - rhs), ctx.zero,
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


def _with_pos_inf(dt: DType, inp: Inputs) -> st.SearchStrategy[Example]:
    """Logits (perhaps masked) with one or more +inf entries in every row."""

    def add(ex: Example) -> st.SearchStrategy[Example]:
        def apply(args: tuple[int, float]) -> Example:
            seed, share = args
            z = ex["z"].copy()
            moved = np.moveaxis(z, ex["axis"], -1)
            rng = np.random.default_rng(seed)
            if moved.shape[-1] == 0:
                return ex
            hit = rng.random(moved.shape) < share
            first = rng.integers(0, moved.shape[-1], size=moved.shape[:-1])
            np.put_along_axis(hit, first[..., None], True, axis=-1)
            moved[hit] = np.inf
            return {**ex, "z": z, "regime": (*ex.get("regime", ()), "pos_inf")}
        return st.tuples(st.integers(0, 2**32 - 1), st.sampled_from((0.0, 0.3, 1.0))).map(apply)

    return S.logits(dt, max_size=inp.max_size, masks=True, full_masks=False).flatmap(add)


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


# =============================================================================== log-softmax


def check_ls_ref(env: Env, ex: Example) -> float:
    z, axis = ex["z"], ex["axis"]
    out = env.call("log_softmax", z, axis=axis)
    return _per_element(env, out, z, axis, lambda r, i: r.l,
                        lambda r, i: env.stable.log_softmax(r), "log_softmax")


def check_ls_accurate(env: Env, ex: Example) -> float:
    z, axis = ex["z"], ex["axis"]
    out = env.call("log_softmax", z, axis=axis)
    return _per_element(env, out, z, axis, lambda r, i: r.l,
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
            worst = max(worst, _bound(r.ctx.mpf(float(v)), r.ctx.zero, tol[j],
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
            worst = max(worst, _bound(abs(lhs - rhs), ctx.zero, tl[j] + ty,
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
            worst = max(worst, _bound(abs(e - s), ctx.zero, tol,
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


# =============================================================================== cross-entropy


def check_ce_ref(env: Env, ex: Example, accurate: bool = False) -> float:
    z, n, axis = ex["z"], ex["n"], ex["axis"]
    out = env.call("cross_entropy", z, n, axis=axis)
    ns = _targets_rows(env, n, axis)
    model = env.accurate if accurate else env.stable
    return _per_row(env, out, z, axis, lambda r, i: r.cross_entropy(ns[i], certified=True),
                    lambda r, i: model.cross_entropy(r, ns[i], certified=True),
                    "cross_entropy (accurate)" if accurate else "cross_entropy")


def check_ce_lse(env: Env, ex: Example) -> float:
    z, n, axis = ex["z"], ex["n"], ex["axis"]
    ce = env.call("cross_entropy", z, n, axis=axis).reshape(-1)
    lse = env.call("logsumexp", z, axis=axis).reshape(-1)
    ns, zr = _targets_rows(env, n, axis), rows_of(z, axis)
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
        worst = max(worst, _bound(abs(c - rhs), ctx.zero, tol,
                                  f"row {i}: |C - (S_n LSE(z) - <n, z>)|", "<="))
    return worst


def check_ce_gibbs(env: Env, ex: Example) -> float:
    z, n, axis = ex["z"], ex["n"], ex["axis"]
    ce = env.call("cross_entropy", z, n, axis=axis).reshape(-1)
    ns = _targets_rows(env, n, axis)
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
        worst = max(worst, _bound(bound, c, env.stable.cross_entropy(r, ns[i]),
                                  f"row {i}: C >= H(n) + S_n log S_n", "<="))
    return worst


def check_ce_finite(env: Env, ex: Example) -> float:
    z, n, axis = ex["z"], ex["n"], ex["axis"]
    ce = env.call("cross_entropy", z, n, axis=axis).reshape(-1)
    ns = _targets_rows(env, n, axis)
    from softmax_oracle.oracle.dtypes import round_to

    for i, r in enumerate(env.rows(z, axis)):
        exact = r.cross_entropy(ns[i])
        if np.isfinite(round_to(exact, env.dtype)) and not np.isfinite(ce[i]):
            raise Refuted(f"row {i}: cross_entropy = {float(ce[i])!r}, but the exact value "
                          f"{float(exact)!r} is finite in {env.dtype}")
    return 0.0


# =============================================================================== gradients


def check_grad_ref(env: Env, ex: Example) -> float:
    z, n, axis = ex["z"], ex["n"], ex["axis"]
    out = env.call("cross_entropy_grad", z, n, axis=axis)
    ns = _targets_rows(env, n, axis)
    return _per_element(env, out, z, axis, lambda r, i: r.grad(ns[i]),
                        lambda r, i: env.stable.grad(r, ns[i]), "cross_entropy_grad")


def check_grad_sum(env: Env, ex: Example) -> float:
    z, n, axis = ex["z"], ex["n"], ex["axis"]
    out = rows_of(env.call("cross_entropy_grad", z, n, axis=axis), axis)
    ns = _targets_rows(env, n, axis)
    worst = 0.0
    for i, r in enumerate(env.rows(z, axis)):
        s = r.ctx.fsum(r.ctx.mpf(float(t)) for t in out[i])
        if not r.ctx.isfinite(s):
            raise Refuted(f"row {i}: the gradient sums to {float(s)!r}")
        worst = max(worst, _bound(abs(s), r.ctx.zero, r.ctx.fsum(env.stable.grad(r, ns[i])),
                                  f"row {i}: |sum_j dC/dz_j|", "<="))
    return worst


def _fd_gradient(ctx: Any, f: Callable[..., MPF],
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


def _ce_of(ns: Sequence[MPF]) -> Callable[[list[MPF]], MPF]:
    """The exact cross-entropy as a function of the logits, for fixed targets."""

    def f(zs: list[MPF]) -> MPF:
        hi = zs[0].context
        return _row_of_mp(zs).cross_entropy([hi.mpf(v) for v in ns])

    return f


def _row_of_mp(zs: Sequence[MPF]) -> RowRef:
    from softmax_oracle.oracle.reference import _row_ref_mp

    return _row_ref_mp(zs[0].context, zs)


def check_grad_fd(env: Env, ex: Example) -> float:
    z, n, axis = ex["z"], ex["n"], ex["axis"]
    out = rows_of(env.call("cross_entropy_grad", z, n, axis=axis), axis)
    ns = _targets_rows(env, n, axis)
    refs: list[MPF] = []
    tols: list[MPF] = []
    for i, r in enumerate(env.rows(z, axis)):
        fd, err = _fd_gradient(r.ctx, _ce_of(ns[i]), [v for v in r.x])
        refs.extend(fd)
        tols.extend(t + e for t, e in zip(env.stable.grad(r, ns[i]), err))
    a = assess(out, refs, tols, env.dtype, _label(z, axis), "cross_entropy_grad vs finite "
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
    ns = _targets_rows(env, n, axis)
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
        worst = max(worst, _bound(abs(computed - exact), ctx.zero, tol,
                                  f"row {i}: C(z+Δ) - C(z-Δ) - <grad, 2Δ> differs from its exact "
                                  f"value (the gradient is not the derivative of this "
                                  f"cross_entropy)", "<="))
    return worst


def _with_dir(dt: DType, inp: Inputs) -> st.SearchStrategy[Example]:
    return S.logits_and_targets(dt, max_size=inp.max_size, masks=False).flatmap(
        lambda ex: st.integers(0, 2**32 - 1).map(lambda s: {**ex, "dir_seed": s}))


# =============================================================================== dense layer


def _check_dense(which: int) -> Check:
    names = ("dW", "db", "dx")

    def check(env: Env, ex: Example) -> float:
        W, b, x, n = ex["W"], ex["b"], ex["x"], ex["n"]
        out = env.call("dense_grads", W, b, x, n)[which]
        ref = dense_ref(W, b, x, n, env.prec)
        tols = env.stable.dense(ref, W, x, n)[which]
        refs = (ref.dW, ref.db, ref.dx)[which]
        flat_ref = [v for row in refs for v in row] if which != 1 else list(refs)
        flat_tol = [v for row in tols for v in row] if which != 1 else list(tols)
        shape = out.shape
        a = assess(out.reshape(-1), flat_ref, flat_tol, env.dtype,
                   lambda p: f"{names[which]}[{', '.join(map(str, np.unravel_index(p, shape)))}]",
                   f"dense_grads {names[which]}")
        a.raise_if_bad()
        return a.ratio

    check.__name__ = f"check_dense_{names[which]}"
    return check


def _empty_batch(dt: DType, inp: Inputs) -> st.SearchStrategy[Example]:
    return _dense(dt, inp).map(lambda ex: {**ex, "x": ex["x"][:0], "n": ex["n"][:0],
                                           "regime": (*ex.get("regime", ()), "empty_batch")})


def check_dense_empty(env: Env, ex: Example) -> float:
    dW, db, _ = env.call("dense_grads", ex["W"], ex["b"], ex["x"], ex["n"])  # shapes checked
    for name, g in (("dW", dW), ("db", db)):
        if np.any(g != 0):
            bad = int(np.argmax(g.reshape(-1) != 0))
            raise Refuted(f"{name} must be zero for a batch of no rows (an empty sum); "
                          f"{name} has {int(np.sum(g != 0))} nonzero entries, e.g. "
                          f"{float(g.reshape(-1)[bad])!r}")
    return 0.0


# =============================================================================== contract


def _call_for(fname: str, env: Env, ex: Example, z: np.ndarray | None = None) -> Any:
    if fname == "dense_grads":
        return env.call_raw(fname, ex["W"], ex["b"], ex["x"], ex["n"])
    z = ex["z"] if z is None else z
    axis = ex.get("axis", -1)
    if fname in ("softmax", "log_softmax", "logsumexp"):
        return env.call_raw(fname, z, axis=axis)
    if fname == "softmax_vjp":
        return env.call_raw(fname, z, ex["v"], axis=axis)
    return env.call_raw(fname, z, ex["n"], axis=axis)


def _strategy_for(fname: str) -> Callable[[DType, Inputs], st.SearchStrategy[Example]]:
    if fname in ("softmax", "log_softmax", "logsumexp"):
        return _logits()
    if fname == "softmax_vjp":
        return _cotangents
    if fname == "dense_grads":
        return _dense
    return _targets()


def _contract_no_mutation(fname: str) -> Check:
    def check(env: Env, ex: Example) -> float:
        _call_for(fname, env, ex)  # Env.call_raw refutes on any change to an input
        return 0.0
    return check


def _contract_shape_dtype(fname: str) -> Check:
    def check(env: Env, ex: Example) -> float:
        out = _call_for(fname, env, ex)
        from softmax_oracle.targets.call import _to_numpy

        outs = out if fname == "dense_grads" else (out,)
        if fname == "dense_grads":
            if not isinstance(out, (tuple, list)) or len(out) != 3:
                raise Refuted(f"dense_grads returned {type(out).__name__}, expected (dW, db, dx)")
            shapes = [ex["W"].shape, ex["b"].shape, ex["x"].shape]
            dtype = ex["W"].dtype
        else:
            z, axis = ex["z"], ex["axis"]
            shapes = [tuple(s for i, s in enumerate(z.shape) if i != axis % z.ndim)
                      if fname in ("logsumexp", "cross_entropy") else z.shape]
            dtype = z.dtype
        for o, shape in zip(outs, shapes):
            arr = np.asarray(_to_numpy(o))
            if arr.shape != tuple(shape):
                raise Refuted(f"{fname} returned shape {arr.shape}, expected {tuple(shape)}")
            if arr.dtype != dtype:
                raise Refuted(f"{fname} returned dtype {arr.dtype} for {dtype} input; the output "
                              f"must have the input's dtype")
        return 0.0
    return check


def _default_axis(env: Env, fname: str) -> int | None:
    """The default of the target's ``axis`` parameter, or None when it has none (the caller must
    pass it) or the signature cannot be read."""
    assert env.target is not None
    try:
        param = inspect.signature(env.target.functions[fname]).parameters.get("axis")
    except (TypeError, ValueError):
        return None
    if param is None or param.default is inspect.Parameter.empty:
        return None
    return param.default if isinstance(param.default, int) else None


def _contract_axis(fname: str) -> Check:
    """Batched along any axis equals row by row (each 1-D row with axis=-1), within budgets; and
    where the target gives ``axis`` a default, the default is the protocol's -1."""

    def check(env: Env, ex: Example) -> float:
        z, axis = ex["z"], ex["axis"]
        extra = "v" if fname == "softmax_vjp" else ("n" if "n" in ex else None)
        args = (z,) if extra is None else (z, ex[extra])
        default = _default_axis(env, fname)
        if default is not None and default != -1 and default % z.ndim != z.ndim - 1:
            raise Refuted(f"{fname} defaults to axis={default}; the protocol's default is the "
                          f"last axis, axis=-1")
        batched = env.call(fname, *args, axis=axis)
        if default is not None and axis % z.ndim == z.ndim - 1:
            from softmax_oracle.targets.call import _as_float

            expected = batched.shape
            plain = _as_float(f"{fname}() without axis", env.call_raw(fname, *args), expected)
            same = (plain == batched) | (np.isnan(plain) & np.isnan(batched))
            if not np.all(same):
                raise Refuted(f"{fname}(z) without axis differs from {fname}(z, axis={axis}) in "
                              f"{int(np.sum(~same))} of {same.size} elements; its default "
                              f"axis={default} must mean the last axis")
        reduce = fname in ("logsumexp", "cross_entropy")
        zr = rows_of(z, axis)
        er = rows_of(ex[extra], axis) if extra else None
        rows = []
        for i in range(zr.shape[0]):
            row_args = (zr[i].astype(z.dtype),) if er is None else (
                zr[i].astype(z.dtype), er[i].astype(z.dtype))
            rows.append(env.call(fname, *row_args, axis=-1))
        rowwise = np.array(rows).reshape(-1)
        got = batched.reshape(-1) if reduce else rows_of(batched, axis).reshape(-1)
        same = (got == rowwise) | (np.isnan(got) & np.isnan(rowwise))
        if np.all(same):
            return 0.0  # identical, NaN for NaN: nothing to tell about the axis
        both_nan = np.isnan(got) & np.isnan(rowwise)
        got, rowwise = np.where(both_nan, 0.0, got), np.where(both_nan, 0.0, rowwise)
        # Both must lie within the budget of the same reference: allow twice the budget.
        refs_rows = env.rows(z, axis)
        ns = _targets_rows(env, ex[extra], axis) if extra else None
        tols: list[MPF] = []
        for i, r in enumerate(refs_rows):
            tols.extend(_tolerances(fname, env, r, None if ns is None else ns[i]))
        ctx = context(env.prec)
        a = assess(got, [ctx.mpf(float(v)) for v in rowwise], [2 * t for t in tols], env.dtype,
                   _label(z, axis, reduce), f"{fname}(z, axis={axis}) vs row by row")
        a.raise_if_bad()
        return a.ratio
    return check


def _tolerances(fname: str, env: Env, r: RowRef,
                extra: Sequence[MPF] | None) -> Sequence[MPF]:
    m = env.stable
    if fname == "softmax":
        return m.softmax(r)
    if fname == "log_softmax":
        return m.log_softmax(r)
    if fname == "logsumexp":
        return [m.logsumexp(r)]
    if fname == "softmax_vjp":
        assert extra is not None
        return m.vjp(r, extra)
    if fname == "cross_entropy":
        assert extra is not None
        return [m.cross_entropy(r, extra)]
    assert extra is not None
    return m.grad(r, extra)


def _widened(fname: str, ex: Example) -> Example:
    """The example tiled along the softmax axis to at least 64 entries: summation order can only
    change a sum of three or more terms, and vectorised reductions differ on long rows."""
    if fname == "dense_grads":
        return ex
    axis = ex["axis"]
    reps = max(1, -(-64 // max(1, ex["z"].shape[axis])))
    out = {**ex, "z": np.concatenate([ex["z"]] * reps, axis=axis)}
    for key in ("n", "v"):
        if key in ex:
            out[key] = np.concatenate([ex[key]] * reps, axis=axis)
    return out


def _contract_deterministic(fname: str) -> Check:
    def check(env: Env, ex: Example) -> float:
        from softmax_oracle.targets.call import _to_numpy

        # Three calls: nondeterminism (unordered reductions, random tie-breaking) often changes
        # only the last bit, and only on some calls. No reference is needed, so calls are cheap.
        pairs: list[tuple[Any, Any, str]] = []
        for case in (ex, _widened(fname, ex)):
            first = _call_for(fname, env, case)
            for _ in range(2):
                again = _call_for(fname, env, case)
                where = "" if case is ex else (f" (on the input tiled to "
                                               f"{case['z'].shape[case['axis']]} entries along "
                                               f"the axis)")
                pairs.extend((a, b, where) for a, b in (zip(first, again) if fname ==
                                                        "dense_grads" else [(first, again)]))
        for a, b, where in pairs:
            a64 = np.asarray(_to_numpy(a)).astype(np.float64)
            b64 = np.asarray(_to_numpy(b)).astype(np.float64)
            same = (a64 == b64) | (np.isnan(a64) & np.isnan(b64))
            if a64.shape != b64.shape or not np.all(same):
                raise Refuted(f"{fname} gave different results for the same input on two calls"
                              f"{where} ({int(np.sum(~same))} elements differ)")
        return 0.0
    return check


# =============================================================================== mathematics


def _math_rows(dt: DType, inp: Inputs) -> st.SearchStrategy[Example]:
    return _small(get_dtype("float64"), Inputs(max_size=5), targets=True)


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
    return _row_of_mp(zs).g


def check_math_jacobian(env: Env, ex: Example) -> float:
    ctx = context(MATH_PREC)
    worst = 0.0
    for zrow in rows_of(ex["z"], ex["axis"]):
        zs = mp_vector(ctx, zrow)
        a = _softmax_mp(zs)
        for i in range(len(zs)):
            fd, err = _fd_gradient(ctx, lambda v, i=i: _softmax_mp(v)[i], zs)
            formula = [a[i] * ((1 if i == j else 0) - a[j]) for j in range(len(zs))]
            worst = max(worst, _math_close(f"z = {zrow.tolist()}: J[{i}]", formula, fd, err))
    return worst


def _seed_check(kind: str) -> Check:
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
                    fd, err = _fd_gradient(ctx, lambda v, i=i: _softmax_mp(v)[i], zs)
                    worst = max(worst, _math_close(f"{where}: da_{i}/dz_{i}", [a[i] * (1 - a[i])],
                                                   [fd[i]], [err[i]]))
            elif kind == "2_1_chain":
                v = [ctx.one] * len(zs)  # a shift direction: softmax(z + t 1) = softmax(z)
                true = _row_of_mp(zs).vjp(v)
                worst = max(worst, _math_close(f"{where}, v = 1: v^T da/dz",
                                               [vi * ai * (1 - ai) for vi, ai in zip(v, a)],
                                               true, [ctx.zero] * len(zs)))
            elif kind == "2_2_dC_da":
                # C(a) = -sum n_j log a_j with a treated as the variable
                def cost(av: list[MPF], ns: Sequence[MPF] = ns) -> MPF:
                    hi = av[0].context
                    return -hi.fsum(nj * hi.log(aj) for nj, aj in zip(ns, av) if nj != 0)

                fd, err = _fd_gradient(ctx, cost, a)
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
                fd, err = _fd_gradient(ctx, _ce_of(ns), zs)
                worst = max(worst, _math_close(f"{where}: dC/dz",
                                               [ai - ni for ai, ni in zip(a, ns)], fd, err))
        return worst

    return check


def _two_layer(dt: DType, inp: Inputs) -> st.SearchStrategy[Example]:
    """A one-unit hidden layer h = sigmoid(w1 x + b1) feeding a softmax layer z = W2 h + b2."""
    f = st.floats(-3, 3, allow_nan=False).map(lambda v: round(v, 3))
    fields: dict[str, st.SearchStrategy[Any]] = {
        "x": f, "w1": f.filter(lambda v: abs(v) > 0.1), "b1": f,
        "W2": st.lists(f, min_size=2, max_size=4),
    }
    return st.fixed_dictionaries(fields).flatmap(
        lambda d: st.lists(st.integers(0, 3), min_size=len(d["W2"]),
                           max_size=len(d["W2"])).filter(lambda c: sum(c) > 0)
        .map(lambda c: {**d, "n": [v / sum(c) for v in c]}))


def _check_seed_weights(env: Env, ex: Example) -> float:
    ctx = context(MATH_PREC)
    x, w1, b1 = (ctx.mpf(ex[k]) for k in ("x", "w1", "b1"))
    W2 = [ctx.mpf(v) for v in ex["W2"]]
    ns = [ctx.mpf(v) for v in ex["n"]]
    h = 1 / (1 + ctx.exp(-(w1 * x + b1)))

    def loss(W: list[MPF]) -> MPF:
        return _row_of_mp([wi * h for wi in W]).cross_entropy([W[0].context.mpf(v) for v in ns])

    fd, err = _fd_gradient(ctx, loss, W2)
    a = _softmax_mp([wi * h for wi in W2])
    seed = [(ai - ni) * ai * (1 - ai) * w1 for ai, ni in zip(a, ns)]
    return _math_close(f"x = {ex['x']}, w1 = {ex['w1']}, b1 = {ex['b1']}, W2 = {ex['W2']}, "
                       f"n = {ex['n']}: dC/dW2", seed, fd, err)


def _check_sigmoid_mse(env: Env, ex: Example) -> float:
    ctx = context(MATH_PREC)
    x, w1, b1 = (ctx.mpf(ex[k]) for k in ("x", "w1", "b1"))
    W2 = [ctx.mpf(v) for v in ex["W2"]]
    ys = [ctx.mpf(v) for v in ex["n"]]
    h = 1 / (1 + ctx.exp(-(w1 * x + b1)))

    def sig(t: MPF) -> MPF:
        return 1 / (1 + t.context.exp(-t))

    def loss(W: list[MPF]) -> MPF:
        return W[0].context.fsum((sig(wi * h) - yi) ** 2 for wi, yi in zip(W, ys))

    fd, err = _fd_gradient(ctx, loss, W2)
    a = [sig(wi * h) for wi in W2]
    chain = [2 * (ai - yi) * ai * (1 - ai) * h for ai, yi in zip(a, ys)]
    return _math_close(f"x = {ex['x']}, w1 = {ex['w1']}, W2 = {ex['W2']}, y = {ex['n']}: dC/dW2",
                       chain, fd, err)


def _check_dense_fd(env: Env, ex: Example) -> float:
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
            total += _row_of_mp(zb).cross_entropy([hi.mpf(float(v)) for v in n[bi]])
        return total

    params = mp_vector(ctx, np.concatenate([W.ravel(), b, x.ravel()]))
    fd, err = _fd_gradient(ctx, loss, params)
    formula = ([v for row in ref.dW for v in row] + list(ref.db)
               + [v for row in ref.dx for v in row])
    return _math_close("d(sum of C)/d(W, b, x)", formula, fd, err)


def _math_dense(dt: DType, inp: Inputs) -> st.SearchStrategy[Example]:
    return S.dense_layers(get_dtype("float64"), max_size=3).filter(
        lambda ex: float(np.max(np.abs(ex["x"] @ ex["W"].T + ex["b"]), initial=0)) < 50)


# =============================================================================== the catalogue

_SRC_BHH = "Blanchard, Higham & Higham (2021), IMA J. Numer. Anal. 41(4)"
_SRC_STD = "standard result"
_SRC_CONTRACT = "softmax-oracle plug-in protocol"
_PROB = "targets n >= 0"

_NUMERIC: list[Claim] = [
    # ---------------------------------------------------------------- softmax
    Claim("softmax.in_unit_interval",
          "softmax outputs lie in [0, 1] and are never NaN for finite (or partly -inf) logits",
          r"0 \le \hat a_j \le 1", ("softmax",), _SRC_STD, _logits(), check_softmax_unit,
          ("at least one finite logit per row",)),
    Claim("softmax.sums_to_one",
          "each row of softmax sums to one within the sum of its component budgets",
          r"\left|\sum_j \hat a_j - 1\right| \le \sum_j \mathrm{tol}_j", ("softmax",),
          _SRC_BHH + ", Thm 4.3", _logits(), check_softmax_sum),
    Claim("softmax.matches_reference",
          "softmax matches the mpmath reference within the shift-invariant budget "
          "g_j expm1(2u(2 gap_j + n + 2μ + (1+μ) ln n + 1)) + 2Φ0",
          r"|\hat a_j - a_j| \le a_j\,\mathrm{expm1}(2u(c\,\mathrm{gap}_j + n + 2\mu + (1+\mu)"
          r"\ln n + 1)) + 2\Phi_0", ("softmax",), _SRC_BHH + ", Thm 4.3; docs/tolerances.md",
          _logits(vocab=True), check_softmax_ref),
    Claim("softmax.shift_invariant",
          "softmax(z + c) = softmax(z) for every exactly representable shift c (within budgets)",
          r"\mathrm{softmax}(z + c\mathbf{1}) = \mathrm{softmax}(z)", ("softmax",), _SRC_STD,
          _with_shift, check_softmax_shift, ("z + c exact in the dtype and finite",)),
    Claim("softmax.permutation_equivariant",
          "permuting the logits permutes the probabilities",
          r"\mathrm{softmax}(Pz) = P\,\mathrm{softmax}(z)", ("softmax",), _SRC_STD, _with_perm,
          check_softmax_perm),
    Claim("softmax.order_preserving",
          "z_i < z_j implies a_i <= a_j (within budgets)",
          r"z_i < z_j \Rightarrow \hat a_i \le \hat a_j", ("softmax",), _SRC_STD, _logits(),
          check_softmax_order),
    Claim("softmax.masked_entries",
          "-inf logits get exactly 0; the rest is the softmax of the unmasked entries",
          r"z_j = -\infty \Rightarrow \hat a_j = 0", ("softmax",), _SRC_STD,
          lambda dt, inp: _with_mask(dt, inp), check_softmax_masked,
          ("at least one finite logit per row",)),
    Claim("softmax.finite_for_huge_logits",
          "softmax is finite for finite logits of any magnitude (no overflow, no 0/0)",
          r"z \in \mathbb{F}^n \Rightarrow \hat a \in \mathbb{F}^n", ("softmax",), _SRC_BHH,
          _logits(regimes=("overflow", "underflow", "offset")), check_softmax_finite),
    Claim("softmax_vjp.matches_reference",
          "the backward pass v^T J = a * (v - <v, a>) matches the reference within its budget",
          r"v^\top J = a \odot (v - \langle v, a\rangle)", ("softmax_vjp",),
          _SRC_STD + "; J = diag(a) - a a^T", _cotangents, check_vjp_ref),
    Claim("softmax_vjp.sums_to_zero",
          "the softmax VJP annihilates constants: its output sums to zero (within budgets)",
          r"\sum_j (v^\top J)_j = 0", ("softmax_vjp",), _SRC_STD, _cotangents, check_vjp_sum),
    # ---------------------------------------------------------------- log-sum-exp
    Claim("logsumexp.matches_reference",
          "log-sum-exp matches the reference within 2u(μ|y| + n + μ + (1+μ) ln n)",
          r"|\hat y - y| \le 2u(\mu|y| + n + \mu + (1+\mu)\ln n)", ("logsumexp",),
          _SRC_BHH + ", Thms 3.2 and 4.2", _logits(vocab=True, masks=True, full_masks=True),
          check_lse_ref),
    Claim("logsumexp.bounds", "max z <= LSE(z) <= max z + log n (within budgets)",
          r"\max_i z_i \le \mathrm{LSE}(z) \le \max_i z_i + \ln n", ("logsumexp",),
          _SRC_BHH + ", (4.2)", _logits(), check_lse_bounds),
    Claim("logsumexp.shift", "LSE(z + c) = LSE(z) + c for exactly representable shifts c",
          r"\mathrm{LSE}(z + c\mathbf{1}) = \mathrm{LSE}(z) + c", ("logsumexp",), _SRC_BHH,
          _with_shift, check_lse_shift, ("z + c exact in the dtype and finite",)),
    Claim("logsumexp.masked_entries",
          "-inf entries are ignored, and an all -inf row gives -inf",
          r"\mathrm{LSE}(z) = \mathrm{LSE}(z_{z_j > -\infty})", ("logsumexp",), _SRC_STD,
          lambda dt, inp: _with_mask(dt, inp, full=True), check_lse_masked),
    Claim("logsumexp.infinite_logits",
          "a row holding +inf logits has LSE = +inf (also with two or more, or -inf beside them)",
          r"\exists j: z_j = +\infty \Rightarrow \mathrm{LSE}(z) = +\infty", ("logsumexp",),
          "limit of the definition; scipy, torch and jax agree", _with_pos_inf,
          check_lse_pos_inf),
    Claim("logsumexp.finite_for_huge_logits", "log-sum-exp never overflows for finite logits",
          r"z \in \mathbb{F}^n \Rightarrow \widehat{\mathrm{LSE}}(z) \in \mathbb{F}",
          ("logsumexp",), _SRC_BHH, _logits(regimes=("overflow", "underflow", "offset")),
          check_lse_finite),
    Claim("logsumexp.accurate",
          "log-sum-exp is accurate relative to its conditioning: |ŷ - y| <= 2u(2n + 2μ + 2)"
          "(sum_i |z_i| a_i + |y|) + 2nΦ0 (met by log1p-refined algorithms)",
          r"|\hat y - y| \le 2u(2n+2\mu+2)\left(\sum_i |z_i| a_i + |y|\right) + 2n\Phi_0",
          ("logsumexp",), _SRC_BHH + ", Alg. 4.1; docs/tolerances.md",
          _focused(masks=True, full_masks=True), check_lse_accurate, level="accurate"),
    # ---------------------------------------------------------------- log-softmax
    Claim("log_softmax.matches_reference",
          "log-softmax matches the reference within 2u(2|l_j| + n + μ + (1+μ) ln n)",
          r"|\hat\ell_j - \ell_j| \le 2u(2|\ell_j| + n + \mu + (1+\mu)\ln n)", ("log_softmax",),
          _SRC_BHH + "; docs/tolerances.md", _logits(vocab=True), check_ls_ref),
    Claim("log_softmax.nonpositive", "log-softmax is <= 0 (within its budget)",
          r"\hat\ell_j \le \mathrm{tol}_j", ("log_softmax",), _SRC_STD, _logits(),
          check_ls_nonpositive),
    Claim("log_softmax.finite",
          "log-softmax is finite for finite logits wherever the exact value is representable "
          "(no -inf from an underflowed probability)",
          r"\ell_j \in \mathbb{F} \Rightarrow \hat\ell_j \in \mathbb{F}", ("log_softmax",),
          _SRC_STD, _logits(regimes=("dominant", "wide", "underflow", "overflow")),
          check_ls_finite),
    Claim("log_softmax.equals_z_minus_lse", "log_softmax(z) = z - LSE(z) (within budgets)",
          r"\ell = z - \mathrm{LSE}(z)", ("log_softmax", "logsumexp"), _SRC_STD, _logits(),
          check_ls_lse),
    Claim("log_softmax.exp_is_softmax", "exp(log_softmax(z)) = softmax(z) (within budgets)",
          r"e^{\ell_j} = a_j", ("log_softmax", "softmax"), _SRC_STD, _logits(), check_ls_exp),
    Claim("log_softmax.masked_entries",
          "-inf logits give -inf; the rest is the log-softmax of the unmasked entries",
          r"z_j = -\infty \Rightarrow \hat\ell_j = -\infty", ("log_softmax",), _SRC_STD,
          lambda dt, inp: _with_mask(dt, inp), check_ls_masked,
          ("at least one finite logit per row",)),
    Claim("log_softmax.accurate",
          "log-softmax is accurate relative to its conditioning: |l̂_j - l_j| <= 2u(2n + 2μ + 2)"
          "(P_j + |l_j|) + 2nΦ0, P_j = |z_j|(1 - a_j) + sum_{i != j} |z_i| a_i",
          r"|\hat\ell_j - \ell_j| \le 2u(2n+2\mu+2)(P_j + |\ell_j|) + 2n\Phi_0",
          ("log_softmax",), _SRC_BHH + ", Alg. 4.1; docs/tolerances.md", _focused(),
          check_ls_accurate, level="accurate"),
    # ---------------------------------------------------------------- cross-entropy
    Claim("cross_entropy.matches_reference",
          "C = -sum_j n_j log softmax(z)_j matches the reference for any n >= 0 within "
          "2u((n+2) sum |n_j||l_j| + N1 (n + μ + (1+μ) ln n))",
          r"|\hat C - C| \le 2u\left((n+2)\sum_j |n_j||\ell_j| + \|n\|_1(n + \mu + (1+\mu)\ln n)"
          r"\right)", ("cross_entropy",), "seed section 1; docs/tolerances.md",
          _targets(vocab=True, masks=False),
          lambda env, ex: check_ce_ref(env, ex), (_PROB,)),
    Claim("cross_entropy.lse_form", "C = sum(n) LSE(z) - sum_j n_j z_j (within budgets)",
          r"C = S_n\,\mathrm{LSE}(z) - \langle n, z\rangle", ("cross_entropy", "logsumexp"),
          _SRC_STD, _targets(masks=False), check_ce_lse, (_PROB,)),
    Claim("cross_entropy.gibbs",
          "Gibbs' inequality: C >= H(n) >= 0 for probability targets "
          "(C >= H(n) + S_n log S_n for any n >= 0)",
          r"C(n, z) \ge H(n) \ge 0", ("cross_entropy",), "Gibbs' inequality",
          _targets(normalised=True, masks=False), check_ce_gibbs, ("targets sum to one",)),
    Claim("cross_entropy.zero_targets_ignored",
          "entries with n_j = 0 contribute nothing, even where a_j underflows",
          r"n_j = 0 \Rightarrow \text{no contribution (}0\log 0 = 0\text{)}", ("cross_entropy",),
          _SRC_STD, _targets(kind="zero_where_underflow", masks=False),
          lambda env, ex: check_ce_ref(env, ex), (_PROB,)),
    Claim("cross_entropy.masked_logits",
          "entries with z_j = -inf (masks) and n_j = 0 contribute nothing: 0 log 0 = 0, not "
          "0 * (-inf) = NaN",
          r"z_j = -\infty,\ n_j = 0 \Rightarrow \text{no contribution}", ("cross_entropy",),
          _SRC_STD, lambda dt, inp: _with_mask(dt, inp).flatmap(
              lambda ex: _zero_targets_at_masks(dt, ex)),
          lambda env, ex: check_ce_ref(env, ex), ("targets n >= 0, zero where z = -inf",),
          level="accurate"),
    Claim("cross_entropy.finite",
          "cross-entropy is finite for finite logits wherever the exact value is representable",
          r"C \in \mathbb{F} \Rightarrow \hat C \in \mathbb{F}", ("cross_entropy",), _SRC_STD,
          _targets(masks=False), check_ce_finite, (_PROB,)),
    Claim("cross_entropy.accurate",
          "cross-entropy computed from accurate log-softmax values: sum_j |n_j| tol_acc(l_j) "
          "+ n u sum_j |n_j l_j|",
          r"|\hat C - C| \le \sum_j |n_j|\,\mathrm{tol}^{acc}_j + 2nu\sum_j|n_j\ell_j|",
          ("cross_entropy",), "docs/tolerances.md", _focused_targets,
          lambda env, ex: check_ce_ref(env, ex, accurate=True), (_PROB,), level="accurate"),
    # ---------------------------------------------------------------- gradient
    Claim("cross_entropy_grad.normalised_targets",
          "dC/dz = a - n when the targets sum to one",
          r"\sum_j n_j = 1 \Rightarrow \partial C/\partial z = a - n", ("cross_entropy_grad",),
          "seed section 2.2", _targets(normalised=True), check_grad_ref,
          ("targets sum to one",)),
    Claim("cross_entropy_grad.any_targets",
          "dC/dz = a sum(n) - n for any targets n >= 0 (a - n is wrong when sum(n) != 1)",
          r"\partial C/\partial z = a\,S_n - n", ("cross_entropy_grad",),
          "derived (seed 2.2 without its precondition)", _targets(vocab=True, normalised=False),
          check_grad_ref, (_PROB,)),
    Claim("cross_entropy_grad.sums_to_zero", "the gradient sums to zero (shift invariance of C)",
          r"\sum_j \partial C/\partial z_j = 0", ("cross_entropy_grad",), _SRC_STD, _targets(),
          check_grad_sum, (_PROB,)),
    Claim("cross_entropy_grad.finite_differences",
          "the gradient matches high-precision finite differences of the exact loss",
          r"\partial C/\partial z_j = \lim_{h\to 0}\frac{C(z + he_j) - C(z - he_j)}{2h}",
          ("cross_entropy_grad",), "numerical differentiation in mpmath",
          lambda dt, inp: _small(dt, inp, targets=True), check_grad_fd, (_PROB,),
          examples=0.5),
    Claim("cross_entropy_grad.derivative_of_own_loss",
          "the gradient is the derivative of the target's own cross_entropy",
          r"\hat C(z+\Delta) - \hat C(z-\Delta) \approx \langle \widehat{\nabla C}, 2\Delta\rangle",
          ("cross_entropy", "cross_entropy_grad"), _SRC_STD, _with_dir, check_grad_own_loss,
          (_PROB,)),
    # ---------------------------------------------------------------- dense layer
    Claim("dense_grads.dW", "dW = sum over rows of (a sum(n) - n) x^T",
          r"\partial L/\partial W = \sum_b \delta_b x_b^\top", ("dense_grads",),
          "seed section 2.3, corrected", _dense, _check_dense(0)),
    Claim("dense_grads.db", "db = sum over rows of (a sum(n) - n)",
          r"\partial L/\partial b = \sum_b \delta_b", ("dense_grads",),
          "seed section 2.3, corrected", _dense, _check_dense(1)),
    Claim("dense_grads.empty_batch",
          "a batch of no rows gives dW = 0 and db = 0 (empty sums) and an empty dx",
          r"B = 0 \Rightarrow \partial L/\partial W = 0,\ \partial L/\partial b = 0",
          ("dense_grads",), "empty sum; torch and jax agree", _empty_batch, check_dense_empty,
          kind="contract", examples=0.1),
    Claim("dense_grads.dx", "dx = (a sum(n) - n) W for each row",
          r"\partial L/\partial x_b = W^\top \delta_b", ("dense_grads",),
          "seed section 2.3, corrected", _dense, _check_dense(2)),
]


def _contract_claims() -> list[Claim]:
    out = []
    for fname in ("softmax", "log_softmax", "logsumexp", "softmax_vjp", "cross_entropy",
                  "cross_entropy_grad", "dense_grads"):
        strat = _strategy_for(fname)
        out.append(Claim(f"{fname}.no_mutation", f"{fname} leaves its inputs unchanged",
                         r"\text{inputs unchanged}", (fname,), _SRC_CONTRACT, strat,
                         _contract_no_mutation(fname), kind="contract", examples=0.25))
        out.append(Claim(f"{fname}.shape_and_dtype",
                         f"{fname} returns the specified shape, in the input's dtype",
                         r"\text{shape and dtype as specified}", (fname,), _SRC_CONTRACT, strat,
                         _contract_shape_dtype(fname), kind="contract", examples=0.25))
        if fname != "dense_grads":
            batched = _logits(batches=True) if fname in ("softmax", "log_softmax",
                                                         "logsumexp") else strat
            out.append(Claim(f"{fname}.axis_and_batch",
                             f"{fname} honours axis: batched along any axis equals row by "
                             f"row, and a default axis is the last one",
                             r"f(Z, \mathrm{axis}=k)_{\dots} = f(Z_{\dots,:,\dots})", (fname,),
                             _SRC_CONTRACT, batched, _contract_axis(fname), kind="contract",
                             examples=0.5))
        # Rows of many distinct values, where summation order changes the last bits.
        varied = _logits(regimes=("normal", "wide", "dominant")) if fname in (
            "softmax", "log_softmax", "logsumexp") else strat
        out.append(Claim(f"{fname}.deterministic",
                         f"{fname} gives bitwise identical results for identical inputs",
                         r"f(z) = f(z)", (fname,), _SRC_CONTRACT, varied,
                         _contract_deterministic(fname), kind="contract", examples=1.0))
    return out


_MATH: list[Claim] = [
    Claim("softmax.jacobian_formula",
          "the Jacobian of softmax is diag(a) - a a^T",
          r"\partial a_i/\partial z_j = a_i(\delta_{ij} - a_j)", (), _SRC_STD, _math_rows,
          check_math_jacobian, kind="mathematics", examples=0.2),
    Claim("dense_grads.formula_matches_fd",
          "the dense-layer formulas dW = sum δ x^T, db = sum δ, dx = δ W, δ = a sum(n) - n, "
          "match numerical differentiation of L = sum of C(x W^T + b, n)",
          r"\nabla_{W,b,x} L = (\textstyle\sum_b \delta_b x_b^\top, \sum_b \delta_b, "
          r"W^\top\delta_b)", (), "seed section 2.3, corrected", _math_dense, _check_dense_fd,
          kind="mathematics", examples=0.2),
    Claim("seed.2_1_jacobian_diagonal",
          "seed 2.1: da/dZ = a(1 - a), read as the diagonal of the Jacobian",
          r"\partial a_i/\partial z_i = a_i(1 - a_i)", (), "seed section 2.1", _math_rows,
          _seed_check("2_1_diagonal"), kind="mathematics", examples=0.2),
    Claim("seed.2_1_chain_rule",
          "seed 2.1: da/dZ = a(1 - a), used as the derivative of softmax in the chain rule",
          r"v^\top \frac{\partial a}{\partial z} = v \odot a(1 - a)", (), "seed section 2.1",
          _math_rows, _seed_check("2_1_chain"), kind="mathematics", expect="refuted",
          correct="da_i/dz_j = a_i(δ_ij - a_j): the off-diagonal terms -a_i a_j are missing; "
                  "the chain rule needs the full Jacobian, v^T J = a (v - <v, a>)",
          examples=0.2),
    Claim("seed.2_2_dC_da",
          "seed 2.2: dC/da = a - n",
          r"\partial C/\partial a_i = a_i - n_i", (), "seed section 2.2", _math_rows,
          _seed_check("2_2_dC_da"), kind="mathematics", expect="refuted",
          correct="dC/da_i = -n_i / a_i; a - n is dC/dz, the derivative with respect to the "
                  "logits, and only when sum(n) = 1", examples=0.2),
    Claim("seed.2_2_dC_dz_normalised",
          "seed 2.2 (as the derivative with respect to the logits): dC/dz = a - n when "
          "sum(n) = 1",
          r"\textstyle\sum_j n_j = 1 \Rightarrow \partial C/\partial z = a - n", (),
          "seed section 2.2", _math_rows, _seed_check("2_2_normalised"), ("targets sum to one",),
          kind="mathematics", examples=0.2),
    Claim("seed.2_2_dC_dz_unnormalised",
          "seed 2.2 without its precondition: dC/dz = a - n for any targets n >= 0",
          r"\partial C/\partial z = a - n", (), "seed section 2.2", _math_rows,
          _seed_check("2_2_unnormalised"), kind="mathematics", expect="refuted",
          correct="dC/dz = a sum(n) - n; it reduces to a - n only when sum(n) = 1",
          examples=0.2),
    Claim("seed.2_3_weight_gradient",
          "seed 2.3: dC/dw^(L) = (a - n) a(1 - a) w^(L-1)",
          r"\partial C/\partial W^{(L)} = (a - n)\,a(1-a)\,w^{(L-1)}", (), "seed section 2.3",
          _two_layer, _check_seed_weights, kind="mathematics", expect="refuted",
          correct="dC/dW^(L) = (a sum(n) - n) (a^(L-1))^T: (a - n) already is dC/dz, so the "
                  "factor a(1 - a) counts the activation derivative twice, and dz/dW is the "
                  "previous layer's activation a^(L-1), not its weights w^(L-1)", examples=0.2),
    Claim("seed.class_sigmoid_mse",
          "the class's chain rule for a sigmoid output with C = sum (a - y)^2: "
          "dC/dW = 2(a - y) a(1 - a) a^(L-1)",
          r"\partial C/\partial W = 2(a - y)\,\sigma'(z)\,a^{(L-1)}", (),
          "seed section 2 (the class's sigmoid network)", _two_layer, _check_sigmoid_mse,
          kind="mathematics", examples=0.2),
]

#: The whole specification, in catalogue order.
CLAIMS: tuple[Claim, ...] = tuple(_NUMERIC + _contract_claims() + _MATH)

_BY_ID = {c.id: c for c in CLAIMS}
assert len(_BY_ID) == len(CLAIMS), "claim ids must be unique"


def get_claim(claim_id: str) -> Claim:
    return _BY_ID[claim_id]


def select(pattern: str | None = None, *, level: str = "stable",
           kinds: Sequence[str] = ("numerical", "contract")) -> list[Claim]:
    """Claims matching a glob-like pattern (comma-separated; ``*`` wildcards; a bare prefix
    such as ``softmax`` selects ``softmax.*``), at or below the given level."""
    import fnmatch

    levels = ("stable",) if level == "stable" else ("stable", "accurate")
    chosen = [c for c in CLAIMS if c.level in levels and c.kind in kinds]
    if not pattern:
        return chosen
    pats = [p.strip() for p in pattern.split(",") if p.strip()]
    out = []
    for c in chosen:
        for p in pats:
            if fnmatch.fnmatchcase(c.id, p) or c.id == p or c.id.startswith(p + "."):
                out.append(c)
                break
    return out
