"""Cross-entropy targets and softmax-VJP cotangents, drawn on top of logits."""

from __future__ import annotations

from collections.abc import Collection

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
    _log_softmax,
    _log_uniform,
    _quantize,
)
from softmax_oracle.spec.strategies._logits import (
    LOGIT_FAMILIES,
    _check_families,
    _draw_logits,
)
from softmax_oracle.spec.strategies._shapes import _check_min_size, _check_vocab

#: Target kinds for cross-entropy, in the order they are drawn.
TARGET_KINDS: tuple[str, ...] = (
    "one_hot",
    "label_smoothed",
    "soft",
    "zero_where_underflow",
    "near_softmax",
    "unnormalised",
)
_NORMALISED_KINDS = TARGET_KINDS[:-1]

#: Cotangent families for the softmax VJP.
COTANGENT_FAMILIES: tuple[str, ...] = (
    "normal",
    "constant",  # c * ones: the VJP must annihilate it
    "nearly_constant",
    "one_hot",
    "huge",
    "tiny",
    "subnormal",
)


# --------------------------------------------------------------------------------------------------
# Cross-entropy targets
# --------------------------------------------------------------------------------------------------


def _target_index(g: _Gen, z: Array) -> tuple[Array, str]:
    """One finite index per row: at the maximum, the minimum, an underflowing entry, or anywhere."""
    finite = np.isfinite(z)
    where = g.draw(st.sampled_from(("max", "min", "underflow", "random")))
    lowest = np.argmin(np.where(finite, z, np.inf), axis=-1)
    if where == "max":
        return np.argmax(z, axis=-1), where
    if where == "min":
        return lowest, where
    keys = g.rng.random(z.shape)
    if where == "underflow":
        log_p = _log_softmax(z)
        candidates = finite & (log_p < g.lim.ln_underflow)
        pick = np.argmax(np.where(candidates, keys, -1.0), axis=-1)
        return np.where(candidates.any(axis=-1), pick, lowest), where
    return np.argmax(np.where(finite, keys, -1.0), axis=-1), where


def _random_distribution(g: _Gen, support: Array) -> Array:
    """A random probability vector per row on the given support (each row has one)."""
    alpha = g.draw(st.sampled_from((1.0, 0.1, 10.0)))
    weights = np.where(support, g.rng.gamma(alpha, 1.0, support.shape), 0.0)
    empty = weights.sum(axis=-1) == 0  # all gamma draws underflowed: put the mass on one entry
    if empty.any():
        first = np.argmax(support, axis=-1)
        weights[empty, first[empty]] = 1.0
    return weights / weights.sum(axis=-1, keepdims=True)


def _targets(g: _Gen, z: Array, kind: str) -> tuple[Array, tuple[str, ...]]:
    """Targets n >= 0 (float64, rows layout) of one kind, zero wherever z is -inf."""
    rows = z.shape[0]
    finite = np.isfinite(z)
    tags = [f"target:{kind}"]
    if kind in ("one_hot", "label_smoothed"):
        index, where = _target_index(g, z)
        tags.append(f"target_at:{where}")
        hot = np.zeros(z.shape)
        hot[np.arange(rows), index] = 1.0
        if kind == "one_hot":
            return hot, tuple(tags)
        eps = g.draw(st.sampled_from((0.1, 0.01)))
        spread = np.where(finite, eps / finite.sum(axis=-1, keepdims=True), 0.0)
        return (1 - eps) * hot + spread, tuple(tags)
    if kind == "soft":
        return _random_distribution(g, finite), tuple(tags)
    if kind == "zero_where_underflow":
        log_p = _log_softmax(z)
        support = finite & (log_p >= g.lim.ln_underflow)  # the row maximum is always in it
        return _random_distribution(g, support), tuple(tags)
    if kind == "near_softmax":
        with np.errstate(under="ignore"):
            p = np.exp(_log_softmax(z))
        noise = g.draw(st.sampled_from((0.0, g.lim.u, 16 * g.lim.u)))
        return p * (1 + noise * np.clip(g.rng.standard_normal(z.shape), -4, 4)), tuple(tags)
    # unnormalised: counts 0..5 scaled by 10**k; a row summing to exactly 1 is doubled
    counts = np.where(finite, g.rng.integers(0, 6, z.shape), 0).astype(np.float64)
    counts *= 10.0 ** g.draw(st.integers(-3, 3))
    return counts, tuple(tags)


def _fit_targets(dtype: DType, z: Array, n: Array, kind: str) -> Array:
    """Cast targets to the format, keeping sum(n) and sum(n) * max|z| below r_max / 4 per row
    (and sum != 1)."""
    lim = _limits(dtype)
    # (1 + 4u): room for the rounding of logits that are computed in the format (dense layers)
    zmax = np.max(np.where(np.isfinite(z), np.abs(z), 0.0), axis=-1) * (1 + 4 * dtype.u)
    while True:
        cast = _cast(dtype, n)
        values = cast.astype(np.float64)
        sums = values.sum(axis=-1)
        if kind == "unnormalised" and np.any(sums == 1.0):
            n = np.where((sums == 1.0)[:, None], 2 * n, n)
            continue
        # sum(n) itself is formed in the format by dC/dz = a sum(n) - n: it must fit too.
        if np.all(sums * zmax < lim.rmax / 4) and np.all(sums < lim.rmax / 4):
            return cast
        n = n / 10.0  # only unnormalised targets can get here


def _check_kind(kind: str | None, normalised: bool | None) -> tuple[str, ...]:
    allowed = {None: TARGET_KINDS, True: _NORMALISED_KINDS, False: ("unnormalised",)}[normalised]
    if kind is None:
        return allowed
    if kind not in TARGET_KINDS:
        raise ValueError(
            f"kind={kind!r} is not a target kind; use one of {', '.join(TARGET_KINDS)}"
        )
    if kind not in allowed:
        raise ValueError(
            f"kind={kind!r} contradicts normalised={normalised!r}; drop one of them "
            f"(normalised=True allows {', '.join(_NORMALISED_KINDS)})"
        )
    return (kind,)


def logits_and_targets(
    dtype: DType | str,
    *,
    max_size: int = 64,
    kind: str | None = None,
    normalised: bool | None = None,
    masks: bool = True,
    regimes: Collection[str] | None = None,
    vocab_size: int = 0,
    min_size: int = 1,
) -> st.SearchStrategy[Example]:
    """Logits with cross-entropy targets: ``dict(z, axis, n, regime)``, ``n`` shaped like ``z``.

    ``n >= 0`` is finite, in the same format, and exactly 0 wherever ``z`` is -inf. Per softmax
    row, ``sum(n) * max|z| < r_max / 4``, so the true cross-entropy is finite and representable
    (logits stay within r_max / 8, which matters in float16). ``kind`` is one of
    :data:`TARGET_KINDS`; ``normalised=True`` restricts to kinds whose rows sum to one up to
    rounding, ``normalised=False`` to ``"unnormalised"``. ``regimes`` limits the logit families
    and ``vocab_size`` adds vocabulary-sized rows, as in :func:`logits`; rows have at least
    ``min_size`` entries.
    """
    dt = get_dtype(dtype)
    size = _check_size("max_size", max_size)
    kinds = _check_kind(kind, normalised)
    families = _check_families(regimes)
    vocab = _check_vocab(vocab_size)
    least = _check_min_size(min_size, size, vocab)

    @st.composite
    def strategy(draw: Draw) -> Example:
        chosen = draw(st.sampled_from(kinds))
        drawn = _draw_logits(
            draw,
            dt,
            max_size=size,
            masks=masks,
            full_masks=False,
            batches=True,
            families=families,
            bound=dt.rmax / 8,
            vocab_size=vocab,
            min_size=least,
        )
        g = _Gen(draw, np.random.default_rng(draw(st.integers(0, 2**32 - 1))), dt, _limits(dt))
        n, tags = _targets(g, drawn.rows, chosen)
        n = _fit_targets(dt, drawn.rows, n, chosen)
        return {
            "z": drawn.z,
            "axis": drawn.layout.axis,
            "n": drawn.layout.place(n),
            "regime": drawn.regime + tags,
        }

    return strategy()


# --------------------------------------------------------------------------------------------------
# Cotangents for the softmax VJP
# --------------------------------------------------------------------------------------------------


def _cotangent(g: _Gen, shape: tuple[int, int], family: str) -> Array:
    rng, lim = g.rng, g.lim
    rows, n = shape
    if family == "normal":
        return rng.standard_normal(shape)
    c = g.draw(st.one_of(st.sampled_from((1.0, -1.0, 0.5)), st.floats(-100.0, 100.0)))
    if family == "constant":
        return np.full(shape, c)
    if family == "nearly_constant":
        rel = g.draw(st.sampled_from((lim.u, 16 * lim.u, 1e-3)))
        return c * (1 + rel * rng.standard_normal(shape))
    if family == "one_hot":
        v = np.zeros(shape)
        v[np.arange(rows), rng.integers(0, n, rows)] = c
        return v
    if family == "huge":
        scale = _log_uniform(g, 10.0, min(1e100, lim.rmax / 1e4))
        return scale * rng.standard_normal(shape)
    if family == "tiny":
        scale = _log_uniform(g, max(1e-100, lim.rmin * 10), 0.1)
        return scale * rng.standard_normal(shape)
    # subnormal: integer multiples of the smallest subnormal, some zero
    k = rng.integers(0, 2 ** (g.dtype.t - 1), shape)
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0) * k * lim.rmin_sub


def logits_and_cotangent(
    dtype: DType | str,
    *,
    max_size: int = 64,
    masks: bool = True,
    min_size: int = 1,
) -> st.SearchStrategy[Example]:
    """Logits with a cotangent ``v`` for the softmax VJP: ``dict(z, axis, v, regime)``, rows of
    ``min_size`` to ``max_size`` entries.

    ``v`` is finite, shaped like ``z`` and in the same format, with ``sum|v| < r_max / 8`` over the
    whole array so that neither ``v * 1`` nor any sum of its entries overflows. Its family is tagged
    ``v:<family>`` (see :data:`COTANGENT_FAMILIES`).
    """
    dt = get_dtype(dtype)
    size = _check_size("max_size", max_size)
    least = _check_min_size(min_size, size)

    @st.composite
    def strategy(draw: Draw) -> Example:
        family = draw(st.sampled_from(COTANGENT_FAMILIES))
        bits = draw(st.integers(0, 64))  # see _quantize
        drawn = _draw_logits(
            draw,
            dt,
            max_size=size,
            masks=masks,
            full_masks=False,
            batches=True,
            families=LOGIT_FAMILIES,
            bound=_limits(dt).huge,
            min_size=least,
        )
        g = _Gen(draw, np.random.default_rng(draw(st.integers(0, 2**32 - 1))), dt, _limits(dt))
        v = _cotangent(g, drawn.rows.shape, family)
        if family in ("normal", "one_hot", "constant"):
            v = _quantize(v, bits)
        total = float(np.sum(np.abs(v)))
        if total >= dt.rmax / 16:
            v = v * (dt.rmax / 16 / total)
        return {
            "z": drawn.z,
            "axis": drawn.layout.axis,
            "v": drawn.layout.place(_cast(dt, v)),
            "regime": (*drawn.regime, f"v:{family}"),
        }

    return strategy()
