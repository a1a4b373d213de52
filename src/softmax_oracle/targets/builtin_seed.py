"""The seed derivation's formulas, implemented exactly as written.

The seed is a student derivation of the gradient of a softmax output layer with a categorical
cross-entropy loss. Each function below quotes (in English) the section it implements. Where the
seed is wrong the code is wrong in the same way, on purpose: this target exists to show how each
error is refuted.

* Section 1 / 2.1 define softmax unshifted, a_j = e^{z_j} / sum_j e^{z_j}, and section 1 the loss
  C = -sum_j n_j log(p_j), evaluated here as the log of the computed probability.
* Section 2.1 derives da/dZ = a(1 - a) treating a as a scalar: the diagonal of the softmax
  Jacobian only. ``softmax_vjp`` applies it elementwise, v * a * (1 - a).
* Section 2.2 concludes dC/da = a_i - n_i "because sum_j n_j = 1". The value a - n is in fact
  the gradient with respect to the logits z, and only for targets that sum to one;
  ``cross_entropy_grad`` returns a - n.
* Section 2.3 multiplies that again by a(1 - a) and by w^(L-1):
  dC/dw^(L) = (a_i - n_i) a^L (1 - a^L) w^(L-1). ``dense_grads`` keeps the extra a(1 - a) factor.
  The second error, the previous layer's *weights* w^(L-1) where the previous layer's *activation*
  a^(L-1) belongs, cannot be expressed in this protocol: a dense layer here has no previous-layer
  weights, and its input x plays the role of a^(L-1). That error is audited separately, as a
  mathematical claim about the derivation rather than as code.

The seed has no log-sum-exp or log-softmax, so this target does not provide them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["cross_entropy", "cross_entropy_grad", "dense_grads", "softmax", "softmax_vjp"]

__softmax_oracle__ = {"name": "seed", "version": "2022-02-10"}


def softmax(z: Any, axis: int = -1) -> np.ndarray:
    """Section 1 and 2.1: "the activation function is the softmax function, given by
    e^{x_j} / sum_{j=1}^{J} e^{x_j}, j = 1, ..., J" (a^L = e^{Z^(L)} / sum_j e^{Z^(L)})."""
    z = np.asarray(z)
    with np.errstate(all="ignore"):
        e = np.exp(z)
        return e / np.sum(e, axis=axis, keepdims=True)


def cross_entropy(z: Any, n: Any, axis: int = -1) -> np.ndarray:
    """Section 1: "the categorical cross-entropy function is the output layer, given by
    -sum_{j=1}^{N} n_j log(p_j)", with p = softmax(z) as defined in section 2.1."""
    n = np.asarray(n)
    with np.errstate(all="ignore"):
        return -np.sum(n * np.log(softmax(z, axis)), axis=axis)


def softmax_vjp(z: Any, v: Any, axis: int = -1) -> np.ndarray:
    """Section 2.1, "Derivative of the activation function":
    "da^(L)/dZ^(L) = ... = a^(L)(1 - a^(L))", applied as if softmax acted elementwise:
    v * a * (1 - a)."""
    v = np.asarray(v)
    with np.errstate(all="ignore"):
        a = softmax(z, axis)
        return v * a * (1 - a)


def cross_entropy_grad(z: Any, n: Any, axis: int = -1) -> np.ndarray:
    """Section 2.2, "Derivative of the cost function, assuming a cross-entropy, with respect to the
    activation function": "= a_i^L - n_i, for all i in C", where "it is clarified that
    sum_{j=1}^{J} n_j = 1"."""
    with np.errstate(all="ignore"):
        return softmax(z, axis) - np.asarray(n)


def dense_grads(W: Any, b: Any, x: Any, n: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Section 2.3, "Derivative of the cost function": "dC_0/dw^(L) = (a_i^L - n_i) a^L (1 - a^(L))
    w^(L-1)".

    The error term is delta_seed = (a - n) * a * (1 - a), with z = x W^T + b; then
    dW = delta_seed^T x, db = sum over the batch of delta_seed, dx = delta_seed W. The input x
    stands where the seed writes w^(L-1) (see the module docstring).
    """
    W, b, x, n = (np.asarray(t) for t in (W, b, x, n))
    dt = W.dtype  # ml_dtypes' bfloat16 matmul returns float32: cast its products back
    with np.errstate(all="ignore"):
        a = softmax((x @ W.T).astype(dt) + b)
        delta = (a - n) * a * (1 - a)
        return (delta.T @ x).astype(dt), delta.sum(axis=0), (delta @ W).astype(dt)
