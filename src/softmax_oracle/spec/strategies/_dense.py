"""A dense layer z = x W^T + b feeding softmax cross-entropy, with targets."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from softmax_oracle.oracle.dtypes import DType, get_dtype
from softmax_oracle.spec.strategies._common import (
    Array,
    Draw,
    Example,
    _cast,
    _check_size,
    _Gen,
    _limits,
    _log_uniform,
    _quantize,
    _with_bound,
)
from softmax_oracle.spec.strategies._targets import TARGET_KINDS, _fit_targets, _targets


def _dense_bound(x: Array, w: Array, b: Array) -> float:
    """max of |x| |W|^T + |b| over batch and classes: bounds every logit and partial sum."""
    return float(np.max(np.abs(x) @ np.abs(w).T + np.abs(b)))


def dense_layers(dtype: DType | str, *, max_size: int = 16) -> st.SearchStrategy[Example]:
    """A dense layer z = x W^T + b with targets: ``dict(W, b, x, n, regime)``.

    Shapes: W (k, m), b (k,), x (B, m), n (B, k) with k, m in 1..max_size and B in 1..4. No -inf
    anywhere; |W| and |x| |W|^T + |b| stay within min(huge, r_max / 8) entrywise, so the logits
    and every partial sum are finite in the format. Tags: ``dense``, ``mixed_scale`` (rows and/or
    columns of W scaled by 10**e, e in -3..3), ``large_logits`` (a logit beyond the overflow
    threshold of exp), ``square``, ``batch`` and the target tags of :func:`logits_and_targets`.
    """
    dt = get_dtype(dtype)
    size = _check_size("max_size", max_size)

    @st.composite
    def strategy(draw: Draw) -> Example:
        # Regime choices first (see _draw_logits), then sizes, then the generator's seed.
        kind = draw(st.sampled_from(TARGET_KINDS))
        mixed = draw(st.sampled_from((None, "rows", "columns", "both")))
        large = draw(st.booleans())
        k = int(draw(st.integers(1, size)))
        m = int(draw(st.integers(1, size))) if draw(st.booleans()) else k
        batch = int(draw(st.integers(1, 4)))
        b_scale = draw(st.sampled_from((1.0, 0.0)))
        bits = draw(st.integers(0, 64))  # see _quantize
        lim = _with_bound(_limits(dt), dt.rmax / 8)
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        g = _Gen(draw, rng, dt, lim)
        tags = ["dense"]
        w = rng.normal(0.0, 1 / math.sqrt(m), (k, m))
        w = _quantize(w, bits) if np.any(_quantize(w, bits)) else w  # W = 0 cannot be scaled
        b = _quantize(rng.normal(0.0, 1.0, k) * b_scale, bits)
        x = _quantize(rng.normal(0.0, 1.0, (batch, m)), bits)
        if mixed is not None:
            tags.append("mixed_scale")
            if mixed in ("rows", "both"):
                w *= 10.0 ** rng.integers(-3, 4, (k, 1))
            if mixed in ("columns", "both"):
                w *= 10.0 ** rng.integers(-3, 4, (1, m))
        bound = max(_dense_bound(x, w, b), float(np.max(np.abs(w))))  # W itself must fit too
        if bound > lim.huge:
            w, b = w * (lim.huge / bound), b * (lim.huge / bound)
        if large:
            tags.append("large_logits")
            target = _log_uniform(g, 1.5 * lim.overflow_lo, lim.huge / 3)
            widest = max(_dense_bound(x, w, 0 * b), float(np.max(np.abs(w))), 1e-300)
            scale = target / widest
            w, b = w * scale, b * scale
            b = np.clip(b, -target, target)
            j = int(rng.integers(0, k))
            b[j] = target - float(x[0] @ w[j])  # logit (0, j) = target
        if k == m:
            tags.append("square")
        if batch > 1:
            tags.append("batch")
        w_c, b_c, x_c = _cast(dt, w), _cast(dt, b), _cast(dt, x)
        z = x_c.astype(np.float64) @ w_c.astype(np.float64).T + b_c.astype(np.float64)
        n, target_tags = _targets(g, z, kind)
        return {
            "W": w_c,
            "b": b_c,
            "x": x_c,
            "n": _fit_targets(dt, z, n, kind),
            "regime": (*tags, *target_tags),
        }

    return strategy()
