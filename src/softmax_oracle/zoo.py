"""The bug zoo: known-bad implementations, each carrying one realistic mistake.

The zoo is the kit's proof that it finds the bugs it claims to find (in the spirit of
Hypothesis's ``tests/quality``): every member of ``ZOO`` must be refuted, in its ``dtype`` and at
its ``level``, by at least one of the claims listed in its ``refuted_by``, the claims that name its
bug. ``CONTROL`` is the careful numpy implementation dressed as a member; it must be refuted by
nothing.

A member implements only the function(s) that carry its bug, plus a correct companion where a
claim needs one: a gradient bug comes with a correct ``cross_entropy`` so that
``cross_entropy_grad.derivative_of_own_loss`` can run, and a log-softmax or loss bug with a correct
``logsumexp`` for ``log_softmax.equals_z_minus_lse`` and ``cross_entropy.lse_form``. The code is
written the way these mistakes are written in practice; each function says in its docstring what
goes wrong, and each member's ``description`` gives an input that shows it.

Use a member as a target with ``as_target``::

    from softmax_oracle.targets import load_target
    from softmax_oracle.zoo import ZOO, as_target
    target = load_target(as_target(ZOO[0]))
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from softmax_oracle.targets import builtin_numpy as _careful

__all__ = ["CONTROL", "ZOO", "ZooMember", "as_target"]


@dataclass(frozen=True)
class ZooMember:
    """One known-bad implementation and the claims that must catch it.

    ``refuted_by`` lists claim ids of which at least one must refute the member when it is checked
    in ``dtype`` at ``level`` ("stable" or "accurate"); ``functions`` maps protocol names to the
    member's implementations.
    """

    name: str
    bug_class: str
    description: str
    functions: Mapping[str, Callable[..., Any]] = field(compare=False, hash=False)
    refuted_by: tuple[str, ...]
    dtype: str = "float64"
    level: str = "stable"

    def __post_init__(self) -> None:
        object.__setattr__(self, "functions", types.MappingProxyType(dict(self.functions)))


def as_target(member: ZooMember) -> types.SimpleNamespace:
    """A plain object exposing the member's functions, loadable by ``targets.load_target``."""
    return types.SimpleNamespace(
        **member.functions, __softmax_oracle__={"name": "zoo:" + member.name}
    )


F = TypeVar("F", bound=Callable[..., Any])


def _quiet(fn: F) -> F:
    """Silence numpy's floating-point warnings, so that a bug shows up as inf/NaN in the output."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _rowsum(x: np.ndarray, axis: int) -> np.ndarray:
    return np.sum(x, axis=axis, keepdims=True)


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


def _shift(z: np.ndarray, axis: int) -> np.ndarray:
    """The row maximum, 0 for rows that are entirely -inf."""
    a = np.max(z, axis=axis, keepdims=True)
    return np.where(np.isneginf(a), np.zeros((), z.dtype), a)


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


# --- interface bugs ------------------------------------------------------------------------------


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


# --- the seed's derivative errors and other gradient bugs ----------------------------------------


@_quiet
def _grad_seed_extra_factor(z: Any, n: Any, axis: int = -1) -> np.ndarray:
    """(a - n) * a * (1 - a): the seed's section 2.3 multiplies dC/dz by the activation's
    derivative a second time."""
    a = _careful.softmax(z, axis)
    return (a - np.asarray(n)) * a * (1 - a)


@_quiet
def _vjp_seed_diagonal(z: Any, v: Any, axis: int = -1) -> np.ndarray:
    """v * a * (1 - a): the seed's da/dz = a(1 - a), only the diagonal of the softmax Jacobian."""
    a = _careful.softmax(z, axis)
    return np.asarray(v) * a * (1 - a)


@_quiet
def _vjp_missing_mean(z: Any, v: Any, axis: int = -1) -> np.ndarray:
    """a * v: the vector-Jacobian product without its - a <a, v> term (diag(a) for the Jacobian)."""
    return _careful.softmax(z, axis) * np.asarray(v)


@_quiet
def _grad_sign_error(z: Any, n: Any, axis: int = -1) -> np.ndarray:
    """n - a * sum(n): the gradient with the wrong sign (the ascent direction)."""
    n = np.asarray(n)
    return n - _careful.softmax(z, axis) * np.sum(n, axis=axis, keepdims=True)


def _dense_delta(W: np.ndarray, b: np.ndarray, x: np.ndarray, n: np.ndarray) -> np.ndarray:
    return _careful.cross_entropy_grad(x @ W.T + b, n)


def _dense(
    dW: Callable[..., Any] | None = None,
    db: Callable[..., Any] | None = None,
    dx: Callable[..., Any] | None = None,
    delta: Callable[..., Any] = _dense_delta,
    doc: str = "",
) -> Callable[..., Any]:
    """A dense_grads with one or more of its three formulas replaced."""

    @_quiet
    def dense_grads(W: Any, b: Any, x: Any, n: Any) -> tuple[Any, Any, Any]:
        W, b, x, n = (np.asarray(t) for t in (W, b, x, n))
        d = delta(W, b, x, n)
        return (
            dW(d, x, W) if dW else d.T @ x,
            db(d) if db else np.sum(d, axis=0),
            dx(d, W) if dx else d @ W,
        )

    dense_grads.__doc__ = doc
    return dense_grads


@_quiet
def _dense_seed_dW(W: Any, b: Any, x: Any, n: Any) -> tuple[Any, Any, Any]:
    """dW from the seed's section 2.3, delta_seed = (a - n) a (1 - a); db and dx are right."""
    W, b, x, n = (np.asarray(t) for t in (W, b, x, n))
    a = _careful.softmax(x @ W.T + b)
    delta = a * np.sum(n, axis=-1, keepdims=True) - n
    delta_seed = (a - n) * a * (1 - a)
    return delta_seed.T @ x, np.sum(delta, axis=0), delta @ W


def _delta_no_bias(W: np.ndarray, b: np.ndarray, x: np.ndarray, n: np.ndarray) -> np.ndarray:
    return _careful.cross_entropy_grad(x @ W.T, n)


# --- bugs that do not repeat themselves ----------------------------------------------------------

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


# --- wrong formulas ------------------------------------------------------------------------------


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


# --- the zoo -------------------------------------------------------------------------------------

_ZOO = [
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
    ("ce_zero_times_inf", "masks",
     "cross_entropy = -sum(n * log_softmax(z)) with an accurate log-softmax: a masked logit with "
     "a zero target gives 0 * -inf = NaN (z = [0, -inf], n = [1, 0] gives NaN, exactly 0).",
     {"cross_entropy": _cross_entropy_zero_times_inf},
     ("cross_entropy.masked_logits",), "float64", "accurate"),
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
    # the seed's errors and other derivative bugs
    ("seed_extra_factor_grad", "derivative",
     "the seed's section 2.3: dC/dz = (a - n) a (1 - a), the activation derivative applied twice "
     "(z = [0, 0], n = [1, 0] gives [-0.125, 0.125], exactly [-0.5, 0.5]).",
     {"cross_entropy_grad": _grad_seed_extra_factor, "cross_entropy": _careful.cross_entropy},
     ("cross_entropy_grad.normalised_targets", "cross_entropy_grad.any_targets",
      "cross_entropy_grad.finite_differences", "cross_entropy_grad.derivative_of_own_loss")),
    ("seed_extra_factor_dW", "derivative",
     "dense dW = delta_seed^T x with the seed's delta_seed = (a - n) a (1 - a); db and dx are "
     "right.",
     {"dense_grads": _dense_seed_dW},
     ("dense_grads.dW",)),
    ("seed_diagonal_vjp", "derivative",
     "the seed's section 2.1: da/dz = a (1 - a), the Jacobian's diagonal, used as the full "
     "Jacobian (z = [0, 0], v = [1, 1] gives [0.25, 0.25], exactly [0, 0]).",
     {"softmax_vjp": _vjp_seed_diagonal},
     ("softmax_vjp.matches_reference", "softmax_vjp.sums_to_zero")),
    ("vjp_missing_mean", "derivative",
     "softmax_vjp = a * v, without the - a <a, v> term (z = [0, 0], v = [1, 1] gives [0.5, 0.5], "
     "exactly [0, 0]).",
     {"softmax_vjp": _vjp_missing_mean},
     ("softmax_vjp.matches_reference", "softmax_vjp.sums_to_zero")),
    ("grad_sign_error", "derivative",
     "cross_entropy_grad = n - a sum(n): the gradient with its sign flipped.",
     {"cross_entropy_grad": _grad_sign_error, "cross_entropy": _careful.cross_entropy},
     ("cross_entropy_grad.normalised_targets", "cross_entropy_grad.any_targets",
      "cross_entropy_grad.finite_differences", "cross_entropy_grad.derivative_of_own_loss")),
    ("transposed_dW", "derivative",
     "dW = x^T delta, shape (m, k) instead of (k, m) (and wrong values when k = m).",
     {"dense_grads": _dense(dW=lambda d, x, W: x.T @ d, doc="dW = x^T delta (transposed).")},
     ("dense_grads.dW", "dense_grads.shape_and_dtype")),
    ("dW_batch_mean", "derivative",
     "dW averaged over the batch (delta^T x / B) while db and dx are summed: L is a sum over "
     "rows, so dW is B times too small.",
     {"dense_grads": _dense(dW=lambda d, x, W: d.T @ x / x.shape[0],
                            doc="dW = delta^T x / B (a mean where L is a sum).")},
     ("dense_grads.dW",)),
    ("db_not_summed", "derivative",
     "db returned per sample, delta of shape (B, k), instead of summed over the batch.",
     {"dense_grads": _dense(db=lambda d: d, doc="db = delta, not reduced over the batch.")},
     ("dense_grads.db", "dense_grads.shape_and_dtype")),
    ("dx_uses_W_transposed", "derivative",
     "dx = delta W^T, from a derivation with the other weight layout: a shape error unless "
     "k = m, and wrong values when it is.",
     {"dense_grads": _dense(dx=lambda d, W: d @ W.T, doc="dx = delta W^T (wrong layout).")},
     ("dense_grads.dx",)),
    ("dense_forward_without_bias", "derivative",
     "the forward pass in dense_grads forgets the bias: z = x W^T instead of x W^T + b.",
     {"dense_grads": _dense(delta=_delta_no_bias, doc="delta from z = x W^T (no bias).")},
     ("dense_grads.dW", "dense_grads.db", "dense_grads.dx")),
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

ZOO: tuple[ZooMember, ...] = tuple(ZooMember(*entry) for entry in _ZOO)  # type: ignore[arg-type]

#: The careful numpy implementation as a zoo entry: no claim may refute it.
CONTROL = ZooMember(
    name="control",
    bug_class="none",
    description="the kit's careful numpy implementation (Alg. 4.1 of Blanchard, Higham & Higham "
    "2021); every claim must hold for it.",
    functions={name: getattr(_careful, name) for name in _careful.__all__},
    refuted_by=(),
)
