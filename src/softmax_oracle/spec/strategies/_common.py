"""What every strategy shares: per-format thresholds, the generator every value family draws
from, float64 row helpers and the checks of size arguments.

Where exp over- and underflows in each format, and the bands in between, follow from the format's
r_max, r_min and smallest subnormal (:func:`_limits`). Band edges keep a margin of 2**-10 in the
argument of exp, so a faithful (not necessarily correctly rounded) exp agrees with them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

from softmax_oracle.oracle.dtypes import DType

Example = dict[str, Any]
Draw = Callable[[st.SearchStrategy[Any]], Any]
Array = np.ndarray[Any, np.dtype[Any]]

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
# The generator and float64 row helpers
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


def _quantize(z: Array, bits: int) -> Array:
    """Round to multiples of 2**-bits (64 or more: unchanged). Generation draws ``bits``
    uniformly, so values are mostly untouched; the shrinker drives it to 0, so a minimal
    counterexample has integer logits ([0, 40] rather than [0.1257..., 40.8...])."""
    if bits >= 64:
        return z
    small = np.isfinite(z) & (np.abs(z) < 2.0**52)
    return np.where(small, np.ldexp(np.round(np.ldexp(z, bits)), -bits), z)


def _check_size(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive int, e.g. {name}=64")
    return value
