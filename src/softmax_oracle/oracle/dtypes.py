"""Floating-point formats under test: their parameters, and exact conversion to and from mpmath.

A format is described by its significand width t (including the implicit bit) and the exponent of
its smallest normal number. Everything the tolerance model needs follows from those two numbers:
unit roundoff u = 2**-t, the smallest normal r_min = 2**emin, the smallest subnormal 2**(emin-t+1).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["DTYPES", "DType", "get_dtype", "parse_dtypes"]


@dataclass(frozen=True)
class DType:
    """One IEEE-style binary format, as the oracle sees it."""

    name: str
    t: int  # significand bits, implicit bit included
    emin: int  # exponent of the smallest normal number
    emax: int  # exponent of the largest finite number

    @property
    def u(self) -> float:
        """Unit roundoff 2**-t (half of numpy's ``finfo.eps``)."""
        return 2.0**-self.t

    @property
    def rmin(self) -> float:
        """Smallest positive normal number."""
        return 2.0**self.emin

    @property
    def rmin_sub(self) -> float:
        """Smallest positive subnormal number."""
        return 2.0 ** (self.emin - self.t + 1)

    @property
    def rmax(self) -> float:
        """Largest finite number."""
        return (2.0 - 2.0 ** (1 - self.t)) * 2.0**self.emax

    @property
    def prec(self) -> int:
        """Working precision of the mpmath reference: at least 2t + 64 bits."""
        return 2 * self.t + 64

    @property
    def np(self) -> np.dtype[Any]:
        """The numpy dtype (bfloat16 comes from ``ml_dtypes``)."""
        return _numpy_dtype(self.name)

    def ulp(self, x: float) -> float:
        """Spacing of the format at |x|: 2**(max(floor(log2|x|), emin) - t + 1)."""
        if x == 0 or not np.isfinite(x):
            return self.rmin_sub
        e = max(int(np.frexp(abs(x))[1]) - 1, self.emin)
        return 2.0 ** (e - self.t + 1)

    def __str__(self) -> str:
        return self.name


DTYPES: dict[str, DType] = {
    "float64": DType("float64", 53, -1022, 1023),
    "float32": DType("float32", 24, -126, 127),
    "float16": DType("float16", 11, -14, 15),
    "bfloat16": DType("bfloat16", 8, -126, 127),
}


class DTypeError(ValueError):
    """A dtype name the kit does not know, or one whose support package is missing."""


@functools.cache
def _numpy_dtype(name: str) -> np.dtype[Any]:
    if name == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:  # pragma: no cover - depends on the environment
            raise DTypeError(
                "bfloat16 arrays need the ml_dtypes package: pip install 'softmax-oracle[lowp]'"
            ) from None
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def get_dtype(name: str | DType) -> DType:
    """Look up a format by name (``float64``, ``float32``, ``float16``, ``bfloat16``)."""
    if isinstance(name, DType):
        return name
    key = {"f64": "float64", "f32": "float32", "f16": "float16", "bf16": "bfloat16",
           "double": "float64", "single": "float32", "half": "float16"}.get(name, name)
    if key not in DTYPES:
        raise DTypeError(
            f"dtype={name!r} is not one the oracle knows; use one of {', '.join(DTYPES)}"
        )
    return DTYPES[key]


def parse_dtypes(spec: str) -> list[DType]:
    """Parse a comma-separated list such as ``"float64,float32"``."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise DTypeError("no dtype given; use e.g. --dtype float64,float32")
    return [get_dtype(n) for n in names]


def dtype_of(array: Any) -> DType | None:
    """The kit's DType of a numpy array, or None if it is not one of ours."""
    name = np.asarray(array).dtype.name
    return DTYPES.get(name)


def round_to(value: Any, dtype: DType | str) -> float:
    """Round an exact value to the nearest number of ``dtype``, ties to even, as IEEE 754 does.

    ``value`` is an ``mpmath.mpf`` (of any context and precision), an ``int`` or a ``float``; it is
    rounded exactly once, directly to ``dtype``: never through float64 or float32 first (that would
    be a double rounding). Subnormal results get the fixed spacing 2**(emin - t + 1), results at or
    beyond the overflow threshold (rmax + ulp(rmax)/2, where a tie also goes to infinity) become
    +-inf, and NaN stays NaN. The result is a Python float holding the rounded value exactly (every
    format here is a subset of float64), ready for ``np.asarray(result, dtype=dtype.np)``.
    """
    import math

    import mpmath  # the oracle's own dependency, imported where it is needed

    dt = get_dtype(dtype)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        v = int(value)
        sign, man, exp = int(v < 0), abs(v), 0
    else:
        # an mpf of any context (each private MPContext has its own mpf class) carries _mpf_
        if not hasattr(value, "_mpf_"):
            if float(value) == 0:
                return float(value)  # keeps the sign of a float -0.0
            value = mpmath.mpf(float(value))  # a float converts exactly at any precision >= 53
        sign, man, exp, _ = value._mpf_  # value = (-1)**sign * man * 2**exp, exactly
        if man == 0:  # zero, or one of mpmath's special values
            if value != value:
                return math.nan
            if value == 0:
                return -0.0 if sign else 0.0
            return -math.inf if value < 0 else math.inf
        man = int(man)
    if man == 0:
        return 0.0
    e = exp + man.bit_length() - 1  # floor(log2 |value|)
    if e < dt.emin - dt.t:  # below half the smallest subnormal (keeps the shifts below small)
        return -0.0 if sign else 0.0
    if e > dt.emax:
        return -math.inf if sign else math.inf
    q = max(e, dt.emin) - dt.t + 1  # exponent of the ulp at |value|, subnormals included
    if exp >= q:
        n = man << (exp - q)  # already a multiple of the ulp
    else:
        shift = q - exp
        n, rem = man >> shift, man & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        if rem > half or (rem == half and n & 1):
            n += 1
    if n == 0:
        return -0.0 if sign else 0.0
    # overflow: n * 2**q > rmax = (2**t - 1) * 2**qr, compared exactly in integers
    qr = dt.emax - dt.t + 1
    rmax_man = (1 << dt.t) - 1
    if (n << (q - qr) if q >= qr else n) > (rmax_man if q >= qr else rmax_man << (qr - q)):
        return -math.inf if sign else math.inf
    result = math.ldexp(n, q)  # exact: n <= 2**t has at most 54 bits and the value is in range
    return -result if sign else result
