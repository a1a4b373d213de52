"""The inputs of each claim: adapters from a profile's sizes (``Inputs``) to the adversarial
strategies, and the few inputs that only one claim needs (shifted, permuted or masked logits,
+inf entries, directions, empty batches, the small exact inputs of the mathematics claims).

Each adapter takes the dtype and the ``Inputs`` and returns a Hypothesis strategy of examples:
dicts such as ``{z, axis, regime}``, with ``n`` (targets), ``v`` (a cotangent) or the extra
fields a claim's check reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

import softmax_oracle.spec.strategies as S
from softmax_oracle.oracle.dtypes import DType, get_dtype

Example = dict[str, Any]


@dataclass(frozen=True)
class Inputs:
    """How big examples may get (from the profile)."""

    max_size: int = 64
    dense_size: int = 8
    vocab_size: int = 0  # rows up to this long now and then, for the claims that opt in
    loss: Any = None  # the target's LossSupport: the loss API's forms and options it has


def logits(vocab: bool = False, **kw: Any) -> Callable[[DType, Inputs],
                                                       st.SearchStrategy[Example]]:
    """Logits; with ``vocab``, vocabulary-sized rows too where the profile asks for them."""
    return lambda dt, inp: S.logits(dt, max_size=inp.max_size,
                                    vocab_size=inp.vocab_size if vocab else 0, **kw)


def with_mask(dt: DType, inp: Inputs, full: bool = False) -> st.SearchStrategy[Example]:
    """Logits with at least one -inf entry (and, if full, sometimes a whole row of them); unless
    full, every row keeps a finite entry, so rows have at least two entries."""

    def add(ex: Example) -> st.SearchStrategy[Example]:
        def apply(seed: int) -> Example:
            z = ex["z"].copy()
            moved = np.moveaxis(z, ex["axis"], -1)
            rng = np.random.default_rng(seed)
            mask = rng.random(moved.shape) < rng.uniform(0.2, 0.8)
            keep = None
            if not full:
                keep = rng.integers(0, moved.shape[-1], size=moved.shape[:-1])
                np.put_along_axis(mask, keep[..., None], False, axis=-1)
            elif moved.ndim > 1 and rng.random() < 0.5:
                mask[(0,) * (moved.ndim - 1)] = True
            if not mask.any():  # none drawn: mask an entry of one row (not the one it keeps)
                rows = mask.reshape(-1, moved.shape[-1])
                r = int(rng.integers(0, rows.shape[0]))
                if keep is None:
                    rows[r, int(rng.integers(0, moved.shape[-1]))] = True
                else:
                    k = int(keep.reshape(-1)[r])
                    rows[r, (k + int(rng.integers(1, moved.shape[-1]))) % moved.shape[-1]] = True
            moved[mask] = -np.inf
            return {**ex, "z": z, "regime": (*ex.get("regime", ()), "mask")}
        return st.integers(0, 2**32 - 1).map(apply)

    shortest = 1 if full else 2
    return S.logits(dt, max_size=inp.max_size, masks=False).filter(
        lambda ex: ex["z"].size > 0 and ex["z"].shape[ex["axis"]] >= shortest).flatmap(add)


def with_shift(dt: DType, inp: Inputs) -> st.SearchStrategy[Example]:
    return S.logits(dt, max_size=inp.max_size).flatmap(
        lambda ex: S.representable_shift(dt, ex["z"]).map(lambda c: {**ex, "c": c}))


def with_perm(dt: DType, inp: Inputs) -> st.SearchStrategy[Example]:
    return S.logits(dt, max_size=inp.max_size).flatmap(
        lambda ex: S.permutations(ex["z"].shape[ex["axis"]]).map(
            lambda p: {**ex, "perm": np.asarray(p)}))


def focused(**kw: Any) -> Callable[[DType, Inputs], st.SearchStrategy[Example]]:
    """Any logits, or (as often) the regimes where accuracy is lost: LSE near zero (e.g.
    [0, -40]) and one dominant logit, where log(1 + s) must be log1p(s). Vocabulary-sized rows
    where the profile asks for them."""
    return lambda dt, inp: st.one_of(
        S.logits(dt, max_size=inp.max_size, vocab_size=inp.vocab_size, **kw),
        S.logits(dt, max_size=inp.max_size, regimes=("lse_zero", "dominant"),
                 vocab_size=inp.vocab_size, **kw))


def focused_targets(dt: DType, inp: Inputs) -> st.SearchStrategy[Example]:
    return st.one_of(S.logits_and_targets(dt, max_size=inp.max_size, masks=False,
                                          vocab_size=inp.vocab_size),
                     S.logits_and_targets(dt, max_size=inp.max_size, masks=False,
                                          regimes=("lse_zero", "dominant"),
                                          vocab_size=inp.vocab_size))


def zero_targets_at_masks(dt: DType, ex: Example) -> st.SearchStrategy[Example]:
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


def targets(vocab: bool = False, **kw: Any) -> Callable[[DType, Inputs],
                                                        st.SearchStrategy[Example]]:
    """Logits and targets; with ``vocab``, vocabulary-sized rows where the profile asks."""
    return lambda dt, inp: S.logits_and_targets(
        dt, max_size=inp.max_size, vocab_size=inp.vocab_size if vocab else 0, **kw)


def cotangents(dt: DType, inp: Inputs) -> st.SearchStrategy[Example]:
    return S.logits_and_cotangent(dt, max_size=inp.max_size)


def dense(dt: DType, inp: Inputs) -> st.SearchStrategy[Example]:
    return S.dense_layers(dt, max_size=inp.dense_size)


def small(dt: DType, inp: Inputs, targets: bool = False) -> st.SearchStrategy[Example]:
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


def with_pos_inf(dt: DType, inp: Inputs) -> st.SearchStrategy[Example]:
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


def with_dir(dt: DType, inp: Inputs) -> st.SearchStrategy[Example]:
    return S.logits_and_targets(dt, max_size=inp.max_size, masks=False).flatmap(
        lambda ex: st.integers(0, 2**32 - 1).map(lambda s: {**ex, "dir_seed": s}))


def empty_batch(dt: DType, inp: Inputs) -> st.SearchStrategy[Example]:
    return dense(dt, inp).map(lambda ex: {**ex, "x": ex["x"][:0], "n": ex["n"][:0],
                                          "regime": (*ex.get("regime", ()), "empty_batch")})


def inputs_for(fname: str) -> Callable[[DType, Inputs], st.SearchStrategy[Example]]:
    if fname in ("softmax", "log_softmax", "logsumexp"):
        return logits()
    if fname == "softmax_vjp":
        return cotangents
    if fname == "dense_grads":
        return dense
    if fname in ("cross_entropy_loss", "cross_entropy_loss_grad"):
        return loss()
    if fname == "linear_cross_entropy":
        return fused()
    return targets()


# =============================================================================== the loss API


def loss(vocab: bool = False, **kw: Any) -> Callable[[DType, Inputs], st.SearchStrategy[Example]]:
    """Logits (B, K), class indices or probabilities, and the options the target supports."""
    return lambda dt, inp: S.loss_inputs(dt, max_size=inp.max_size, support=inp.loss,
                                         vocab_size=inp.vocab_size if vocab else 0, **kw)


def loss_scaled(dt: DType, inp: Inputs) -> st.SearchStrategy[Example]:
    """Class-index loss inputs with weights and a power-of-two scale for them (the mean of
    probability targets divides by B, so it scales with the weights)."""
    return S.loss_inputs(dt, max_size=inp.max_size, support=inp.loss, need=("weight",),
                         forms=("index",), reductions=("mean",)).flatmap(
        lambda ex: st.integers(-4, 4).filter(bool).map(lambda k: {**ex, "scale_exp": k}))


def fused(small_: bool = False, **kw: Any) -> Callable[[DType, Inputs],
                                                       st.SearchStrategy[Example]]:
    """A dense layer with the loss API's targets and options (small for finite differences)."""
    return lambda dt, inp: S.fused_inputs(dt, max_size=min(inp.dense_size, 4 if small_ else 8),
                                          max_batch=3 if small_ else 4, support=inp.loss, **kw)


# =============================================================================== mathematics


def math_rows(dt: DType, inp: Inputs) -> st.SearchStrategy[Example]:
    return small(get_dtype("float64"), Inputs(max_size=5), targets=True)


def two_layer(dt: DType, inp: Inputs) -> st.SearchStrategy[Example]:
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


def math_dense(dt: DType, inp: Inputs) -> st.SearchStrategy[Example]:
    return S.dense_layers(get_dtype("float64"), max_size=3).filter(
        lambda ex: float(np.max(np.abs(ex["x"] @ ex["W"].T + ex["b"]), initial=0)) < 50)
