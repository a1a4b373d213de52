"""Floating-point mistakes: overflow and underflow, logs of rounded probabilities,
cancellation, shift-variant formulas and lost precision."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from softmax_oracle.targets import builtin_numpy as _careful
from softmax_oracle.zoo._common import _quiet, _rowsum, _shift

# --- overflow and underflow ----------------------------------------------------------------------


@_quiet
def _softmax_unshifted(z: Any, axis: int = -1) -> np.ndarray:
    """exp(z) / sum(exp(z)): exp overflows to inf for z > log(rmax), and inf / inf is NaN."""
    e = np.exp(np.asarray(z))
    return e / _rowsum(e, axis)


@_quiet
def _logsumexp_unshifted(z: Any, axis: int = -1) -> np.ndarray:
    """log(sum(exp(z))): +inf once a logit exceeds log(rmax), -inf when every exp underflows."""
    return np.log(np.sum(np.exp(np.asarray(z)), axis=axis))


@_quiet
def _softmax_mean_shift(z: Any, axis: int = -1) -> np.ndarray:
    """Centres the logits on their mean: z - mean(z) can still be huge (and is NaN with masks)."""
    z = np.asarray(z)
    e = np.exp(z - np.mean(z, axis=axis, keepdims=True))
    return e / _rowsum(e, axis)


@_quiet
def _logsumexp_mean_shift(z: Any, axis: int = -1) -> np.ndarray:
    z = np.asarray(z)
    m = np.mean(z, axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(z - m), axis=axis))


@_quiet
def _softmax_shift_if_positive(z: Any, axis: int = -1) -> np.ndarray:
    """Shifts only to prevent overflow (max(z, 0)): rows of very negative logits give 0 / 0."""
    z = np.asarray(z)
    m = np.maximum(np.max(z, axis=axis, keepdims=True), 0)
    e = np.exp(z - m)
    return e / _rowsum(e, axis)


# --- logs of rounded probabilities ---------------------------------------------------------------


@_quiet
def _log_softmax_log_of_softmax(z: Any, axis: int = -1) -> np.ndarray:
    """log(softmax(z)): -inf wherever a probability underflows (float32 z = [0, -200])."""
    return np.log(_careful.softmax(z, axis))


@_quiet
def _cross_entropy_log_of_softmax(z: Any, n: Any, axis: int = -1) -> np.ndarray:
    """-sum(n * log(softmax(z))): +inf for an underflowed target probability, and NaN from
    0 * log(0) where a zero target meets an underflowed (or masked) probability."""
    return -np.sum(np.asarray(n) * np.log(_careful.softmax(z, axis)), axis=axis)


_EPS = 1e-12


@_quiet
def _log_softmax_epsilon(z: Any, axis: int = -1) -> np.ndarray:
    """log(softmax + 1e-12): never below -27.6, and positive (1e-12) for a dominant class."""
    return np.log(_careful.softmax(z, axis) + _EPS)


@_quiet
def _cross_entropy_epsilon(z: Any, n: Any, axis: int = -1) -> np.ndarray:
    """-sum(n * log(softmax + 1e-12)): a confident wrong prediction costs at most 27.6."""
    return -np.sum(np.asarray(n) * np.log(_careful.softmax(z, axis) + _EPS), axis=axis)


@_quiet
def _cross_entropy_clipped(z: Any, n: Any, axis: int = -1) -> np.ndarray:
    """Probabilities clipped to [1e-7, 1 - 1e-7] before the log, as some frameworks do: the loss
    is capped at 16.1 and is at least 1e-7 even for a certain correct prediction."""
    p = np.clip(_careful.softmax(z, axis), 1e-7, 1 - 1e-7)
    return -np.sum(np.asarray(n) * np.log(p), axis=axis)


# --- cancellation and shift-variant formulas -----------------------------------------------------


@_quiet
def _logsumexp_log_not_log1p(z: Any, axis: int = -1) -> np.ndarray:
    """a + log(sum(exp(z - a))): the sum includes the max term's 1, so a tail s < u is lost
    (z = [0, -40]: gives 0, exactly 4.25e-18). Stable, but not accurate."""
    z = np.asarray(z)
    a = _shift(z, axis)
    return np.squeeze(a, axis) + np.log(np.sum(np.exp(z - a), axis=axis))


def _log_softmax_log_not_log1p_impl(z: np.ndarray, axis: int) -> np.ndarray:
    a = _shift(z, axis)
    return (z - a) - np.log(_rowsum(np.exp(z - a), axis))


@_quiet
def _log_softmax_log_not_log1p(z: Any, axis: int = -1) -> np.ndarray:
    """(z - a) - log(sum(exp(z - a))): the dominant entry's log-probability rounds to 0."""
    return _log_softmax_log_not_log1p_impl(np.asarray(z), axis)


@_quiet
def _cross_entropy_log_not_log1p(z: Any, n: Any, axis: int = -1) -> np.ndarray:
    n = np.asarray(n)
    l = _log_softmax_log_not_log1p_impl(np.asarray(z), axis)
    return -np.sum(np.where(n != 0, n * l, 0), axis=axis)


@_quiet
def _logsumexp_sum_minus_one(z: Any, axis: int = -1) -> np.ndarray:
    """a + log1p(sum(w) - 1): log1p is used, but s is recovered as sum(w) - 1, which has already
    rounded 1 + s; the tail s < u is lost exactly as without log1p."""
    z = np.asarray(z)
    a = _shift(z, axis)
    s = np.sum(np.exp(z - a), axis=axis) - 1
    return np.squeeze(a, axis) + np.log1p(s)


def _lse_plain(z: np.ndarray, axis: int, keepdims: bool = False) -> np.ndarray:
    a = _shift(z, axis)
    lse = a + np.log(_rowsum(np.exp(z - a), axis))
    return lse if keepdims else np.squeeze(lse, axis)


@_quiet
def _log_softmax_z_minus_lse(z: Any, axis: int = -1) -> np.ndarray:
    """z - LSE(z): rounding LSE ~ c for a large common offset c costs an absolute error u|c| in
    every (small) log-probability."""
    z = np.asarray(z)
    return z - _lse_plain(z, axis, keepdims=True)


@_quiet
def _softmax_division_free(z: Any, axis: int = -1) -> np.ndarray:
    """exp(z - LSE(z)), the division-free formula (1.5) of Blanchard, Higham & Higham: the
    absolute error u|LSE| in the exponent becomes a relative error u|c| in every probability."""
    z = np.asarray(z)
    return np.exp(z - _lse_plain(z, axis, keepdims=True))


@_quiet
def _cross_entropy_lse_minus_dot(z: Any, n: Any, axis: int = -1) -> np.ndarray:
    """sum(n) * LSE(z) - <n, z>: two large numbers cancel under a common offset of the logits."""
    z, n = np.asarray(z), np.asarray(n)
    dot = np.sum(np.where(n != 0, n * z, 0), axis=axis)
    return np.sum(n, axis=axis) * _lse_plain(z, axis) - dot


# --- lost precision ------------------------------------------------------------------------------


def _in_precision(fn: Callable[..., Any], compute: type) -> Callable[..., Any]:
    """fn evaluated on inputs cast down to ``compute``, its result cast back to the input dtype."""

    @_quiet
    def lowered(z: Any, axis: int = -1) -> np.ndarray:
        z = np.asarray(z)
        return np.asarray(fn(z.astype(compute), axis)).astype(z.dtype)

    lowered.__doc__ = f"{fn.__name__} computed in {compute.__name__}, cast back."
    return lowered


# --- the members ----------------------------------------------------------------------------------

ENTRIES: list[tuple[Any, ...]] = [
    # overflow and underflow
    ("no_max_shift_softmax", "overflow",
     "softmax = exp(z) / sum(exp(z)) without the max shift: NaN once a logit exceeds log(rmax) "
     "(float64 z = [710, 709] gives [nan, 0], exactly [0.731, 0.269]).",
     {"softmax": _softmax_unshifted},
     ("softmax.finite_for_huge_logits", "softmax.matches_reference", "softmax.in_unit_interval",
      "softmax.sums_to_one", "softmax.shift_invariant")),
    ("no_max_shift_logsumexp", "overflow",
     "logsumexp = log(sum(exp(z))): +inf for z = [710, 709] (exactly 710.313), and -inf when "
     "every exp underflows (z = [-800, -800], exactly -799.307).",
     {"logsumexp": _logsumexp_unshifted},
     ("logsumexp.finite_for_huge_logits", "logsumexp.matches_reference", "logsumexp.bounds",
      "logsumexp.shift")),
    ("mean_shift", "overflow",
     "shifts by the mean instead of the max: z - mean(z) still overflows for a wide row "
     "(z = [2000, 0]: exp(1000) = inf, softmax [nan, 0]), and the mean of a masked row is -inf.",
     {"softmax": _softmax_mean_shift, "logsumexp": _logsumexp_mean_shift},
     ("softmax.finite_for_huge_logits", "softmax.matches_reference", "softmax.sums_to_one",
      "softmax.in_unit_interval", "softmax.masked_entries", "logsumexp.finite_for_huge_logits",
      "logsumexp.matches_reference", "logsumexp.masked_entries")),
    ("shift_only_if_positive", "underflow",
     "shifts by max(z, 0), guarding only against overflow: when all logits are below "
     "log(rmin_sub / 2) every exp underflows and the result is 0/0 (z = [-800, -801] gives NaN); "
     "in the subnormal band the probabilities lose precision.",
     {"softmax": _softmax_shift_if_positive},
     ("softmax.matches_reference", "softmax.sums_to_one", "softmax.shift_invariant",
      "softmax.in_unit_interval")),
    # logs of rounded probabilities
    ("log_of_softmax", "log of an underflowed probability",
     "log_softmax = log(softmax(z)): -inf where the probability underflows "
     "(z = [0, -800] gives -inf, exactly -800).",
     {"log_softmax": _log_softmax_log_of_softmax, "logsumexp": _careful.logsumexp},
     ("log_softmax.finite", "log_softmax.matches_reference", "log_softmax.equals_z_minus_lse")),
    ("ce_log_of_softmax", "log of an underflowed probability",
     "cross_entropy = -sum(n log(softmax(z))): +inf when the target's probability underflows "
     "(z = [0, -800], n = [0, 1] gives inf, exactly 800) and NaN from 0 * log(0).",
     {"cross_entropy": _cross_entropy_log_of_softmax, "logsumexp": _careful.logsumexp},
     ("cross_entropy.finite", "cross_entropy.matches_reference",
      "cross_entropy.zero_targets_ignored", "cross_entropy.lse_form")),
    ("epsilon_in_log", "epsilon hack",
     "log(softmax + 1e-12): the loss of a confident wrong prediction is capped at 27.6 "
     "(z = [0, -100], n = [0, 1] gives 27.6, exactly 100), and the log-probability of a dominant "
     "class is +1e-12 > 0.",
     {"log_softmax": _log_softmax_epsilon, "cross_entropy": _cross_entropy_epsilon,
      "logsumexp": _careful.logsumexp},
     ("cross_entropy.matches_reference", "cross_entropy.lse_form", "log_softmax.matches_reference",
      "log_softmax.equals_z_minus_lse", "log_softmax.nonpositive")),
    ("clipped_probabilities", "epsilon hack",
     "probabilities clipped to [1e-7, 1 - 1e-7] before the log: the loss is capped at 16.1 "
     "(z = [0, -40], n = [0, 1] gives 16.1, exactly 40).",
     {"cross_entropy": _cross_entropy_clipped, "logsumexp": _careful.logsumexp},
     ("cross_entropy.matches_reference", "cross_entropy.lse_form")),
    # cancellation
    ("lse_log_not_log1p", "cancellation",
     "logsumexp = a + log(sum(exp(z - a))): the sum includes the max term's 1, so a tail below u "
     "is lost (z = [0, -40] gives 0, exactly 4.25e-18). Meets the stable budgets; refuted only "
     "at the accurate level.",
     {"logsumexp": _logsumexp_log_not_log1p},
     ("logsumexp.accurate",), "float64", "accurate"),
    ("log_softmax_log_not_log1p", "cancellation",
     "log_softmax = (z - a) - log(sum(exp(z - a))): the dominant class's log-probability rounds "
     "to 0 (z = [0, -40] gives [0, -40], exactly [-4.25e-18, -40]); likewise the loss of a "
     "confident correct prediction. Refuted only at the accurate level.",
     {"log_softmax": _log_softmax_log_not_log1p, "cross_entropy": _cross_entropy_log_not_log1p},
     ("log_softmax.accurate", "cross_entropy.accurate"), "float64", "accurate"),
    ("lse_sum_minus_one", "cancellation",
     "logsumexp = a + log1p(sum(w) - 1): log1p cannot restore the tail that sum(w) already "
     "rounded away (z = [0, -40] gives 0, exactly 4.25e-18). Refuted only at the accurate level.",
     {"logsumexp": _logsumexp_sum_minus_one},
     ("logsumexp.accurate",), "float64", "accurate"),
    ("log_softmax_z_minus_lse", "shift-variant formula",
     "log_softmax = z - LSE(z): under a large common offset c the rounding of LSE ~ c costs "
     "u|c| absolutely in every log-probability (float32 z = 1e6 + [0, 0.5] gives [-1, -0.5], "
     "exactly [-0.974, -0.474]).",
     {"log_softmax": _log_softmax_z_minus_lse},
     ("log_softmax.matches_reference",), "float32"),
    ("division_free_softmax", "shift-variant formula",
     "softmax = exp(z - LSE(z)) (formula (1.5) of Blanchard, Higham & Higham): under a large "
     "common offset c every probability has relative error ~u|c| and the sum drifts from 1 "
     "(float32 z = 1e7 + [0, 0.5, 1] gives [0.135, 0.135, 0.368], exactly [0.212, 0.212, 0.576]).",
     {"softmax": _softmax_division_free},
     ("softmax.matches_reference", "softmax.sums_to_one", "softmax.shift_invariant"), "float32"),
    ("ce_lse_minus_dot", "shift-variant formula",
     "cross_entropy = sum(n) LSE(z) - <n, z>: two numbers of size |c| cancel under a common "
     "offset c of the logits (float32 z = 1e6 + [0, 1], n = [1, 0] gives 1.3125, exactly "
     "1.31326).",
     {"cross_entropy": _cross_entropy_lse_minus_dot},
     ("cross_entropy.matches_reference",), "float32"),
    # lost precision
    ("float32_accumulation", "lost precision",
     "a float64 input is computed in float32 and cast back: about 1e-7 relative error, and "
     "logits beyond 3.4e38 become inf (NaN softmax).",
     {"softmax": _in_precision(_careful.softmax, np.float32),
      "logsumexp": _in_precision(_careful.logsumexp, np.float32)},
     ("softmax.matches_reference", "logsumexp.matches_reference", "softmax.sums_to_one",
      "softmax.finite_for_huge_logits", "logsumexp.finite_for_huge_logits")),
    ("float16_accumulation", "lost precision",
     "a float32 input is computed in float16 and cast back: about 5e-4 relative error, and "
     "logits beyond 65504 become inf.",
     {"softmax": _in_precision(_careful.softmax, np.float16),
      "logsumexp": _in_precision(_careful.logsumexp, np.float16)},
     ("softmax.matches_reference", "logsumexp.matches_reference", "softmax.sums_to_one",
      "softmax.finite_for_huge_logits", "logsumexp.finite_for_huge_logits"), "float32"),
]
