"""Logits: the value families, their modifiers and masks, drawn into a layout."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from softmax_oracle.oracle.dtypes import DType, get_dtype
from softmax_oracle.spec.strategies._common import (
    Array,
    Draw,
    Example,
    _cast,
    _check_size,
    _finite_max,
    _Gen,
    _Limits,
    _limits,
    _log_softmax,
    _log_uniform,
    _quantize,
    _round_toward,
    _with_bound,
)
from softmax_oracle.spec.strategies._shapes import (
    _check_min_size,
    _check_vocab,
    _draw_layout,
    _Layout,
    _layout_tags,
    _make_sparse,
)

#: Value families for logits, simplest first (shrinking moves towards the front).
LOGIT_FAMILIES: tuple[str, ...] = (
    "normal",  # N(0, sigma), sigma in {1, 0.1, 5, 20}
    "ties",  # c * ones (as a modifier: several equal maxima)
    "tiny",  # zeros, subnormals and tiny normals
    "wide",  # uniform from below the subnormal band up to ~10
    "dominant",  # one logit above the rest by a gap in [ln(1/u), 2000]
    "offset",  # a large common offset c plus small noise
    "lse_zero",  # rows whose log-sum-exp is close to 0
    "overflow",  # max logit in (ln r_max, huge): exp overflows
    "underflow",  # every logit below ln(r_min_sub / 2): every exp is 0
    "subnormal",  # every logit in [ln(r_min_sub / 2), ln r_min): every exp is subnormal
)

# Modifiers that keep the defining property of each base family (an overflow row still overflows, an
# underflow row still underflows everywhere, ...). They are applied in the order of _MODIFIER_ORDER.
_MODIFIERS: dict[str, tuple[str, ...]] = {
    "normal": ("dominant", "ties", "offset", "lse_zero"),
    "ties": ("dominant", "lse_zero"),
    "tiny": ("ties",),
    "wide": ("dominant", "ties", "offset", "lse_zero"),
    "dominant": ("ties", "offset", "lse_zero"),
    "offset": ("dominant", "ties"),
    "lse_zero": (),
    "overflow": ("ties",),
    "underflow": ("ties",),
    "subnormal": ("ties",),
}
_MODIFIER_ORDER = ("dominant", "ties", "offset", "lse_zero")


# --------------------------------------------------------------------------------------------------
# Value families: each fills a (rows, n) float64 array; the softmax axis is the last one
# --------------------------------------------------------------------------------------------------


def _family_normal(g: _Gen, shape: tuple[int, int]) -> Array:
    # No Hypothesis choice here: the plain family must be the shortest, hence the simplest, example.
    sigma = g.rng.choice((1.0, 0.1, 5.0, 20.0))
    return g.rng.normal(0.0, sigma, shape)


def _family_ties(g: _Gen, shape: tuple[int, int]) -> Array:
    c = g.draw(
        st.one_of(
            st.just(0.0),
            st.floats(-20.0, 20.0),
            st.floats(-g.lim.huge, g.lim.huge),
        )
    )
    return np.full(shape, c)


def _family_tiny(g: _Gen, shape: tuple[int, int]) -> Array:
    lim = g.lim
    top = lim.rmin * 2.0 ** (g.dtype.t / 2)  # ~1e-300 in float64, ~1e-35 in float32
    magnitude = np.exp(g.rng.uniform(math.log(lim.rmin_sub), math.log(top), shape))
    signed = np.where(g.rng.random(shape) < 0.5, -magnitude, magnitude)
    return np.where(g.rng.random(shape) < 0.25, 0.0, signed)


def _family_wide(g: _Gen, shape: tuple[int, int]) -> Array:
    lo = g.draw(st.sampled_from((1.08, 1.02, 1.5))) * g.lim.ln_underflow
    hi = min(10.0, g.lim.ln_rmax - 1.0)
    return g.rng.uniform(lo, hi, shape)


def _family_dominant(g: _Gen, shape: tuple[int, int]) -> Array:
    rest = g.rng.normal(0.0, g.draw(st.sampled_from((1.0, 5.0))), shape)
    return _modify_dominant(g, rest)


def _offset_value(g: _Gen) -> float:
    lo, hi = g.lim.offset
    rare = g.draw(st.integers(0, 7)) == 7
    c = _log_uniform(g, lo, g.lim.offset_rare if rare else hi)
    return -c if g.draw(st.booleans()) else c


def _family_offset(g: _Gen, shape: tuple[int, int]) -> Array:
    c = _offset_value(g)
    spread = g.draw(st.sampled_from((1.0, 0.1, 10.0))) * max(1.0, g.dtype.ulp(c))
    return np.clip(c + g.rng.normal(0.0, spread, shape), -g.lim.huge, g.lim.huge)


def _family_lse_zero(g: _Gen, shape: tuple[int, int]) -> Array:
    lim, rng = g.lim, g.rng
    rows, n = shape
    variant = g.draw(st.sampled_from(("equal", "one_zero", "centred")))
    if variant == "equal":  # -ln n plus (at most) a few units of roundoff
        noise = g.draw(st.sampled_from((0.0, 4 * lim.u, 1e-3)))
        return np.full(shape, -math.log(n)) + (rng.normal(0.0, noise, shape) if noise else 0.0)
    if variant == "one_zero":  # [0, -40]-like: LSE = log1p(s) with 0 < s <= sqrt(u)
        z = -rng.uniform(lim.ln_inv_u / 2 + math.log(n), 3 * lim.ln_inv_u + math.log(n), shape)
        z[np.arange(rows), rng.integers(0, n, rows)] = 0.0
        return z
    return _modify_lse_zero(g, rng.normal(0.0, g.draw(st.sampled_from((1.0, 5.0))), shape))


def _family_overflow(g: _Gen, shape: tuple[int, int]) -> Array:
    lim, rng = g.lim, g.rng
    rows, n = shape
    if g.draw(st.booleans()):
        top = _log_uniform(g, lim.overflow_lo, lim.huge)
    else:  # just past the threshold, as in (710, 709)
        top = g.draw(st.floats(lim.overflow_lo, min(lim.overflow_lo + 20.0, lim.huge)))
    top = min(max(_round_toward(g.dtype, top, up=True), lim.overflow_lo), lim.huge)
    spread = g.draw(st.sampled_from((1.0, 10.0, 0.1, None)))
    if spread is None:  # the rest far below
        z = rng.normal(0.0, 1.0, shape)
    else:
        z = np.maximum(top - rng.exponential(spread * max(1.0, g.dtype.ulp(top)), shape), -lim.huge)
    z[np.arange(rows), rng.integers(0, n, rows)] = top
    return np.minimum(z, top)


def _family_underflow(g: _Gen, shape: tuple[int, int]) -> Array:
    lim, rng = g.lim, g.rng
    edge = lim.underflow_hi
    if g.draw(st.booleans()):  # far below: a large negative offset
        c = -_log_uniform(g, abs(edge), lim.huge)
        z = c - rng.exponential(max(1.0, g.dtype.ulp(c)), shape)
    else:
        z = edge - rng.exponential(g.draw(st.sampled_from((1.0, 10.0, 0.1))), shape)
    return np.clip(z, -lim.huge, edge)


def _family_subnormal(g: _Gen, shape: tuple[int, int]) -> Array:
    return g.rng.uniform(g.lim.subnormal_lo, g.lim.subnormal_hi, shape)


_FAMILIES: dict[str, Callable[[_Gen, tuple[int, int]], Array]] = {
    "normal": _family_normal,
    "ties": _family_ties,
    "tiny": _family_tiny,
    "wide": _family_wide,
    "dominant": _family_dominant,
    "offset": _family_offset,
    "lse_zero": _family_lse_zero,
    "overflow": _family_overflow,
    "underflow": _family_underflow,
    "subnormal": _family_subnormal,
}


# --------------------------------------------------------------------------------------------------
# Modifiers: each returns a new (rows, n) array
# --------------------------------------------------------------------------------------------------


def _modify_dominant(g: _Gen, z: Array) -> Array:
    """Raise one entry per row above the row maximum by a gap in [ln(1/u), 2000]."""
    rows, n = z.shape
    gap = g.draw(st.floats(g.lim.ln_inv_u, 2000.0))
    out = z.copy()
    out[np.arange(rows), g.rng.integers(0, n, rows)] = np.minimum(_finite_max(z) + gap, g.lim.huge)
    return out


def _modify_ties(g: _Gen, z: Array) -> Array:
    """Copy each row's maximum to between 2 and 4 places: several equal maxima."""
    n = z.shape[1]
    k = int(g.rng.integers(2, min(n, 4) + 1))
    where = np.argsort(g.rng.random(z.shape), axis=-1)[:, :k]
    out = z.copy()
    np.put_along_axis(out, where, _finite_max(z)[:, None], axis=-1)
    return out


def _modify_offset(g: _Gen, z: Array) -> Array:
    """Add a large common offset that keeps every entry within reach and the row's shape visible.

    The offset stays below spread * 2**(t - 3) (spread: max - min of the row), or the low end of the
    format's offset range if that is larger, so rounding z + c does not erase a dominant gap.
    """
    c = _offset_value(g)
    room = max(g.lim.huge - float(np.max(np.abs(z))), 0.0)
    spread = float(np.max(np.ptp(z, axis=-1)))
    if spread > 0:
        room = min(room, max(spread * 2.0 ** (g.dtype.t - 3), g.lim.offset[0]))
    return z + math.copysign(min(abs(c), room), c)


def _modify_lse_zero(g: _Gen, z: Array) -> Array:
    """Shift each row so that its log-sum-exp is (about) zero: z - LSE(z) = log softmax(z).

    (The row maximum goes first: for z = c * ones with a huge c, c + ln n would round to c.)
    """
    return _log_softmax(z)


_MODIFY: dict[str, Callable[[_Gen, Array], Array]] = {
    "dominant": _modify_dominant,
    "ties": _modify_ties,
    "offset": _modify_offset,
    "lse_zero": _modify_lse_zero,
}


#: How far past the largest finite number a row's sum of exp(z_i - max) is pushed: pairwise sums of
#: terms <= 1 in the format err by under 2^-7 relative for rows of up to 2^18 entries (float16).
_SUM_MARGIN = 1.0625


def _sums_can_overflow(lim: _Limits, n: int) -> bool:
    """Can a row of n entries hold logits whose exponentials (each at most 1 after the shift by
    the maximum) sum past the largest finite number by ``_SUM_MARGIN``? In float16 from 69,600
    entries on; in the other formats beyond any row the kit draws."""
    return n - 1 > _SUM_MARGIN * lim.rmax


def _overflow_sums(g: _Gen, z: Array) -> Array:
    """Near-equal logits below each row's maximum a, so that sum_{i != k} exp(z_i - a) exceeds the
    format's largest number: a float16 vocabulary row, whose sum a careful implementation must
    scale (or accumulate wider) where a sum in float16 is +inf and log-probabilities -inf. The
    values are a - spread * U(0, 1), rounded to the format, then as many raised to a (ties) as it
    takes. In a batch of two, the second row is as often one whose every other term underflows to
    0 (all at least ln(2 / r_min_sub) below a): a batch mixing a scaled sum with a zero one."""
    rows, n = z.shape
    lim = g.lim
    spread = g.draw(st.sampled_from((0.5, 0.0, 2.0**-6, 2.0)))
    zero_row = rows > 1 and g.draw(st.booleans())
    a = _finite_max(z)
    out = np.empty_like(z)
    for r in range(rows):
        top = float(_cast(g.dtype, a[r]))
        if zero_row and r == rows - 1:
            below = lim.ln_underflow - max(1.0, g.dtype.ulp(top))  # ulp: rounding stays below
            row = top + below - g.rng.exponential(1.0, n)
            row[int(g.rng.integers(0, n))] = top
            out[r] = _cast(g.dtype, row).astype(np.float64)
            continue
        row = _cast(g.dtype, top - spread * g.rng.random(n)).astype(np.float64)
        k = int(g.rng.integers(0, n))
        row[k] = top
        terms = np.exp(row - top)
        terms[k] = 0.0
        deficit = _SUM_MARGIN * lim.rmax - float(np.sum(terms))
        if deficit > 0:  # raise the smallest terms to 1 until the sum is past the target
            order = np.argsort(terms)
            order = order[order != k]
            raise_count = int(np.searchsorted(np.cumsum(1.0 - terms[order]), deficit)) + 1
            row[order[:raise_count]] = top
        out[r] = row
    return out


def _apply_mask(g: _Gen, z: Array) -> Array | None:
    """Set a drawn fraction of entries to -inf, never a row's (first) maximum. None if n == 1."""
    rows, n = z.shape
    if n < 2:
        return None
    rate = g.draw(st.sampled_from((0.5, 0.2, 0.8, 1.0)))
    mask = g.rng.random(z.shape) < rate
    keep = np.argmax(z, axis=-1)
    mask[np.arange(rows), keep] = False
    if not mask.any():  # a masked example masks something
        row = int(g.rng.integers(0, rows))
        col = (keep[row] + 1 + int(g.rng.integers(0, n - 1))) % n
        mask[row, col] = True
    return np.where(mask, -np.inf, z)


def _apply_full_mask(g: _Gen, z: Array) -> Array:
    """Set at least one whole row to -inf."""
    rows = z.shape[0]
    full = g.rng.random(rows) < 0.5
    full[int(g.rng.integers(0, rows))] = True
    return np.where(full[:, None], -np.inf, z)


# --------------------------------------------------------------------------------------------------
# Logits
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Drawn:
    """Logits in working layout (float64 copies of the cast values) and where they go."""

    z: Array  # the input, in the requested format and layout
    rows: Array  # float64 (rows, n), softmax along the last axis
    layout: _Layout
    regime: tuple[str, ...]


def _draw_logits(
    draw: Draw,
    dtype: DType,
    *,
    max_size: int,
    masks: bool,
    full_masks: bool,
    batches: bool,
    families: tuple[str, ...],
    bound: float,
    vocab_size: int = 0,
    min_size: int = 1,
) -> _Drawn:
    # Regime choices come first: Hypothesis mutates examples by copying spans of choices, and the
    # choices after a copied span of another length are replayed out of place (as their simplest
    # values). Early, fixed-length choices keep the families evenly spread.
    base = draw(st.sampled_from(families))
    combinations = _modifier_combinations(base, families)
    modified = bool(combinations) and draw(st.booleans())
    chosen = set(draw(st.sampled_from(combinations))) if modified else set()
    bits = draw(st.integers(0, 64))  # see _quantize; drawn always, to keep choices aligned
    layout = _draw_layout(draw, max_size, batches, vocab_size, min_size)
    # Half the rows long enough for their exponentials to sum past the format's largest number
    # (float16 vocabulary rows) are built to do so, which plain draws rarely are.
    overflow = _sums_can_overflow(_limits(dtype), layout.n) and draw(st.booleans())
    g = _Gen(draw, np.random.default_rng(draw(st.integers(0, 2**32 - 1))), dtype, _limits(dtype))
    g.lim = _with_bound(g.lim, bound)
    shape = (layout.rows, layout.n)
    tags = [base]

    with np.errstate(over="ignore", under="ignore"):
        z = _FAMILIES[base](g, shape)
        for name in _MODIFIER_ORDER:
            if name in chosen and name != "lse_zero" and (layout.n > 1 or name == "offset"):
                z = _MODIFY[name](g, z)
                tags.append(name)
        if overflow:  # the family gives each row's maximum; no masks, sparsity or quantisation
            cast = _cast(dtype, _overflow_sums(g, z))
            tags.extend(("sum_overflow", *_layout_tags(layout)))
            return _Drawn(layout.place(cast), cast.astype(np.float64), layout, tuple(tags))
        if layout.sparse and base != "lse_zero":
            z = _make_sparse(g, z)
            tags.append("sparse")
        if masks and draw(st.booleans()):
            masked = _apply_mask(g, z)
            if masked is not None:
                z = masked
                tags.append("mask")
        if "lse_zero" in chosen or (base == "lse_zero" and "mask" in tags):
            z = _modify_lse_zero(g, z)  # after masking, which removes terms from the sum
            if base != "lse_zero":
                tags.append("lse_zero")
        if full_masks and draw(st.booleans()):
            z = _apply_full_mask(g, z)
            tags.append("full_mask")
        if base in _QUANTIZABLE and "lse_zero" not in tags:
            z = _quantize(z, bits)

    cast = _cast(dtype, z)
    rows = cast.astype(np.float64)
    tags.extend(_layout_tags(layout))
    return _Drawn(layout.place(cast), rows, layout, tuple(tags))


#: Families whose defining property survives rounding the values to a few binary places.
_QUANTIZABLE = frozenset({"normal", "wide", "ties", "offset"})


@functools.cache
def _modifier_combinations(base: str, families: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """One or two modifiers that suit the base family (an offset and its undoing excluded)."""
    allowed = [m for m in _MODIFIERS[base] if m in families]
    pairs = [
        (a, b)
        for i, a in enumerate(allowed)
        for b in allowed[i + 1 :]
        if {a, b} != {"offset", "lse_zero"}  # recentring would undo the offset
    ]
    return (*((m,) for m in allowed), *pairs)


def _check_families(regimes: Collection[str] | None) -> tuple[str, ...]:
    if regimes is None:
        return LOGIT_FAMILIES
    unknown = sorted(set(regimes) - set(LOGIT_FAMILIES))
    if unknown or not regimes:
        raise ValueError(
            f"regimes={sorted(regimes)!r} names no known family or an unknown one ({unknown}); "
            f"choose from {', '.join(LOGIT_FAMILIES)}"
        )
    return tuple(f for f in LOGIT_FAMILIES if f in regimes)  # keep the simplest-first order


def logits(
    dtype: DType | str,
    *,
    max_size: int = 64,
    masks: bool = True,
    full_masks: bool = False,
    batches: bool = True,
    regimes: Collection[str] | None = None,
    vocab_size: int = 0,
    min_size: int = 1,
) -> st.SearchStrategy[Example]:
    """Logits ``z`` with a softmax ``axis`` and the ``regime`` tags that describe them.

    ``z`` has 1 to 3 dimensions (1 when ``batches=False``) and ``min_size`` to ``max_size``
    entries along ``axis`` (short rows most often, when ``min_size`` allows them); the whole
    array has at most ``max(4 * max_size, 64)`` entries. Entries are finite,
    except -inf where masked (``masks``): a masked row keeps its first maximum, so it has a finite
    entry. With ``full_masks=True`` (independent of ``masks``) some examples also have whole rows
    of -inf (tag ``full_mask``). ``regimes`` restricts the base families and modifiers to a subset
    of :data:`LOGIT_FAMILIES`.

    Tags in ``regime``: the base family first, then the modifiers applied (``dominant``, ``ties``,
    ``offset``, ``lse_zero``), then ``mask``, ``full_mask``, ``len1``, ``long`` (n > 256),
    ``batch`` (z.ndim > 1) and ``inner_axis`` (the softmax axis is not the last one).

    ``vocab_size`` (0, or at least :data:`VOCAB_MIN`) adds language-model-sized rows: about one
    example in 16 then has one row, or a batch of two, of :data:`VOCAB_MIN` to ``vocab_size``
    entries (often a real vocabulary size, :data:`VOCAB_SIZES`), from the same families, and half
    of those rows are ``sparse``: one repeated value but for 1 to 64 entries. Tags ``vocab``
    and ``sparse``. Half the rows long enough for their exponentials (each at most 1 after the
    shift by the maximum) to sum past the largest finite number -- float16 rows of 69,600
    entries or more -- are built to do so (tag ``sum_overflow``): near-equal logits below each
    row's maximum, without masks; the last row of a batch is as often one whose other terms all
    underflow to 0 in the format.
    """
    dt = get_dtype(dtype)
    size = _check_size("max_size", max_size)
    families = _check_families(regimes)
    vocab = _check_vocab(vocab_size)
    least = _check_min_size(min_size, size, vocab)

    @st.composite
    def strategy(draw: Draw) -> Example:
        drawn = _draw_logits(
            draw,
            dt,
            max_size=size,
            masks=masks,
            full_masks=full_masks,
            batches=batches,
            families=families,
            bound=_limits(dt).huge,
            vocab_size=vocab,
            min_size=least,
        )
        return {"z": drawn.z, "axis": drawn.layout.axis, "regime": drawn.regime}

    return strategy()
