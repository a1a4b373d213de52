"""Mistakes in the interface: mutated inputs, the wrong dtype, ignored axes, a fast path
that skips the normalisation."""

from __future__ import annotations

from typing import Any

import numpy as np

from softmax_oracle.targets import builtin_numpy as _careful
from softmax_oracle.zoo._common import _quiet


def _softmax_in_place(z: Any, axis: int = -1) -> np.ndarray:
    """Saves memory by working in the caller's array: the input is overwritten with the result."""
    with np.errstate(all="ignore"):
        z -= np.max(z, axis=axis, keepdims=True)
        np.exp(z, out=z)
        z /= np.sum(z, axis=axis, keepdims=True)
    return z


@_quiet
def _softmax_float64_out(z: Any, axis: int = -1) -> np.ndarray:
    """np.asarray(z, dtype=float) "for safety": a float32 input gives a float64 result."""
    return _careful.softmax(np.asarray(z, dtype=float), axis)


@_quiet
def _logsumexp_float64_out(z: Any, axis: int = -1) -> np.ndarray:
    return _careful.logsumexp(np.asarray(z, dtype=float), axis)


@_quiet
def _softmax_axis0(z: Any, axis: int = -1) -> np.ndarray:
    """Ignores ``axis`` and normalises along axis 0 (right only for 1-D input)."""
    return _careful.softmax(z, 0)


@_quiet
def _logsumexp_axis0(z: Any, axis: int = -1) -> np.ndarray:
    return _careful.logsumexp(z, 0)


@_quiet
def _log_softmax_last_axis(z: Any, axis: int = -1) -> np.ndarray:
    """Ignores ``axis`` and always works along the last axis."""
    return _careful.log_softmax(z, -1)


@_quiet
def _softmax_vjp_last_axis(z: Any, v: Any, axis: int = -1) -> np.ndarray:
    return _careful.softmax_vjp(z, v, -1)


@_quiet
def _softmax_length1_exp(z: Any, axis: int = -1) -> np.ndarray:
    """A "fast path" for a single class that skips the normalisation and returns exp(z)."""
    z = np.asarray(z)
    if z.shape[axis] == 1:
        return np.exp(z)
    return _careful.softmax(z, axis)


# --- the members ----------------------------------------------------------------------------------

ENTRIES: list[tuple[Any, ...]] = [
    # interface
    ("in_place_shift", "interface",
     "softmax works in the caller's array (z -= z.max(); np.exp(z, out=z); ...): the input is "
     "overwritten.",
     {"softmax": _softmax_in_place},
     ("softmax.no_mutation",)),
    ("float64_result", "interface",
     "np.asarray(z, dtype=float) at the start: float32 inputs give float64 results.",
     {"softmax": _softmax_float64_out, "logsumexp": _logsumexp_float64_out},
     ("softmax.shape_and_dtype", "logsumexp.shape_and_dtype"), "float32"),
    ("axis_ignored_first", "interface",
     "ignores the axis argument and always works along axis 0 (right only for 1-D input).",
     {"softmax": _softmax_axis0, "logsumexp": _logsumexp_axis0},
     ("softmax.axis_and_batch", "logsumexp.axis_and_batch")),
    ("axis_ignored_last", "interface",
     "ignores the axis argument and always works along the last axis.",
     {"log_softmax": _log_softmax_last_axis, "softmax_vjp": _softmax_vjp_last_axis},
     ("log_softmax.axis_and_batch", "softmax_vjp.axis_and_batch")),
    ("length1_unnormalised", "interface",
     "a fast path for a single class returns exp(z), skipping the normalisation "
     "(z = [[2.0]] gives 7.39, exactly 1).",
     {"softmax": _softmax_length1_exp},
     ("softmax.sums_to_one", "softmax.matches_reference", "softmax.in_unit_interval",
      "softmax.shift_invariant")),
]
