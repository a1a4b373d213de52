"""Bugs that do not repeat themselves: results that change from call to call."""

from __future__ import annotations

from typing import Any

import numpy as np

from softmax_oracle.targets import builtin_numpy as _careful
from softmax_oracle.zoo._common import _quiet, _shift

_RNG = np.random.default_rng()  # deliberately unseeded


def _sum_in_random_order(w: np.ndarray, axis: int) -> np.ndarray:
    """Sequential sum in a fresh random order each call, like unordered atomic adds on a GPU."""
    w = np.moveaxis(w, axis, -1)
    total = np.zeros(w.shape[:-1], dtype=w.dtype)
    for i in _RNG.permutation(w.shape[-1]):
        total = total + w[..., i]
    return total


@_quiet
def _softmax_random_order(z: Any, axis: int = -1) -> np.ndarray:
    """Shifted softmax whose denominator is summed in a random order: the last bits change
    from call to call."""
    z = np.asarray(z)
    w = np.exp(z - _shift(z, axis))
    return w / np.expand_dims(_sum_in_random_order(w, axis), axis)


@_quiet
def _log_softmax_jitter(z: Any, axis: int = -1) -> np.ndarray:
    """Adds tiny random noise to the logits "to break ties": results differ between calls and
    from the exact value by about 1e-9."""
    z = np.asarray(z)
    jitter = _RNG.uniform(-1e-9, 1e-9, size=z.shape).astype(z.dtype)
    return _careful.log_softmax(z + jitter, axis)


# --- the members ----------------------------------------------------------------------------------

ENTRIES: list[tuple[Any, ...]] = [
    # nondeterminism
    ("random_summation_order", "nondeterminism",
     "the softmax denominator is summed in a random order (as unordered atomic additions do): "
     "the last bits change from call to call on rows of more than two entries.",
     {"softmax": _softmax_random_order},
     ("softmax.deterministic",)),
    ("tie_breaking_jitter", "nondeterminism",
     "random noise of 1e-9 added to the logits to break ties: results change between calls and "
     "are 1e-9 away from the exact values.",
     {"log_softmax": _log_softmax_jitter},
     ("log_softmax.deterministic", "log_softmax.matches_reference")),
]
