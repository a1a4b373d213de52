"""Wrong derivatives: the seed's errors, and other gradient and dense-layer bugs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from softmax_oracle.targets import builtin_numpy as _careful
from softmax_oracle.zoo._common import _quiet


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


# --- the members ----------------------------------------------------------------------------------

ENTRIES: list[tuple[Any, ...]] = [
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
]
