"""Exact values, computed when read: the mpmath side of the oracle.

Precision is scoped to a private ``mpmath.MPContext`` per working precision (never ``mp.prec``),
inputs are converted exactly (every binary float is an mpf), and nothing is rounded here: the
unrounded references feed the tolerance model, and ``round_to`` rounds them once for display.

``MpVector`` is a float vector seen as mpf values, converted when indexed. A ``Certified`` vector
carries float enclosures of real values (from ``intervals``, via ``reference.FastRows``) and
computes the exact mpf of an element only when asked, so the comparison (``compare.assess``) runs
vectorised and falls back to mpmath only for the elements an enclosure cannot decide.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import mpmath
import numpy as np

__all__ = ["MPF", "Bounds", "Certified", "MpVector", "concat", "context", "mp_vector", "rows_of"]

MPF = Any  # mpmath.mpf of some private context


@functools.cache
def context(prec: int) -> mpmath.MPContext:
    """A private mpmath context at ``prec`` bits (shared per precision, never the global one)."""
    ctx = mpmath.MPContext()
    ctx.prec = prec
    return ctx


def rows_of(a: np.ndarray, axis: int) -> np.ndarray:
    """View an array as (rows, length) with the softmax axis last, as float64 (exact widening)."""
    moved = np.moveaxis(np.asarray(a, dtype=np.float64), axis, -1)
    return moved.reshape(-1, moved.shape[-1]) if moved.ndim else moved.reshape(1, 1)


# =================================================================================================
# Certified vectors: float enclosures now, exact values on demand
# =================================================================================================

#: Enclosures (approx, err, lo): each value lies within err of approx + lo, lo being None or the
#: exact low part of a midpoint that one working-format number cannot hold.
Bounds = tuple[np.ndarray, np.ndarray, np.ndarray | None]


class Certified(Sequence[MPF]):
    """Real numbers v_i, each known to lie in [approx_i - err_i, approx_i + err_i], whose exact
    (working-precision mpmath) values are computed only when indexed, and then cached.

    A drop-in read-only sequence of mpf: iterating or indexing gives exact values. ``bounds``
    gives the enclosures (``Bounds``: arrays of the working format), or None when there are none
    (rows of mpf, a platform without a wide enough format); both are computed lazily.
    """

    __slots__ = ("_bounds", "_cache", "_exact", "_make_bounds", "_size")

    def __init__(self, size: int, exact: Callable[[int], MPF],
                 bounds: Callable[[], Bounds | None] | None = None) -> None:
        self._size = size
        self._exact = exact
        self._make_bounds = bounds
        self._bounds: Bounds | bool | None = False  # False: not computed yet
        self._cache: dict[int, MPF] = {}

    @classmethod
    def of_values(cls, values: Sequence[MPF]) -> Certified:
        """Exact values without enclosures."""
        vals = list(values)
        return cls(len(vals), vals.__getitem__)

    @property
    def bounds(self) -> Bounds | None:
        if self._bounds is False:
            # Masked entries and astronomically wide balls make inf and NaN radii on purpose:
            # a NaN or infinite radius never decides anything (see _compare).
            with np.errstate(all="ignore"):
                self._bounds = self._make_bounds() if self._make_bounds is not None else None
        return self._bounds  # type: ignore[return-value]

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._size))]
        j = int(i)
        if j < 0:
            j += self._size
        if not 0 <= j < self._size:
            raise IndexError(i)
        v = self._cache.get(j)
        if v is None:
            v = self._cache[j] = self._exact(j)
        return v

    def __iter__(self) -> Iterator[MPF]:
        for j in range(self._size):
            yield self[j]

    def __repr__(self) -> str:
        return f"Certified({self._size} values)"


def concat(parts: Iterable[Certified | Sequence[MPF] | MPF]) -> Certified:
    """Join per-row references (Certified vectors, lists of mpf, or single mpf values) into one
    Certified vector; it has enclosures only if every part has them."""
    pieces: list[Certified] = []
    for p in parts:
        if isinstance(p, Certified):
            pieces.append(p)
        elif isinstance(p, (list, tuple)) or (isinstance(p, Sequence) and not hasattr(p, "_mpf_")):
            pieces.append(Certified.of_values(p))
        else:
            pieces.append(Certified.of_values([p]))
    if len(pieces) == 1:
        return pieces[0]
    starts = [0]
    for p in pieces:
        starts.append(starts[-1] + len(p))

    def exact(i: int) -> MPF:
        which = bisect.bisect_right(starts, i) - 1
        return pieces[which][i - starts[which]]

    def bounds() -> Bounds | None:
        got = [p.bounds for p in pieces]
        if any(b is None for b in got):
            return None
        lows = None
        if any(b[2] is not None for b in got):  # type: ignore[index]
            lows = np.concatenate([b[2] if b[2] is not None else np.zeros_like(b[0])  # type: ignore[index]
                                   for b in got])
        return (np.concatenate([b[0] for b in got]),  # type: ignore[index]
                np.concatenate([b[1] for b in got]), lows)  # type: ignore[index]

    return Certified(starts[-1], exact, bounds)


class MpVector(Sequence[MPF]):
    """The exact mpf values of a float vector, converted when indexed (a read-only list).
    ``values`` keeps the float64 numbers, for the fast references."""

    __slots__ = ("_cache", "ctx", "values")

    def __init__(self, ctx: mpmath.MPContext, values: np.ndarray) -> None:
        self.ctx = ctx
        self.values = np.asarray(values, dtype=np.float64).reshape(-1)
        self._cache: list[MPF | None] = [None] * self.values.size

    def __len__(self) -> int:
        return self.values.size

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        v = self._cache[i]
        if v is None:
            v = self._cache[i] = self.ctx.mpf(float(self.values[i]))
        return v

    def __iter__(self) -> Iterator[MPF]:
        for j in range(len(self)):
            yield self[j]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MpVector({self.values.tolist()!r})"


def mp_vector(ctx: mpmath.MPContext, values: np.ndarray) -> MpVector:
    """Exact mpf values of a 1-D float array (converted lazily)."""
    return MpVector(ctx, values)


def _float_values(n: Sequence[MPF] | np.ndarray) -> np.ndarray | None:
    """The float64 numbers behind a vector of targets or cotangents, if they are floats exactly
    (None otherwise: such vectors only have exact references)."""
    if isinstance(n, MpVector):
        return n.values
    if isinstance(n, np.ndarray):
        return n.astype(np.float64).reshape(-1)
    out = np.empty(len(n))
    for i, v in enumerate(n):
        f = float(v)
        if not math.isfinite(f) or f != v:
            return None
        out[i] = f
    return out

