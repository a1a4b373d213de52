"""The textbook formulas everyone writes first, evaluated literally (Alg. 3.1 of Blanchard, Higham &
Higham 2021, without the shift).

softmax = exp(z) / sum(exp(z)) overflows once a logit exceeds log(rmax) (709.78 in float64, 88.72
in float32, 11.09 in float16) and gives 0/0 when every logit is below log(rmin_sub / 2);
log_softmax = log(softmax) is -inf wherever a probability underflows; and the gradient a - n is
right only for targets that sum to one; the training loss is -log(softmax(z)[y]) averaged over
the batch. Within range these formulas are accurate, so they fail only
on the inputs that the kit's adversarial strategies aim at. Floating-point warnings are silenced so
that the failures show up as inf/NaN in the results.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "cross_entropy",
    "cross_entropy_grad",
    "cross_entropy_loss",
    "dense_grads",
    "log_softmax",
    "logsumexp",
    "softmax",
    "softmax_vjp",
]

__softmax_oracle__ = {"name": "naive", "version": np.__version__}


def softmax(z: Any, axis: int = -1) -> np.ndarray:
    """exp(z) / sum(exp(z)), with no shift."""
    z = np.asarray(z)
    with np.errstate(all="ignore"):
        e = np.exp(z)
        return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(z: Any, axis: int = -1) -> np.ndarray:
    """log(softmax(z))."""
    with np.errstate(all="ignore"):
        return np.log(softmax(z, axis))


def logsumexp(z: Any, axis: int = -1) -> np.ndarray:
    """log(sum(exp(z)))."""
    z = np.asarray(z)
    with np.errstate(all="ignore"):
        return np.log(np.sum(np.exp(z), axis=axis))


def softmax_vjp(z: Any, v: Any, axis: int = -1) -> np.ndarray:
    """a * (v - sum(a * v)) with the unshifted a = softmax(z)."""
    v = np.asarray(v)
    with np.errstate(all="ignore"):
        a = softmax(z, axis)
        return a * (v - np.sum(a * v, axis=axis, keepdims=True))


def cross_entropy(z: Any, n: Any, axis: int = -1) -> np.ndarray:
    """-sum(n * log(softmax(z)))."""
    n = np.asarray(n)
    with np.errstate(all="ignore"):
        return -np.sum(n * np.log(softmax(z, axis)), axis=axis)


def cross_entropy_grad(z: Any, n: Any, axis: int = -1) -> np.ndarray:
    """softmax(z) - n (right only when the targets sum to one)."""
    with np.errstate(all="ignore"):
        return softmax(z, axis) - np.asarray(n)


def dense_grads(W: Any, b: Any, x: Any, n: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """delta = softmax(x W^T + b) - n; dW = delta^T x, db = sum of delta, dx = delta W."""
    W, b, x, n = (np.asarray(t) for t in (W, b, x, n))
    dt = W.dtype  # ml_dtypes' bfloat16 matmul returns float32: cast its products back
    with np.errstate(all="ignore"):
        delta = softmax((x @ W.T).astype(dt) + b) - n
        return (delta.T @ x).astype(dt), delta.sum(axis=0), (delta @ W).astype(dt)


def cross_entropy_loss(z: Any, y: Any, *, reduction: str = "mean") -> np.ndarray:
    """-log(softmax(z)[i, y_i]) per row of class indices, summed or averaged (no options)."""
    z, y = np.asarray(z), np.asarray(y)
    with np.errstate(all="ignore"):
        rows = -np.log(softmax(z, -1)[np.arange(z.shape[0]), y])
        if reduction == "none":
            return rows
        total = np.sum(rows).astype(z.dtype)
        return total if reduction == "sum" else (total / z.dtype.type(z.shape[0])).astype(z.dtype)
