"""Wrong formulas: results that no rounding explains."""

from __future__ import annotations

from typing import Any

import numpy as np

from softmax_oracle.zoo._common import _quiet, _rowsum, _shift


@_quiet
def _logsumexp_max_only(z: Any, axis: int = -1) -> np.ndarray:
    """log-sum-exp "approximated" by the maximum: off by up to log(n)."""
    return np.max(np.asarray(z), axis=axis)


def _exclude_first(z: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = _shift(z, axis)
    w = np.exp(z - a)
    rest = np.delete(w, 0, axis=axis)
    return a, w, np.sum(rest, axis=axis, keepdims=True)


@_quiet
def _softmax_exclude_first(z: Any, axis: int = -1) -> np.ndarray:
    """Alg. 4.1 with the wrong term left out of s: entry 0 instead of the maximal one, so the
    denominator 1 + s is right only when the maximum comes first."""
    _, w, s = _exclude_first(np.asarray(z), axis)
    return w / (1 + s)


@_quiet
def _logsumexp_exclude_first(z: Any, axis: int = -1) -> np.ndarray:
    a, _, s = _exclude_first(np.asarray(z), axis)
    return np.squeeze(a + np.log1p(s), axis)


@_quiet
def _softmax_negated(z: Any, axis: int = -1) -> np.ndarray:
    """exp(-z) copied from a sigmoid: this is softmin, which reverses the order of the classes."""
    z = np.asarray(z)
    e = np.exp(np.min(z, axis=axis, keepdims=True) - z)
    return e / _rowsum(e, axis)


# --- the members ----------------------------------------------------------------------------------

ENTRIES: list[tuple[Any, ...]] = [
    # wrong formulas
    ("lse_max_only", "wrong formula",
     "logsumexp approximated by max(z): off by up to log(n) (z = [0, 0] gives 0, exactly log 2).",
     {"logsumexp": _logsumexp_max_only},
     ("logsumexp.matches_reference",)),
    ("excluded_wrong_index", "wrong formula",
     "Alg. 4.1 leaving out entry 0 instead of the maximal entry: right only when the maximum "
     "comes first (z = [0, 1] gives [0.18, 0.5], exactly [0.27, 0.73]).",
     {"softmax": _softmax_exclude_first, "logsumexp": _logsumexp_exclude_first},
     ("softmax.matches_reference", "softmax.sums_to_one", "softmax.permutation_equivariant",
      "logsumexp.matches_reference")),
    ("softmin", "wrong formula",
     "exp(-z) copied from a sigmoid: softmin, which reverses the order of the probabilities.",
     {"softmax": _softmax_negated},
     ("softmax.order_preserving", "softmax.matches_reference")),
]
