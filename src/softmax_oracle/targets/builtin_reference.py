"""mpmath as a target: the oracle's own values, rounded once to the input's dtype.

This is the same machinery that judges every other target (``softmax_oracle.oracle.reference``: a
private ``mpmath.MPContext`` at 2t + 64 bits, exact inputs, exact gaps x_j - a, log1p of the
sum without the maximal term, 1 - g_j as -expm1(l_j)), so that ``softmax-oracle check reference``
checks the claims about the mathematics with it. Each result is rounded once, directly to the
input's dtype (``round_to``: nearest, ties to even, subnormals and overflow included), never
through float64 first.

Conventions: -inf logits are masks; a row that is entirely -inf has LSE -inf and NaN softmax and
log-softmax; a row holding NaN or +inf gives NaN (LSE +inf for +inf).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import mpmath
import numpy as np

from softmax_oracle.oracle.dtypes import DType, get_dtype, round_to
from softmax_oracle.oracle.exact import MPF, context, mp_vector, rows_of
from softmax_oracle.oracle.reference import RowRef, dense_ref, row_ref

__all__ = [
    "cross_entropy",
    "cross_entropy_grad",
    "dense_grads",
    "log_softmax",
    "logsumexp",
    "softmax",
    "softmax_vjp",
]

__softmax_oracle__ = {"name": "reference", "version": mpmath.__version__, "is_reference": True}


def _special(row: np.ndarray) -> float | None:
    """The LSE of a row with NaN or +inf (NaN or +inf); None for rows the oracle handles."""
    if np.any(np.isnan(row)):
        return float("nan")
    if np.any(row == np.inf):
        return float("inf")
    return None


def _map_rows(z: Any, axis: int, reduce: bool,
              fn: Callable[[RowRef, int], Sequence[MPF]]) -> np.ndarray:
    z = np.asarray(z)
    dt = get_dtype(z.dtype.name)
    moved = np.moveaxis(z, axis, -1)
    out = []
    for i, row in enumerate(rows_of(z, axis)):
        special = _special(row)
        if special is not None:
            out.append([special if reduce else float("nan")] * (1 if reduce else row.size))
            continue
        r = row_ref(row, dt.prec)
        if r.all_masked and not reduce:
            out.append([float("nan")] * row.size)
            continue
        out.append([round_to(v, dt) for v in fn(r, i)])
    shape = moved.shape[:-1] if reduce else moved.shape
    result = np.asarray(out, dtype=np.float64).astype(dt.np).reshape(shape)
    return result if reduce else np.moveaxis(result, -1, axis)


def _rows_like(a: Any, z: Any, axis: int) -> list[Sequence[MPF]]:
    dt = get_dtype(np.asarray(z).dtype.name)
    ctx = context(dt.prec)
    return [mp_vector(ctx, r) for r in rows_of(np.asarray(a), axis)]


def softmax(z: Any, axis: int = -1) -> np.ndarray:
    """softmax(z)_j = exp(l_j), rounded once."""
    return _map_rows(z, axis, False, lambda r, i: r.g)


def log_softmax(z: Any, axis: int = -1) -> np.ndarray:
    """l_j = (z_j - a) - log1p(sum_{i != k} exp(z_i - a)), rounded once."""
    return _map_rows(z, axis, False, lambda r, i: r.l)


def logsumexp(z: Any, axis: int = -1) -> np.ndarray:
    """a + log1p(sum_{i != k} exp(z_i - a)), added exactly and rounded once; axis removed."""
    return _map_rows(z, axis, True, lambda r, i: [r.y])


def softmax_vjp(z: Any, v: Any, axis: int = -1) -> np.ndarray:
    """g_j (v_j - <g, v>), rounded once."""
    vs = _rows_like(v, z, axis)
    return _map_rows(z, axis, False, lambda r, i: r.vjp(vs[i]))


def cross_entropy(z: Any, n: Any, axis: int = -1) -> np.ndarray:
    """C = -sum_{n_j != 0} n_j l_j per row (axis removed), rounded once."""
    ns = _rows_like(n, z, axis)
    return _map_rows(z, axis, True, lambda r, i: [r.cross_entropy(ns[i])])


def cross_entropy_grad(z: Any, n: Any, axis: int = -1) -> np.ndarray:
    """dC/dz_j = g_j S_n - n_j, formed without cancellation; rounded once."""
    ns = _rows_like(n, z, axis)
    return _map_rows(z, axis, False, lambda r, i: r.grad(ns[i]))


def dense_grads(W: Any, b: Any, x: Any, n: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dW, db, dx) of sum over rows of C(x W^T + b, n), each rounded once."""
    dt: DType = get_dtype(np.asarray(W).dtype.name)
    ref = dense_ref(W, b, x, n, dt.prec)

    def pack(values: list[list[MPF]], shape: tuple[int, ...]) -> np.ndarray:
        flat = [round_to(v, dt) for row in values for v in row]
        return np.asarray(flat, dtype=np.float64).astype(dt.np).reshape(shape)

    W = np.asarray(W)
    return (pack(ref.dW, W.shape), pack([ref.db], (W.shape[0],)),
            pack(ref.dx, np.asarray(x).shape))
