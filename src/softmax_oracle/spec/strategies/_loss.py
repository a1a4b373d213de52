"""Inputs of the loss API: logits (B, K), class indices or probability targets, and options.

Class labels come with none, some or every row ignored, with ``ignore_index`` -100 or a class in
range (then every row of that class is ignored); weights are all ones, random, with zeros, or with
extreme ratios (10**±k); label smoothing is 0, 0.1, 1 or anywhere in [0, 1]; batches run from no
rows to the profile's size, now and then to a thousand rows (the reductions' sums), or one
vocabulary-sized row. Only the forms, reductions and options
a target supports are drawn (``support``), so nothing it does not claim is judged.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from softmax_oracle.oracle.dtypes import DType, get_dtype
from softmax_oracle.spec.strategies._common import (
    Array,
    Draw,
    Example,
    _cast,
    _Gen,
    _limits,
)
from softmax_oracle.spec.strategies._logits import _check_families, _draw_logits
from softmax_oracle.spec.strategies._targets import _fit_targets, _target_index, _targets

__all__ = ["LOSS_REGIMES", "fused_inputs", "loss_inputs"]

#: The longest batch drawn (now and then; rows of at most 4 classes).
LONG_BATCH = 1024

#: Tags of the loss inputs, besides the logits' own.
LOSS_REGIMES = ("target:index", "target:probability", "ignore:none", "ignore:some", "ignore:all",
                "ignore:in_range", "weight:ones", "weight:random", "weight:zeros",
                "weight:extreme", "smoothing", "empty_batch", "long_batch")


#: The reductions and the ignored rows, the richest first: Hypothesis draws the first choice more
#: often than the others and shrinks toward it. The mean (PyTorch's default) divides by D, and
#: "some" rows ignored leaves both kinds of rows.
_REDUCTIONS = ("mean", "sum", "none")
_IGNORE = ("some", "none", "all")


def _weights(g: _Gen, classes: int, kind: str) -> Array:
    if kind == "ones":
        return np.ones(classes)
    w = g.rng.random(classes) + 0.05
    if kind == "zeros":
        w[g.rng.random(classes) < 0.5] = 0.0
    elif kind == "extreme":
        span = 8 if g.dtype.name == "float16" else 20
        w *= 10.0 ** g.rng.integers(-span // 2, span // 2 + 1, classes)
    return w


def _magnitude(z: Array, t: Array) -> float:
    """A float64 bound on every loss the example can produce: S (spread + log K) per row."""
    finite = np.where(np.isfinite(z), z, 0.0)
    spread = finite.max(axis=-1) - finite.min(axis=-1) + math.log(max(z.shape[-1], 2)) + 1
    return float(np.sum(t.sum(axis=-1) * spread)) if z.size else 0.0


class _Choice:
    """The structural choices of one example, drawn first (see ``_draw_logits``)."""

    def __init__(self, draw: Draw, forms: tuple[str, ...], reductions: tuple[str, ...],
                 options: set[str], need: Collection[str], ignore: Collection[str]) -> None:
        self.form = draw(st.sampled_from(forms))
        self.reduction = draw(st.sampled_from(reductions))
        self.use = {o: (o in need) or (o in options and draw(st.booleans()))
                    for o in ("weight", "ignore_index", "label_smoothing")}
        if self.form == "probability":
            self.use["ignore_index"] = False  # applies to class indices only
        self.wkind = draw(st.sampled_from(("ones", "random", "zeros", "extreme")))
        eps = draw(st.sampled_from((0.1, 1.0, None)))
        self.eps = draw(st.floats(0.0, 1.0, allow_nan=False)) if eps is None else eps
        self.ignore = draw(st.sampled_from(tuple(ignore)))
        self.in_range = draw(st.booleans())
        self.soft = draw(st.sampled_from(("one_hot", "soft", "unnormalised")))


def _support(support: Any, forms: Collection[str], reductions: Collection[str] | None,
             need: Collection[str]) -> tuple[tuple[str, ...], tuple[str, ...], set[str]] | None:
    """The target forms, reductions and options to draw from, or None if the target supports
    no form, no reduction, or not every option needed."""
    sup_forms = tuple(f for f in forms if support is None or f in support.targets)
    sup_red = tuple(r for r in (reductions or _REDUCTIONS)
                    if support is None or r in support.reductions)
    sup_opts = set(("weight", "ignore_index", "label_smoothing") if support is None
                   else support.options)
    if not sup_forms or not sup_red or not set(need) <= sup_opts:
        return None
    return sup_forms, sup_red, sup_opts


def _targets_and_options(g: _Gen, c: _Choice, rows: Array,
                         ) -> tuple[Array, dict[str, Any], Array, Array | None, list[str]]:
    """(y, options without the weight, effective targets t before the weights (float64),
    weights, tags)."""
    dt = g.dtype
    B, classes = rows.shape
    options: dict[str, Any] = {"reduction": c.reduction}
    tags: list[str] = []
    weight = _cast(dt, _weights(g, classes, c.wkind)).astype(np.float64) if c.use["weight"] \
        else None
    if c.form == "index":
        y = _target_index(g, rows)[0].astype(np.int64) if B else np.zeros(0, np.int64)
        tags.append("target:index")
        if c.use["ignore_index"]:
            ii = int(g.rng.integers(0, classes)) if c.in_range and classes > 1 else -100
            options["ignore_index"] = ii
            if c.ignore != "all":  # rows of the ignored class: only where asked for
                y[y == ii] = (ii + 1) % classes
            if c.ignore == "all":
                y[:] = ii
            elif c.ignore == "some" and B:  # both kinds of rows wherever B >= 2
                drop = (g.rng.permutation(B) < g.rng.integers(1, B) if B > 1
                        else g.rng.random(B) < 0.5)
                y[drop] = ii
            tags.append(f"ignore:{c.ignore}")
            if c.in_range:
                tags.append("ignore:in_range")
        t = np.zeros(rows.shape)
        keep = y != options.get("ignore_index", -100)
        t[np.arange(B)[keep], y[keep]] = 1.0
    else:
        q, qtags = _targets(g, rows, c.soft)
        y = _fit_targets(dt, rows, q, "soft")
        t = y.astype(np.float64)
        tags.extend(("target:probability", *qtags))
    if c.use["label_smoothing"]:
        options["label_smoothing"] = float(c.eps)
        t = (1 - c.eps) * t + c.eps / max(classes, 1)
        tags.append("smoothing")
    if weight is not None:
        tags.append(f"weight:{c.wkind}")
    return y, options, t, weight, tags


def _fit(dt: DType, z: Array, t: Array, weight: Array | None,
         ) -> tuple[Array, Array | None]:
    """Halve the logits (exactly) until every loss fits; where even zero logits do not (extreme
    weight ratios with smoothing: the mean divides by a tiny weight), drop the weights."""
    while _too_large(dt, z, t if weight is None else t * weight, weight) and np.any(z != 0):
        z = z / 2.0
    if weight is not None and _too_large(dt, z, t * weight, weight):
        return _fit(dt, z, t, None)
    # Still too large with zero logits (large unnormalised targets over many rows): outside the
    # domain the budgets are derived for, where even the exact sum of the rows' losses may not
    # be representable. Emitting it anyway was a false alarm on torch's float16 mean.
    assume(not _too_large(dt, z, t if weight is None else t * weight, weight))
    return z, weight


def _too_large(dt: DType, z: Array, t: Array, weight: Array | None) -> bool:
    """Could a loss of this example (or its mean, divided by the smallest weight) come near
    the format's largest number?"""
    wmin = 1.0 if weight is None else float(np.min(weight[weight > 0], initial=1.0))
    return _magnitude(z, t) / min(wmin, 1.0) > _limits(dt).rmax / 64


def loss_inputs(dtype: DType | str, *, max_size: int = 16, max_batch: int = 8,
                vocab_size: int = 0, support: Any = None,
                forms: Collection[str] = ("index", "probability"),
                reductions: Collection[str] | None = None,
                need: Collection[str] = (), ignore: Collection[str] = _IGNORE,
                regimes: Collection[str] | None = None) -> st.SearchStrategy[Example]:
    """``dict(z, y, options, regime)``: logits (B, K) in the format, targets ``y`` (int64 class
    indices (B,) or probabilities (B, K) in the format) and the keyword ``options`` to pass.

    ``support`` (a target's ``LossSupport``) limits the forms, reductions and options drawn;
    ``need`` lists options every example must use. Losses stay below r_max / 64 of the format
    (logits are halved, exactly, until they do)."""
    dt = get_dtype(dtype)
    families = _check_families(regimes)
    supported = _support(support, forms, reductions, need)
    if supported is None:
        return st.nothing()
    lim = _limits(dt)

    @st.composite
    def strategy(draw: Draw) -> Example:
        c = _Choice(draw, *supported, need, ignore)
        size = draw(st.integers(0, 31))  # 0: no rows; 1: a long batch; else the usual
        long_batch = int(draw(st.integers(64, LONG_BATCH))) if size == 1 else 0
        drawn = _draw_logits(draw, dt, max_size=max_size, masks=False, full_masks=False,
                             batches=True, families=families, bound=lim.huge,
                             vocab_size=vocab_size)
        rows = drawn.rows[:max_batch]
        tags = list(drawn.regime)
        g = _Gen(draw, np.random.default_rng(draw(st.integers(0, 2**32 - 1))), dt, lim)
        if size == 0:
            rows = rows[:0]
            tags.append("empty_batch")
        elif long_batch:  # the reductions' sums over many rows, in the format
            picks = g.rng.integers(0, rows.shape[0], long_batch)
            rows = rows[picks, : min(rows.shape[1], 4)]
            tags.append("long_batch")
        elif c.ignore == "some" and c.use["ignore_index"] and rows.shape[0] == 1:
            # some rows ignored, some kept: a second row, the first one's logits permuted
            rows = np.concatenate([rows, rows[:, g.rng.permutation(rows.shape[1])]])
        y, options, t, weight, more = _targets_and_options(g, c, rows)
        z, weight = _fit(dt, rows, t, weight)
        assume(weight is not None or "weight" not in need)  # rare: extreme weights that overflow
        if weight is not None:
            options["weight"] = _cast(dt, weight)
        return {"z": _cast(dt, z), "y": y, "options": options, "regime": tuple(tags + more)}

    return strategy()


def fused_inputs(dtype: DType | str, *, max_size: int = 8, max_batch: int = 4,
                 long_batch: int = 0,
                 support: Any = None, forms: Collection[str] = ("index", "probability"),
                 reductions: Collection[str] | None = None, need: Collection[str] = (),
                 ignore: Collection[str] = _IGNORE) -> st.SearchStrategy[Example]:
    """``dict(x, W, b, y, options, regime)`` for ``linear_cross_entropy``: x (B, m), W (K, m),
    b (K,) in the format, with logits x W^T + b up to the format's overflow range.

    ``long_batch`` > 0 makes one example in eight a long batch of ``long_batch`` / 2 to
    ``long_batch`` rows whose features have nonzero means, as a language model's hidden states
    do: each entry of dW then sums B contributions of mostly one sign, whose partial sums grow
    with the batch, so that an accumulator across the batch kept in the input's format (rounded
    after every chunk of rows) loses more than the final rounding of a wide one. Its logits are
    moderate (weights of scale 1, at least two classes), where the budget's allowance for the
    logits' own rounding, which grows with |z|, does not hide that loss."""
    dt = get_dtype(dtype)
    supported = _support(support, forms, reductions, need)
    if supported is None:
        return st.nothing()
    lim = _limits(dt)

    @st.composite
    def strategy(draw: Draw) -> Example:
        c = _Choice(draw, *supported, need, ignore)
        classes = int(draw(st.integers(1, max_size)))
        inner = int(draw(st.integers(1, max_size)))
        batch = int(draw(st.integers(0, max_batch)))
        long = long_batch > 0 and draw(st.integers(0, 7)) == 0
        if long:
            batch = int(draw(st.integers(long_batch // 2, long_batch)))
            classes = max(classes, 2)
        scale = draw(st.sampled_from((1.0, 4.0, 30.0)))
        large = draw(st.booleans())
        if long:
            scale, large = 1.0, False
        g = _Gen(draw, np.random.default_rng(draw(st.integers(0, 2**32 - 1))), dt, lim)
        rng = g.rng
        W = _cast(dt, rng.normal(0.0, scale / math.sqrt(inner), (classes, inner)))
        x64 = rng.normal(0.0, 1.0, (batch, inner))
        if long:  # features with nonzero means
            x64 = x64 + rng.normal(0.0, 2.0, inner)
        x = _cast(dt, x64)
        b = _cast(dt, rng.normal(0.0, 1.0, classes))
        tags = ["fused"] + (["large_logits"] if large else []) + (["long_batch"] if long else [])
        if large:  # a logit beyond the overflow threshold of exp in the format
            W = _cast(dt, W.astype(np.float64) * (1.5 * lim.overflow_lo / max(scale, 1.0)))
        W64, x64, b64 = (a.astype(np.float64) for a in (W, x, b))
        rows = x64 @ W64.T + b64
        y, options, t, weight, more = _targets_and_options(g, c, rows)
        tw = t if weight is None else t * weight
        while (_too_large(dt, rows, tw, weight) or np.max(np.abs(rows), initial=0) > lim.huge) \
                and (np.any(W64 != 0) or np.any(b64 != 0)):
            W64, b64 = W64 / 2.0, b64 / 2.0  # exact
            rows = x64 @ W64.T + b64
        if weight is not None and _too_large(dt, rows, tw, weight):
            weight = None
        # as in _fit: zero logits, still too large
        assume(not _too_large(dt, rows, t if weight is None else t * weight, weight))
        if weight is not None:
            options["weight"] = _cast(dt, weight)
        return {"x": x, "W": _cast(dt, W64), "b": _cast(dt, b64), "y": y, "options": options,
                "regime": tuple(tags + more + (["empty_batch"] if batch == 0 else []))}

    return strategy()
