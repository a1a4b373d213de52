"""Metamorphic helpers: shifts c that keep z + c exact in the format, and permutations."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from softmax_oracle.oracle.dtypes import DType, get_dtype
from softmax_oracle.spec.strategies._common import Array, Draw, _check_size


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
