"""Mistakes in the loss API: ignored rows, label smoothing and class weights combined the wrong
way, and half-precision shortcuts in the gradient and in fused kernels.

Each member computes like the careful numpy target (Alg. 4.1 in a wider format, the result
rounded once to the dtype) except for its one mistake. The loss is split the way such code is
usually written, into the one-hot part (1 - ε) w_y e_y and the uniform part (ε/K) w of the smoothed
targets, each with its own mask and denominator: that bookkeeping is where most of these mistakes
live.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from softmax_oracle.targets import builtin_numpy as _careful
from softmax_oracle.zoo._common import _quiet

_wide = _careful._wide
_sum = _careful._sum


@dataclass
class _Parts:
    """One call's log-softmax and the two parts of its smoothed targets, in the wide format:
    ``p`` the one-hot part w_y e_y (0 on ignored rows) and ``u`` the uniform part (ε/K) w on every
    row, ignored rows included (each member masks it its own way)."""

    l: np.ndarray  # (B, K) log-softmax
    p: np.ndarray  # (B, K)
    u: np.ndarray  # (B, K)
    eps: Any
    ignored: np.ndarray  # (B,) bool
    ignore_index: int
    label: np.ndarray  # (B,) class index, 0 on ignored rows
    w: np.ndarray  # (K,) class weights (ones without weight)
    weighted: bool


def _parts(z: np.ndarray, y: Any, weight: Any, ignore_index: int, eps: float) -> _Parts:
    wide = _wide(z.dtype)
    B, K = z.shape
    w = np.ones(K, dtype=wide) if weight is None else np.asarray(weight).astype(wide)
    y = np.asarray(y)
    ignored = y == ignore_index
    label = np.where(ignored, 0, y)
    p = np.zeros((B, K), dtype=wide)
    p[np.arange(B), label] = w[label]
    p[ignored] = 0
    u = np.broadcast_to((wide(eps) / wide(K)) * w, (B, K)).copy()
    return _Parts(_careful._log_softmax_last(z.astype(wide)), p, u, wide(eps), ignored,
                  int(ignore_index), label, w, weight is not None)


def _kept_weight(s: _Parts) -> Any:
    """Σ w_y over the rows not ignored: the denominator of the mean."""
    return _sum(np.where(s.ignored, s.w.dtype.type(0), s.w[s.label]))


def _targets(s: _Parts) -> np.ndarray:
    """The effective targets (1 - ε) p + u, 0 on ignored rows."""
    return np.where(s.ignored[:, None], s.w.dtype.type(0), (1 - s.eps) * s.p + s.u)


def _reduce(l: np.ndarray, parts: list[tuple[np.ndarray, Any]],
            reduction: str) -> tuple[np.ndarray, np.ndarray]:
    """The reduced loss and dL/dz of targets given in parts (t, D): Σ_parts Σ_rows ℓ(t) / D
    (D only for the mean; a mean over D = 0 is NaN with a zero gradient, as PyTorch's)."""
    if reduction not in ("none", "sum", "mean"):
        raise ValueError(f"reduction={reduction!r}: use 'none', 'sum' or 'mean'")
    g = np.exp(l)
    loss: Any = 0
    delta: Any = 0
    for t, D in parts:
        rows = _sum(np.where(t != 0, t * -l, 0))
        d = g * _sum(t, keepdims=True) - t
        if reduction == "none":
            loss, delta = loss + rows, delta + d
        elif reduction == "sum":
            loss, delta = loss + _sum(rows), delta + d
        else:
            loss, delta = loss + _sum(rows) / D, delta + d * (1 / D if D != 0 else D)
    return np.asarray(loss), np.asarray(delta)


Core = Callable[[_Parts, str], tuple[np.ndarray, np.ndarray]]


def _api(core: Core) -> dict[str, Callable[..., Any]]:
    """cross_entropy_loss and cross_entropy_loss_grad (class indices) computed by ``core``, whose
    docstring they take: what goes wrong."""

    def run(z: Any, y: Any, weight: Any, ignore_index: int, label_smoothing: float,
            reduction: str) -> tuple[np.ndarray, np.ndarray]:
        return core(_parts(z, y, weight, ignore_index, label_smoothing), reduction)

    @_quiet
    def cross_entropy_loss(z: Any, y: Any, *, weight: Any = None, ignore_index: int = -100,
                           label_smoothing: float = 0.0, reduction: str = "mean") -> np.ndarray:
        z = _careful._as_float(z)
        loss, _ = run(z, y, weight, ignore_index, label_smoothing, reduction)
        return loss.astype(z.dtype)

    @_quiet
    def cross_entropy_loss_grad(z: Any, y: Any, *, weight: Any = None, ignore_index: int = -100,
                                label_smoothing: float = 0.0,
                                reduction: str = "mean") -> np.ndarray:
        z = _careful._as_float(z)
        _, delta = run(z, y, weight, ignore_index, label_smoothing, reduction)
        return delta.astype(z.dtype)

    cross_entropy_loss.__doc__ = cross_entropy_loss_grad.__doc__ = core.__doc__
    return {"cross_entropy_loss": cross_entropy_loss,
            "cross_entropy_loss_grad": cross_entropy_loss_grad}


# --- ignored rows, label smoothing and weights ----------------------------------------------------


def _smoothing_mask_if_nonnegative(s: _Parts, reduction: str) -> tuple[np.ndarray, np.ndarray]:
    """The uniform part zeroed on ignored rows only ``if ignore_index >= 0``, as if a negative
    index could not occur: with the default -100 an ignored row still costs
    (ε/K) Σ_j w_j (-log p_j), and its gradient is not 0."""
    u = s.u.copy()
    if s.ignore_index >= 0:
        u[s.ignored] = 0
    return _reduce(s.l, [((1 - s.eps) * s.p + u, _kept_weight(s))], reduction)


def _smoothing_mean_over_rows(s: _Parts, reduction: str) -> tuple[np.ndarray, np.ndarray]:
    """The mean of the uniform part divided by every row, ignored ones included: by B
    (smooth_loss.mean()), or with weights by weight[y] summed over every row (an ignored row's
    index clamped into range). The one-hot part is divided by the rows kept."""
    u = np.where(s.ignored[:, None], s.w.dtype.type(0), s.u)
    K = s.w.shape[0]
    y = np.where(s.ignored, s.ignore_index, s.label)
    Du = (_sum(s.w[np.clip(y, 0, K - 1)]) if s.weighted
          else s.w.dtype.type(s.l.shape[0]))
    return _reduce(s.l, [((1 - s.eps) * s.p, _kept_weight(s)), (u, Du)], reduction)


def _smoothing_mask_inverted(s: _Parts, reduction: str) -> tuple[np.ndarray, np.ndarray]:
    """With smoothing, the targets masked by where(ignore, targets, 0) instead of
    where(ignore, 0, targets): the ignored rows are the ones that count. Without smoothing the
    plain path is right."""
    if s.eps == 0:
        return _reduce(s.l, [(_targets(s), _kept_weight(s))], reduction)
    smoothed = (1 - s.eps) * s.p + s.u
    t = np.where(s.ignored[:, None], smoothed, s.w.dtype.type(0))
    return _reduce(s.l, [(t, _kept_weight(s))], reduction)


def _weight_gathered_before_mask(s: _Parts, reduction: str) -> tuple[np.ndarray, np.ndarray]:
    """The weighted mean divided by weight[y] summed over every row, before the ignored rows
    are masked: an in-range ignore_index counts its class's weight, and -100 the weight the
    gather reads for it."""
    if not s.weighted:
        return _reduce(s.l, [(_targets(s), _kept_weight(s))], reduction)
    y = np.where(s.ignored, s.ignore_index, s.label)
    K = s.w.shape[0]
    # weight[y] over every row, as jax.numpy gathers: a negative index counts from the end, and
    # one still out of range is clamped (-100 reads weight[0])
    gathered = s.w[np.clip(np.where(y < 0, y + K, y), 0, K - 1)]
    return _reduce(s.l, [(_targets(s), _sum(gathered))], reduction)


def _weighted_mean_over_rows(s: _Parts, reduction: str) -> tuple[np.ndarray, np.ndarray]:
    """The weighted mean divided by the number of rows kept instead of Σ w_y: right only when
    the weights of the rows' classes average 1."""
    kept = s.w.dtype.type(np.count_nonzero(~s.ignored))
    return _reduce(s.l, [(_targets(s), kept)], reduction)


# --- half precision in the gradient ---------------------------------------------------------------


@_quiet
def _grad_softmax_rounded(z: Any, y: Any, *, weight: Any = None, ignore_index: int = -100,
                          label_smoothing: float = 0.0, reduction: str = "mean") -> np.ndarray:
    """softmax(z) returned in the input's dtype (as torch.softmax on a bfloat16 tensor), then the
    targets subtracted, widened: g = 1 - 2**-10 rounds to 1 in bfloat16, and the correct class's
    gradient g - 1 becomes 0."""
    z = _careful._as_float(z)
    s = _parts(z, y, weight, ignore_index, label_smoothing)
    t = _targets(s)
    g = np.exp(s.l).astype(z.dtype).astype(s.l.dtype)  # the rounding
    delta = g * _sum(t, keepdims=True) - t
    if reduction == "mean":
        D = _kept_weight(s)
        delta = delta * (1 / D if D != 0 else D)
    return delta.astype(z.dtype)


#: Rows per chunk. A real kernel takes thousands of tokens per chunk, over many chunks; the kit's
#: batches are scaled down (up to 512 rows), and so is the chunk.
_CHUNK_ROWS = 1


@_quiet
def _linear_ce_dW_in_dtype(x: Any, W: Any, b: Any, y: Any, *, weight: Any = None,
                           ignore_index: int = -100, label_smoothing: float = 0.0,
                           reduction: str = "mean",
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A chunked fused linear cross-entropy: logits, loss and each chunk's gradients computed
    wide, but dW accumulated across the chunks in a buffer of the weight's dtype
    (``grad_W += delta_chunk.T @ x_chunk`` with grad_W in bfloat16), rounded after every chunk:
    once the running sum is large, every chunk's contribution loses its low bits."""
    x = _careful._as_float(x)
    dt, wide = x.dtype, _wide(x.dtype)
    xw, Ww = x.astype(wide), np.asarray(W).astype(wide)
    z = _careful._matmul(xw, Ww.T) + np.asarray(b).astype(wide)
    loss, delta = _careful._loss_and_delta(z, y, weight, ignore_index, label_smoothing,
                                           reduction)
    dW = np.zeros(Ww.shape, dtype=dt)
    for start in range(0, x.shape[0], _CHUNK_ROWS):
        rows = slice(start, start + _CHUNK_ROWS)
        dW = (dW.astype(wide) + _careful._matmul(delta[rows].T, xw[rows])).astype(dt)
    db = _sum(delta.T)
    dx = _careful._matmul(delta, Ww)
    return (np.asarray(loss).astype(dt), dx.astype(dt), dW, np.asarray(db).astype(dt))


# --- the members ----------------------------------------------------------------------------------

#: The claims that name a mistake about ignored rows.
_IGNORE = ("cross_entropy_loss.ignored_rows_removable", "cross_entropy_loss.matches_reference")

ENTRIES: list[tuple[Any, ...]] = [
    ("smoothing_kept_on_ignored_rows", "ignored rows",
     "label smoothing's uniform part is zeroed on ignored rows only if ignore_index >= 0 "
     "(PyTorch #73205; tinygrad #3570 never zeroed it): with the default -100 an ignored row "
     "still costs ε/K Σ_j -log p_j (z = [[0, 0], [0, 0]], y = [0, -100], ε = 0.5, sum gives "
     "1.5 log 2, exactly log 2).",
     _api(_smoothing_mask_if_nonnegative),
     _IGNORE),
    ("smoothing_mean_counts_ignored_rows", "ignored rows",
     "the mean of label smoothing's uniform part counts every row in its denominator, ignored "
     "ones included (smooth_loss.mean(), or weight[y] summed over every row), while the one-hot "
     "part is divided by the rows kept (PyTorch 1.10, fixed with #69339 and #73205): "
     "z = [[0, 0], [0, 0]], y = [0, -100], ε = 0.5 gives 0.75 log 2, exactly log 2.",
     _api(_smoothing_mean_over_rows),
     ("cross_entropy_loss.ignored_rows_removable",
      "cross_entropy_loss.mean_is_sum_over_denominator")),
    ("smoothing_mask_inverted", "ignored rows",
     "the smoothed targets are masked with where(ignore, targets, 0) instead of "
     "where(ignore, 0, targets) (sockeye #200), only when ε > 0: the loss is that of the "
     "ignored rows, and the rows kept cost nothing (z = [[0, 0]], y = [0], ε = 0.1 gives 0, "
     "exactly log 2).",
     _api(_smoothing_mask_inverted),
     _IGNORE),
    ("weight_gathered_before_mask", "weights",
     "the mean's denominator is weight[y] summed over every row before the ignored ones are "
     "masked (PyTorch #69339, #91383): an in-range ignore_index counts its class's weight, and "
     "-100 reads weight[0] where the gather clamps (z = [[0, 0], [0, 0]], y = [1, -100], "
     "w = [3, 1] gives log(2) / 4, exactly log 2).",
     _api(_weight_gathered_before_mask),
     ("cross_entropy_loss.mean_is_sum_over_denominator",
      "cross_entropy_loss.ignored_rows_removable")),
    ("weighted_mean_over_rows", "weights",
     "the weighted mean divides by the number of rows kept instead of Σ w_y: scaling every "
     "weight by c scales the mean by c (z = [[0, 0]], y = [0], w = [2, 1] gives 2 log 2, "
     "exactly log 2).",
     _api(_weighted_mean_over_rows),
     ("cross_entropy_loss.weight_scale_invariant",
      "cross_entropy_loss.mean_is_sum_over_denominator")),
    ("grad_softmax_rounded", "lost precision",
     "the gradient from softmax(z) rounded to bfloat16 before the label is subtracted: a "
     "confident correct class's gradient g - 1 loses its digits (z = [8, 0, 0, 0], y = 0 gives "
     "0 for the first class, exactly -0.0010). Meets the stable budget; refuted at the "
     "accurate level.",
     {"cross_entropy_loss_grad": _grad_softmax_rounded,
      "cross_entropy_loss": _careful.cross_entropy_loss},
     ("cross_entropy_loss_grad.accurate",), "bfloat16", "accurate"),
    ("fused_dW_accumulated_in_dtype", "lost precision",
     "a chunked fused linear cross-entropy accumulates dW across chunks in bfloat16, rounding "
     "after every chunk (mgmalek/efficient_cross_entropy, axolotl #1601; Liger-Kernel unless "
     "its accum_dtype is float32): where the chunks' contributions add up with one sign, each "
     "addition to the growing sum loses low bits (128 rows whose features have means near 2 "
     "give dW[0, 0] = -0.797, exactly -0.780: 5 u off, where a wide accumulator rounds once). "
     "Meets the stable budget; refuted at the accurate level.",
     {"linear_cross_entropy": _linear_ce_dW_in_dtype},
     ("linear_cross_entropy.accurate",), "bfloat16", "accurate"),
]
