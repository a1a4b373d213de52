"""Adversarial inputs: Hypothesis strategies that go where softmax bugs live.

Every strategy is built for one floating-point format (a
:class:`~softmax_oracle.oracle.dtypes.DType`) and returns numpy arrays of that format. Values
are generated in float64 and cast once; the cast array *is* the input (nothing downstream should
compare against the float64 values).

Logits are drawn from one *base family* and up to two *modifiers* (see :data:`LOGIT_FAMILIES`),
then optionally masked with -inf. Each example carries ``regime``: the tags of everything that
shaped it, so that a run can count what it exercised and a report can say which regime refuted a
claim.

Hypothesis makes the structural choices (family, sizes, axis, scales), so shrinking heads for 1-D,
short rows, ``axis=-1`` and plain values; the bulk of the entries, and the masks, come from a numpy
generator seeded by a drawn integer. (Filling arrays entry by entry through Hypothesis gives mostly
one background value, and masks that are almost always empty.)

Where exp over- and underflows in each format, and the bands in between, follow from the format's
r_max, r_min and smallest subnormal (:func:`_limits`). Band edges keep a margin of 2**-10 in the
argument of exp, so a faithful (not necessarily correctly rounded) exp agrees with them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from softmax_oracle.oracle.dtypes import DType, get_dtype

__all__ = [
    "COTANGENT_FAMILIES",
    "LOGIT_FAMILIES",
    "TARGET_KINDS",
    "VOCAB_MIN",
    "VOCAB_SIZES",
    "dense_layers",
    "is_exact_shift",
    "logits",
    "logits_and_cotangent",
    "logits_and_targets",
    "permutations",
    "representable_shift",
]

Example = dict[str, Any]
Draw = Callable[[st.SearchStrategy[Any]], Any]
Array = np.ndarray[Any, np.dtype[Any]]

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

_LONG_ROW = 256  # rows longer than this are tagged "long"
_MARGIN = 2.0**-10  # distance kept from the exp thresholds, in the argument of exp


# --------------------------------------------------------------------------------------------------
# Per-format thresholds
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Reach:
    """How far the generators go in one format: a policy, not a property of the format."""

    huge: float  # largest |logit| generated
    offset: tuple[float, float]  # typical |c| of a common offset
    offset_rare: float  # occasional larger |c|


_REACH: dict[str, _Reach] = {
    "float64": _Reach(huge=1e300, offset=(1e3, 1e15), offset_rare=1e300),
    "float32": _Reach(huge=1e30, offset=(1e3, 1e7), offset_rare=1e7),
    "float16": _Reach(huge=6e4, offset=(200.0, 6e4), offset_rare=6e4),
    "bfloat16": _Reach(huge=1e30, offset=(200.0, 1e30), offset_rare=1e30),
}


@dataclass(frozen=True)
class _Limits:
    """Where exp over- and underflows in one format, and the representable edges of each band."""

    u: float
    rmin: float
    rmin_sub: float
    rmax: float
    ln_rmax: float  # ln r_max
    ln_underflow: float  # ln(r_min_sub / 2): exp rounds to 0 below it
    ln_rmin: float  # ln r_min: exp is subnormal on [ln_underflow, ln_rmin)
    ln_inv_u: float  # ln(1/u): beyond this gap the smaller exp vanishes against the larger
    huge: float
    offset: tuple[float, float]
    offset_rare: float
    overflow_lo: float  # smallest generated logit whose exp overflows (representable)
    underflow_hi: float  # largest generated logit whose exp underflows (representable)
    subnormal_lo: float  # representable edges of the subnormal band
    subnormal_hi: float


@functools.cache
def _limits(dtype: DType) -> _Limits:
    """The single table of thresholds, derived from the format's own parameters."""
    reach = _REACH.get(dtype.name) or _Reach(
        huge=dtype.rmax / 16, offset=(200.0, math.sqrt(dtype.rmax)), offset_rare=dtype.rmax / 16
    )
    huge = _round_toward(dtype, min(reach.huge, dtype.rmax), up=False)
    ln_underflow = math.log(dtype.rmin_sub) - math.log(2.0)  # r_min_sub / 2 underflows in float64
    ln_rmin = math.log(dtype.rmin)
    # exp(x) rounds to +inf once it exceeds r_max + ulp/2; (emax + 1) ln 2 lies just beyond that.
    ln_overflow = (dtype.emax + 1) * math.log(2.0)
    return _Limits(
        u=dtype.u,
        rmin=dtype.rmin,
        rmin_sub=dtype.rmin_sub,
        rmax=dtype.rmax,
        ln_rmax=math.log(dtype.rmax),
        ln_underflow=ln_underflow,
        ln_rmin=ln_rmin,
        ln_inv_u=math.log(1 / dtype.u),
        huge=huge,
        offset=(reach.offset[0], min(reach.offset[1], huge)),
        offset_rare=min(reach.offset_rare, huge),
        overflow_lo=_round_toward(dtype, ln_overflow + _MARGIN, up=True),
        underflow_hi=_round_toward(dtype, ln_underflow - _MARGIN, up=False),
        subnormal_lo=_round_toward(dtype, ln_underflow + _MARGIN, up=True),
        subnormal_hi=_round_toward(dtype, ln_rmin - _MARGIN, up=False),
    )


def _with_bound(lim: _Limits, bound: float) -> _Limits:
    """The same limits with every generated magnitude kept at or below ``bound``."""
    huge = min(lim.huge, bound)
    return replace(
        lim,
        huge=huge,
        offset=(min(lim.offset[0], huge), min(lim.offset[1], huge)),
        offset_rare=min(lim.offset_rare, huge),
    )


def _cast(dtype: DType, values: Any) -> Array:
    return np.asarray(values, dtype=np.float64).astype(dtype.np)


def _round_toward(dtype: DType, x: float, *, up: bool) -> float:
    """The number of the format nearest to x on one side (x itself when representable)."""
    y = float(_cast(dtype, x))
    if (up and y < x) or (not up and y > x):
        y = _neighbour(dtype, y, up=up)
    return y


def _neighbour(dtype: DType, y: float, *, up: bool) -> float:
    """The next number of the format above or below y (y finite)."""
    if y == 0:
        return dtype.rmin_sub if up else -dtype.rmin_sub
    a = np.array([y], dtype=dtype.np)
    unsigned = np.dtype(f"u{a.itemsize}")
    # Sign and magnitude: away from zero adds one to the bit pattern, towards zero subtracts one.
    step = unsigned.type(1)
    bits = a.view(unsigned) + step if (y > 0) == up else a.view(unsigned) - step
    return float(bits.view(dtype.np)[0].astype(np.float64))


# --------------------------------------------------------------------------------------------------
# Value families: each fills a (rows, n) float64 array; the softmax axis is the last one
# --------------------------------------------------------------------------------------------------


@dataclass
class _Gen:
    """What every family needs: Hypothesis for choices, a seeded generator for bulk values."""

    draw: Draw
    rng: np.random.Generator
    dtype: DType
    lim: _Limits


def _log_uniform(g: _Gen, lo: float, hi: float) -> float:
    """A magnitude between lo and hi, uniform in its exponent (shrinks towards lo)."""
    if hi <= lo:
        return lo
    e = g.draw(st.floats(math.log10(lo), math.log10(hi)))
    return min(max(10.0**e, lo), hi)


def _finite_max(z: Array) -> Array:
    return np.max(np.where(np.isfinite(z), z, -np.inf), axis=-1)


def _shifted_rows(z: Array) -> tuple[Array, Array]:
    """(z - max, log sum exp(z - max)) per row in float64; -inf entries stay -inf.

    Rows without a finite entry get max 0 and log-sum -inf.
    """
    top = _finite_max(z)[:, None]
    shifted = z - np.where(np.isfinite(top), top, 0.0)
    with np.errstate(under="ignore", divide="ignore"):
        return shifted, np.log(np.sum(np.exp(shifted), axis=-1))


def _log_softmax(z: Array) -> Array:
    """log softmax per row in float64 (computed from z - max, so accurate however large z is)."""
    shifted, log_sum = _shifted_rows(z)
    return shifted - np.where(np.isfinite(log_sum), log_sum, 0.0)[:, None]


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
# Shapes
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Where the (rows, n) working array goes: z = moveaxis(rows.reshape(*other, n), -1, pos)."""

    other: tuple[int, ...]
    n: int
    pos: int
    axis: int
    sparse: bool = False  # vocabulary-sized rows only: one value but a few (_make_sparse)

    @property
    def rows(self) -> int:
        return math.prod(self.other)

    def place(self, values: Array) -> Array:
        return np.moveaxis(values.reshape(*self.other, self.n), -1, self.pos)


def _draw_row_length(draw: Draw, max_size: int) -> int:
    size_class = draw(st.integers(0, 9))  # 70% short rows, 20% medium, 10% long (when allowed)
    if size_class < 7 or max_size <= 16:
        return int(draw(st.sampled_from(range(1, min(16, max_size) + 1))))
    if size_class < 9 or max_size <= _LONG_ROW:
        return int(draw(st.integers(17, min(_LONG_ROW, max_size))))
    return int(draw(st.integers(_LONG_ROW + 1, max_size)))


#: Vocabulary sizes of language models (and powers of two around them): the lengths of the rows
#: ``vocab_size`` adds. A row is tagged "vocab" from VOCAB_MIN entries on.
VOCAB_SIZES: tuple[int, ...] = (32000, 32768, 50257, 65536, 100277, 128256, 151936, 262144)
VOCAB_MIN = VOCAB_SIZES[0]


def _check_vocab(vocab_size: int) -> int:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or not (
        vocab_size == 0 or vocab_size >= VOCAB_MIN
    ):
        raise ValueError(
            f"vocab_size={vocab_size!r} must be 0 (no vocabulary-sized rows) or an int of at "
            f"least {VOCAB_MIN}, e.g. vocab_size=262144"
        )
    return vocab_size


def _draw_vocab_layout(draw: Draw, vocab_size: int, batches: bool) -> _Layout:
    """One or two rows of VOCAB_MIN..vocab_size entries along any axis, maybe sparse."""
    sparse = bool(draw(st.booleans()))
    sizes = [v for v in VOCAB_SIZES if v <= vocab_size]
    n = int(draw(st.one_of(st.sampled_from(sizes), st.integers(VOCAB_MIN, vocab_size))))
    other = (int(draw(st.integers(1, 2))),) if batches and draw(st.booleans()) else ()
    ndim = len(other) + 1
    pos = ndim - 1 - int(draw(st.integers(0, ndim - 1)))
    axis = pos if draw(st.booleans()) else pos - ndim
    return _Layout(other, n, pos, axis, sparse)


def _make_sparse(g: _Gen, z: Array) -> Array:
    """Keep 1 to 64 entries of each row (its maximum among them) and set the rest to the row's
    minimum: rows of one repeated value but a few, as a vocabulary-sized output often is."""
    rows, n = z.shape
    keep = int(g.rng.integers(1, 65))
    out = np.repeat(np.min(z, axis=-1, keepdims=True), n, axis=-1)
    idx = g.rng.integers(0, n, (rows, keep))
    idx[:, 0] = np.argmax(z, axis=-1)
    np.put_along_axis(out, idx, np.take_along_axis(z, idx, axis=-1), axis=-1)
    return out


def _draw_layout(draw: Draw, max_size: int, batches: bool, vocab_size: int = 0) -> _Layout:
    # One example in 16 gets vocabulary-sized rows (the largest choice, so shrinking leaves it).
    if vocab_size and draw(st.integers(0, 15)) == 15:
        return _draw_vocab_layout(draw, vocab_size, batches)
    n = _draw_row_length(draw, max_size)
    ndim = int(draw(st.sampled_from((1, 2, 3)))) if batches else 1
    budget = max(4 * max_size, 64) // n  # total elements stay <= max(4 * max_size, 64)
    other: list[int] = []
    for _ in range(ndim - 1):
        size = int(draw(st.integers(1, max(1, min(6, budget)))))
        budget //= size
        other.append(size)
    pos = ndim - 1 - int(draw(st.integers(0, ndim - 1)))  # shrinks towards the last axis
    axis = pos if draw(st.booleans()) else pos - ndim  # shrinks towards the negative form
    return _Layout(tuple(other), n, pos, axis)


def _layout_tags(layout: _Layout) -> tuple[str, ...]:
    tags = []
    if layout.n == 1:
        tags.append("len1")
    if layout.n > _LONG_ROW:
        tags.append("long")
    if layout.n >= VOCAB_MIN:
        tags.append("vocab")
    if layout.other:
        tags.append("batch")
        if layout.pos != len(layout.other):
            tags.append("inner_axis")
    return tuple(tags)


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
) -> _Drawn:
    # Regime choices come first: Hypothesis mutates examples by copying spans of choices, and the
    # choices after a copied span of another length are replayed out of place (as their simplest
    # values). Early, fixed-length choices keep the families evenly spread.
    base = draw(st.sampled_from(families))
    combinations = _modifier_combinations(base, families)
    modified = bool(combinations) and draw(st.booleans())
    chosen = set(draw(st.sampled_from(combinations))) if modified else set()
    bits = draw(st.integers(0, 64))  # see _quantize; drawn always, to keep choices aligned
    layout = _draw_layout(draw, max_size, batches, vocab_size)
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


def _quantize(z: Array, bits: int) -> Array:
    """Round to multiples of 2**-bits (64 or more: unchanged). Generation draws ``bits``
    uniformly, so values are mostly untouched; the shrinker drives it to 0, so a minimal
    counterexample has integer logits ([0, 40] rather than [0.1257..., 40.8...])."""
    if bits >= 64:
        return z
    small = np.isfinite(z) & (np.abs(z) < 2.0**52)
    return np.where(small, np.ldexp(np.round(np.ldexp(z, bits)), -bits), z)


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


def _check_size(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive int, e.g. {name}=64")
    return value


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
) -> st.SearchStrategy[Example]:
    """Logits ``z`` with a softmax ``axis`` and the ``regime`` tags that describe them.

    ``z`` has 1 to 3 dimensions (1 when ``batches=False``) and at most ``max_size`` entries along
    ``axis``; the whole array has at most ``max(4 * max_size, 64)`` entries. Entries are finite,
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
    and ``sparse``.
    """
    dt = get_dtype(dtype)
    size = _check_size("max_size", max_size)
    families = _check_families(regimes)
    vocab = _check_vocab(vocab_size)

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
        )
        return {"z": drawn.z, "axis": drawn.layout.axis, "regime": drawn.regime}

    return strategy()


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
) -> st.SearchStrategy[Example]:
    """Logits with cross-entropy targets: ``dict(z, axis, n, regime)``, ``n`` shaped like ``z``.

    ``n >= 0`` is finite, in the same format, and exactly 0 wherever ``z`` is -inf. Per softmax
    row, ``sum(n) * max|z| < r_max / 4``, so the true cross-entropy is finite and representable
    (logits stay within r_max / 8, which matters in float16). ``kind`` is one of
    :data:`TARGET_KINDS`; ``normalised=True`` restricts to kinds whose rows sum to one up to
    rounding, ``normalised=False`` to ``"unnormalised"``. ``regimes`` limits the logit families
    and ``vocab_size`` adds vocabulary-sized rows, as in :func:`logits`.
    """
    dt = get_dtype(dtype)
    size = _check_size("max_size", max_size)
    kinds = _check_kind(kind, normalised)
    families = _check_families(regimes)
    vocab = _check_vocab(vocab_size)

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
) -> st.SearchStrategy[Example]:
    """Logits with a cotangent ``v`` for the softmax VJP: ``dict(z, axis, v, regime)``.

    ``v`` is finite, shaped like ``z`` and in the same format, with ``sum|v| < r_max / 8`` over the
    whole array so that neither ``v * 1`` nor any sum of its entries overflows. Its family is tagged
    ``v:<family>`` (see :data:`COTANGENT_FAMILIES`).
    """
    dt = get_dtype(dtype)
    size = _check_size("max_size", max_size)

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


# --------------------------------------------------------------------------------------------------
# A dense layer feeding softmax cross-entropy
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Metamorphic helpers: exact shifts and permutations
# --------------------------------------------------------------------------------------------------


def _representable(values: Array, dtype: DType) -> Array:
    """Which float64 values are numbers of the format (finite)."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore"):
        back = values.astype(dtype.np).astype(np.float64)
    return np.isfinite(values) & (back == values)


def is_exact_shift(z: Any, c: float, dtype: DType | str) -> bool:
    """Whether z_j + c is a number of the format, exactly, for every finite z_j (and c is one too).

    Each sum is formed in float64 together with its exact rounding error (Knuth's TwoSum, error-free
    for finite float64 operands): the shift is exact when every error is zero and every float64 sum
    is representable in the format.
    """
    dt = get_dtype(dtype)
    if not math.isfinite(c) or not bool(_representable(np.float64(c), dt)):
        return False
    a = np.asarray(z, dtype=np.float64).ravel()
    a = a[np.isfinite(a)]
    with np.errstate(over="ignore", invalid="ignore"):
        s = a + c
        a_part = s - c
        c_part = s - a_part
        error = (a - a_part) + (c - c_part)
    return bool(np.all(np.isfinite(s)) and np.all(error == 0) and np.all(_representable(s, dt)))


def _lowest_bit_exponents(values: Array) -> Array:
    """For nonzero float64 values x = odd * 2**e, the exponents e."""
    mantissa, exponent = np.frexp(values)
    digits = (np.abs(mantissa) * 2.0**53).astype(np.int64)
    lowest = digits & -digits
    return exponent - 53 + (np.frexp(lowest.astype(np.float64))[1] - 1)


def _shift_interval(z: Array, exponent: int, dtype: DType) -> tuple[float, float]:
    """Shifts c (multiples of 2**exponent) keeping every z_j + c exact: a conservative interval.

    z_j + c is a multiple of 2**min(exponent, e_j) (e_j: exponent of z_j's lowest set bit) and is a
    number of the format when its magnitude is below 2**(min(exponent, e_j) + t) and at most r_max.
    """
    nonzero = z[z != 0]
    with np.errstate(over="ignore"):  # a window or bound past float64's range is cut to r_max
        window = np.ldexp(1.0, np.minimum(exponent, _lowest_bit_exponents(nonzero)) + dtype.t)
        lo = float(np.max(-np.minimum(window, dtype.rmax) - nonzero, initial=-dtype.rmax))
        hi = float(np.min(np.minimum(window, dtype.rmax) - nonzero, initial=dtype.rmax))
        if z.size:  # |z_j + c| <= r_max for every entry (zeros included)
            lo = max(lo, -dtype.rmax - float(z.min()))
            hi = min(hi, dtype.rmax - float(z.max()))
    lo, hi = max(lo, -dtype.rmax), min(hi, dtype.rmax)  # c is a number of the format too
    # float64 rounding of the bounds: step one float64 spacing inwards
    return float(np.nextafter(lo, np.inf)), float(np.nextafter(hi, -np.inf))


def representable_shift(dtype: DType | str, z: Any) -> st.SearchStrategy[float]:
    """A shift c such that z + c is exact in the format for every finite entry, without overflow.

    c = K * 2**E, a number of the format; it can be 0, small, or large (large only when the
    entries allow it, e.g. ties or integer-valued rows). Apply it in the format, e.g.
    ``z + z.dtype.type(c)`` (bfloat16 arrays plus a Python float are promoted to float32).
    """
    dt = get_dtype(dtype)
    values = np.asarray(z, dtype=np.float64).ravel()
    values = np.unique(values[np.isfinite(values)])
    nonzero = values[values != 0]
    smallest_exponent = dt.emin - dt.t + 1
    # With c a multiple of 2**coarse, 0 is always allowed; finer c can help, coarser c is larger.
    coarse = int(_lowest_bit_exponents(nonzero).max()) if nonzero.size else 0
    lo, hi = _shift_interval(values, coarse, dt)
    widest = max(-lo, hi)
    top = min(max(math.frexp(widest)[1] - 1 if widest > 0 else coarse, coarse), dt.emax)

    @st.composite
    def strategy(draw: Draw) -> float:
        exponent = int(draw(st.integers(max(coarse - dt.t, smallest_exponent), top)))
        low, high = _shift_interval(values, exponent, dt)
        if not np.nextafter(low, -np.inf) <= 0 <= np.nextafter(high, np.inf):
            # too fine for some entry (0 is not inside): fall back to the coarse grid
            exponent, low, high = coarse, lo, hi
        step = Fraction(2) ** exponent
        # K = 0 is always exact (the inward rounding of the bounds may have cut it off)
        k_lo = min(max(math.ceil(Fraction(low) / step), -(2**dt.t) + 1), 0)
        k_hi = max(min(math.floor(Fraction(high) / step), 2**dt.t - 1), 0)
        c = math.ldexp(int(draw(st.integers(k_lo, k_hi))), exponent)
        assume(is_exact_shift(values, c, dt))
        return c

    return strategy()


def permutations(n: int) -> st.SearchStrategy[Array]:
    """A permutation of range(n) as an integer array (shrinks towards the identity)."""
    size = _check_size("n", n)
    return st.permutations(list(range(size))).map(lambda p: np.asarray(p, dtype=np.intp))
