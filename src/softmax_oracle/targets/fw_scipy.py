"""The ``scipy`` target: ``scipy.special.softmax``, ``log_softmax`` and ``logsumexp``.

SciPy has no cross-entropy or gradients, so this target has only those three functions. They take
numpy arrays directly; there is no conversion on the way in.

What SciPy (1.16, 1.17) does with each dtype, and what the target therefore does:

- float64, float32: computes in that dtype and returns it.
- float16: computes with numpy's float16 ufuncs (each exp, subtraction, division and log rounded
  to float16; numpy's float16 sums accumulate in float32) and returns float16.
- bfloat16 (ml_dtypes): ``softmax`` and ``log_softmax`` compute with ml_dtypes' bfloat16 ufuncs and
  return bfloat16. Each operation is rounded to bfloat16, sums included: numpy adds bfloat16 values
  one at a time in bfloat16, so a row of more than 256 equal logits sums to 256, not to n.
  ``logsumexp`` does not treat bfloat16 as a floating type: SciPy 1.16 promotes the input to
  float64, computes there and returns float64; from SciPy 1.17 on it raises TypeError
  (``np.isdtype`` rejects ml_dtypes' bfloat16), which the kit reports as a refutation naming the
  exception: a SciPy user cannot call it on bfloat16 arrays.

The target returns the input's dtype, as the protocol requires. Where SciPy returned another
dtype (only ``logsumexp`` on bfloat16, in SciPy 1.16) the result is cast with ``.astype``, which is
what a SciPy user working in bfloat16 would write. ml_dtypes casts float64 to bfloat16 through
float32, so that result is rounded twice; the error is still within one bfloat16 ulp, which the
kit always allows.

No ``compute_dtype`` is declared: it applies to a whole dtype, and for float16 and bfloat16 softmax
and log_softmax round every intermediate to the input dtype. ``exp`` is numpy's, the one SciPy
calls; numpy keeps subnormals.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy
import scipy.special

__all__ = ["log_softmax", "logsumexp", "softmax"]


def _as_dtype_of(result: Any, z: np.ndarray) -> np.ndarray:
    """SciPy's result as an array of z's dtype (a no-op unless SciPy promoted it)."""
    result = np.asarray(result)
    return result if result.dtype == z.dtype else result.astype(z.dtype)


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    return _as_dtype_of(scipy.special.softmax(z, axis=axis), z)


def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    return _as_dtype_of(scipy.special.log_softmax(z, axis=axis), z)


def logsumexp(z: np.ndarray, axis: int = -1) -> np.ndarray:
    return _as_dtype_of(scipy.special.logsumexp(z, axis=axis), z)


__softmax_oracle__ = {
    "name": "scipy",
    "version": scipy.__version__,
    "dtypes": ("float64", "float32", "float16", "bfloat16"),
    "compute_dtype": {},
    "exp": np.exp,
}
