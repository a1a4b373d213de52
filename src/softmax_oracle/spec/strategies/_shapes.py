"""Layouts: how long the softmax rows are, how many, and along which axis they lie."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from softmax_oracle.spec.strategies._common import Array, Draw, _Gen

_LONG_ROW = 256  # rows longer than this are tagged "long"


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


def _draw_row_length(draw: Draw, max_size: int, min_size: int = 1) -> int:
    """70% short rows (1 to 16), 20% medium (17 to 256), 10% long, within [min_size, max_size]:
    a class that ``min_size`` rules out gives way to the next longer one."""
    size_class = draw(st.integers(0, 9))
    if (size_class < 7 or max_size <= 16) and min_size <= 16:
        return int(draw(st.sampled_from(range(min_size, min(16, max_size) + 1))))
    if (size_class < 9 or max_size <= _LONG_ROW) and min_size <= _LONG_ROW:
        return int(draw(st.integers(max(17, min_size), min(_LONG_ROW, max_size))))
    return int(draw(st.integers(max(_LONG_ROW + 1, min_size), max_size)))


#: Vocabulary sizes of language models (and powers of two around them): the lengths of the rows
#: ``vocab_size`` adds. A row is tagged "vocab" from VOCAB_MIN entries on.
VOCAB_SIZES: tuple[int, ...] = (32000, 32768, 50257, 65536, 100277, 128256, 151936, 262144)
VOCAB_MIN = VOCAB_SIZES[0]


def _check_min_size(min_size: int, max_size: int, vocab_size: int = 0) -> int:
    """``min_size`` for a strategy whose rows have at most ``max_size`` entries (and, with
    ``vocab_size``, vocabulary-sized rows of at least VOCAB_MIN)."""
    top = min(max_size, VOCAB_MIN) if vocab_size else max_size
    if isinstance(min_size, bool) or not isinstance(min_size, int) or not 1 <= min_size <= top:
        raise ValueError(
            f"min_size={min_size!r} must be an int from 1 to {top} (max_size={max_size}"
            + (f"; vocabulary-sized rows start at {VOCAB_MIN}" if vocab_size else "")
            + f"), e.g. min_size={min(top, 257)}"
        )
    return min_size


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


def _draw_layout(draw: Draw, max_size: int, batches: bool, vocab_size: int = 0,
                 min_size: int = 1) -> _Layout:
    # One example in 16 gets vocabulary-sized rows (the largest choice, so shrinking leaves it).
    if vocab_size and draw(st.integers(0, 15)) == 15:
        return _draw_vocab_layout(draw, vocab_size, batches)
    n = _draw_row_length(draw, max_size, min_size)
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
