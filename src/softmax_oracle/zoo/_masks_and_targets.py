"""Mistakes with masks (-inf logits) and with targets that do not sum to one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from softmax_oracle.targets import builtin_numpy as _careful
from softmax_oracle.zoo._common import _quiet

# --- masks ---------------------------------------------------------------------------------------


def _fill_masks(z: Any, value: Callable[[np.ndarray], Any]) -> np.ndarray:
    z = np.asarray(z)
    return np.where(np.isneginf(z), np.asarray(value(z), dtype=z.dtype), z)


@_quiet
def _softmax_mask_minus_1e4(z: Any, axis: int = -1) -> np.ndarray:
    """Masks replaced by -1e4 (an "fp16-safe" large negative number): a masked entry is no longer
    0 once the other logits are around -1e4, and an all-masked row becomes uniform."""
    return _careful.softmax(_fill_masks(z, lambda _: -1e4), axis)


@_quiet
def _logsumexp_mask_minus_1e4(z: Any, axis: int = -1) -> np.ndarray:
    return _careful.logsumexp(_fill_masks(z, lambda _: -1e4), axis)


def _dtype_min(z: np.ndarray) -> Any:
    return np.finfo(z.dtype).min


@_quiet
def _logsumexp_mask_dtype_min(z: Any, axis: int = -1) -> np.ndarray:
    """Masks replaced by the dtype's most negative finite number: an all-masked row gets a finite
    log-sum-exp (about -1.8e308) instead of -inf."""
    return _careful.logsumexp(_fill_masks(z, _dtype_min), axis)


@_quiet
def _log_softmax_mask_dtype_min(z: Any, axis: int = -1) -> np.ndarray:
    """Masked entries get a finite log-probability (about -1.8e308) instead of -inf."""
    return _careful.log_softmax(_fill_masks(z, _dtype_min), axis)


@_quiet
def _logsumexp_unguarded_shift(z: Any, axis: int = -1) -> np.ndarray:
    """Alg. 4.1 without the guard for all-masked rows: -inf - (-inf) is NaN, so a fully masked row
    gives NaN instead of -inf."""
    z = np.asarray(z)
    a = np.max(z, axis=axis, keepdims=True)
    w = np.exp(z - a)
    k = np.argmax(z, axis=axis)
    s = np.sum(w, axis=axis) - np.take_along_axis(w, np.expand_dims(k, axis), axis).squeeze(axis)
    return np.squeeze(a, axis) + np.log1p(s)


@_quiet
def _cross_entropy_zero_times_inf(z: Any, n: Any, axis: int = -1) -> np.ndarray:
    """-sum(n * log_softmax(z)) with an accurate log-softmax, but 0 * -inf = NaN where a masked
    logit has a zero target."""
    return -np.sum(np.asarray(n) * _careful.log_softmax(z, axis), axis=axis)


# --- targets -------------------------------------------------------------------------------------


@_quiet
def _grad_a_minus_n(z: Any, n: Any, axis: int = -1) -> np.ndarray:
    """softmax(z) - n: the gradient only when sum(n) = 1; it should be softmax(z) * sum(n) - n."""
    return _careful.softmax(z, axis) - np.asarray(n)


@_quiet
def _cross_entropy_renormalised(z: Any, n: Any, axis: int = -1) -> np.ndarray:
    """Silently divides the targets by their sum: wrong whenever sum(n) != 1."""
    n = np.asarray(n)
    return _careful.cross_entropy(z, n / np.sum(n, axis=axis, keepdims=True), axis)


@_quiet
def _cross_entropy_batch_mean(z: Any, n: Any, axis: int = -1) -> np.ndarray:
    """Returns the mean over the batch (a scalar) instead of one loss per row."""
    return np.mean(_careful.cross_entropy(z, n, axis))


# --- the members ----------------------------------------------------------------------------------

ENTRIES: list[tuple[Any, ...]] = [
    # masks
    ("mask_as_minus_1e4", "masks",
     "-inf masks replaced by -1e4: a masked entry gets weight once the other logits are near -1e4 "
     "(z = [-1e4, -inf] gives [0.5, 0.5], exactly [1, 0]); an all-masked row has "
     "logsumexp -1e4 + log(n) instead of -inf.",
     {"softmax": _softmax_mask_minus_1e4, "logsumexp": _logsumexp_mask_minus_1e4},
     ("softmax.masked_entries", "softmax.matches_reference", "logsumexp.masked_entries"),
     "float32"),
    ("mask_as_dtype_min", "masks",
     "-inf masks replaced by the dtype's most negative number: masked log-probabilities are "
     "-1.8e308 instead of -inf, and an all-masked row has a finite log-sum-exp.",
     {"logsumexp": _logsumexp_mask_dtype_min, "log_softmax": _log_softmax_mask_dtype_min},
     ("logsumexp.masked_entries", "log_softmax.masked_entries", "log_softmax.matches_reference")),
    ("masked_row_nan", "masks",
     "the max shift without a guard for all-masked rows: -inf - (-inf) = NaN, so "
     "logsumexp([-inf, -inf]) is NaN instead of -inf.",
     {"logsumexp": _logsumexp_unguarded_shift},
     ("logsumexp.masked_entries",)),
    # targets
    ("unnormalised_targets", "targets",
     "cross_entropy_grad = softmax(z) - n, right only when sum(n) = 1 (z = [0, 0], n = [2, 0] "
     "gives [-1.5, 0.5], exactly [-1, 1]).",
     {"cross_entropy_grad": _grad_a_minus_n, "cross_entropy": _careful.cross_entropy},
     ("cross_entropy_grad.any_targets", "cross_entropy_grad.sums_to_zero",
      "cross_entropy_grad.finite_differences", "cross_entropy_grad.derivative_of_own_loss")),
    ("renormalised_targets", "targets",
     "cross_entropy silently divides n by sum(n) (z = [0, 0], n = [2, 0] gives log 2, "
     "exactly 2 log 2).",
     {"cross_entropy": _cross_entropy_renormalised, "logsumexp": _careful.logsumexp},
     ("cross_entropy.matches_reference", "cross_entropy.lse_form")),
    ("batch_mean_loss", "interface",
     "cross_entropy returns the mean over the batch, a scalar, instead of one loss per row.",
     {"cross_entropy": _cross_entropy_batch_mean},
     ("cross_entropy.shape_and_dtype", "cross_entropy.axis_and_batch")),
]

#: Not bugs: implementations that follow the other legitimate convention where the specification
#: states one (``zoo.CONVENTIONS``).
CONVENTIONS: list[tuple[Any, ...]] = [
    ("ce_zero_times_inf", "masks",
     "cross_entropy = -sum(n * log_softmax(z)) with an accurate log-softmax: a masked logit with "
     "a zero target gives 0 * -inf = NaN (z = [0, -inf], n = [1, 0] gives NaN; 0 log 0 = 0 gives "
     "0), as PyTorch, JAX and optax compute.",
     {"cross_entropy": _cross_entropy_zero_times_inf}, (), "float64", "stable",
     ("cross_entropy.masked_logits",)),
]
