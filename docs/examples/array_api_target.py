"""A softmax-oracle target for a library the kit does not ship: any array library that follows
the Python array API standard, here array-api-strict, the standard's own strict implementation
(``pip install array-api-strict``)::

    softmax-oracle check docs/examples/array_api_target.py --dtype float64,float32,float16

The adapter is the whole pattern for a new framework: numpy arrays in, converted to the library's
arrays at the boundary; the computation in the library alone; the result converted back to numpy
(``np.from_dlpack``), in the input's dtype. The kit compares outside the library.

``__softmax_oracle__`` describes the target: its name and version for the report, and the dtypes
it has kernels for. array-api-strict has no float16 or bfloat16 (``xp.asarray`` raises
``TypeError: ... does not support the dtype 'float16'``); declared, their claims are "not
applicable" instead of refuted by that TypeError.

The algorithm is the max-shifted one that the kit's ``stable`` level asks for (Blanchard, Higham &
Higham 2021, Alg. 4.1 without the log1p refinement): subtract the row maximum (0 for a row that is
entirely -inf, the mask convention), exponentiate, sum, and take one logarithm.
"""

from __future__ import annotations

from typing import Any

import array_api_strict as xp
import numpy as np

__softmax_oracle__ = {
    "name": "array-api-strict",
    "version": xp.__version__,
    "dtypes": ["float64", "float32"],
}


def _shifted(z: Any, axis: int) -> tuple[Any, Any]:
    """(z - a, a) with a the row maximum, or 0 where the row is entirely -inf."""
    a = xp.max(z, axis=axis, keepdims=True)
    a = xp.where(xp.isfinite(a), a, xp.zeros_like(a))
    return z - a, a


def _log_sum(zs: Any, axis: int) -> Any:
    return xp.log(xp.sum(xp.exp(zs), axis=axis, keepdims=True))


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    zs, _ = _shifted(xp.asarray(z), axis)
    w = xp.exp(zs)
    return np.from_dlpack(w / xp.sum(w, axis=axis, keepdims=True))


def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    zs, _ = _shifted(xp.asarray(z), axis)
    return np.from_dlpack(zs - _log_sum(zs, axis))


def logsumexp(z: np.ndarray, axis: int = -1) -> np.ndarray:
    zs, a = _shifted(xp.asarray(z), axis)
    return np.from_dlpack(xp.squeeze(a + _log_sum(zs, axis), axis=axis))


def cross_entropy(z: np.ndarray, n: np.ndarray, axis: int = -1) -> np.ndarray:
    """-sum_j n_j log softmax(z)_j; a target of 0 adds nothing, even where z_j = -inf."""
    zs, _ = _shifted(xp.asarray(z), axis)
    n_ = xp.asarray(n)
    terms = xp.where(n_ == 0, xp.zeros_like(n_), n_ * (zs - _log_sum(zs, axis)))
    return np.from_dlpack(-xp.sum(terms, axis=axis))
