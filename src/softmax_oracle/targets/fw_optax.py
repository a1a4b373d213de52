"""The ``optax`` target: ``optax.softmax_cross_entropy``, ``..._with_integer_labels`` and their
``jax.grad``, on numpy arrays.

- ``cross_entropy(z, n, axis)``: ``optax.softmax_cross_entropy(logits, labels)``, per row, with
  the class axis moved last first. optax only grew an ``axis`` argument in 0.2.4; moving the axis
  works with every optax release and computes the same thing.
- ``cross_entropy_grad``: ``jax.grad`` of the summed loss.
- ``cross_entropy_loss(z, y, *, ignore_index=None, reduction='none')``:
  ``optax.softmax_cross_entropy_with_integer_labels(z, y)``, class indices only, one loss per row
  (optax has no reduction, class weights or label smoothing for integer labels, so the kit finds
  those claims not applicable). ``ignore_index`` is optax's ``where=(y != ignore_index)`` (optax
  0.2.4 and later), its natural use: an ignored row's loss and gradient are 0, and its label may
  be out of range; without ``ignore_index`` no ``where`` is passed. ``cross_entropy_loss_grad``
  is ``jax.grad`` of the rows' sum.

optax is JAX code, so everything the ``jax`` target says applies here too: importing this module
imports that one and with it turns on JAX's process-wide 64-bit mode; XLA on CPU flushes
float64/float32/bfloat16 subnormals to zero (``exp`` is JAX's, for the kit's probe); results are
compiled once per shape. optax computes ``-sum(labels * log_softmax(logits))``, so a label of 0
on a logit of ``-inf`` gives NaN, which the kit reports (``optax.safe_softmax_cross_entropy`` is
optax's guarded variant and is not what this target checks).
"""

from __future__ import annotations

import inspect
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from softmax_oracle.targets.fw_jax import (
    DTYPES,
    bounded,
    exp,
    from_jax,
    jit_axis,
    positive_axis,
    to_jax,
)

__all__ = ["cross_entropy", "cross_entropy_grad", "cross_entropy_loss", "cross_entropy_loss_grad"]

#: Does the installed optax take ``where`` (0.2.4 and later)? Then ignore_index is supported.
HAS_WHERE = "where" in inspect.signature(optax.softmax_cross_entropy_with_integer_labels).parameters


def _ce(z: jax.Array, n: jax.Array, axis: int) -> jax.Array:
    return optax.softmax_cross_entropy(jnp.moveaxis(z, axis, -1), jnp.moveaxis(n, axis, -1))


_cross_entropy = jit_axis(_ce)


@jit_axis
def _cross_entropy_grad(z: jax.Array, n: jax.Array, axis: int) -> jax.Array:
    return jax.grad(lambda z_: jnp.sum(_ce(z_, n, axis)))(z)


def cross_entropy(z: np.ndarray, n: np.ndarray, axis: int = -1) -> np.ndarray:
    return from_jax(_cross_entropy(to_jax(z), to_jax(n), axis=positive_axis(axis, np.ndim(z))))


def cross_entropy_grad(z: np.ndarray, n: np.ndarray, axis: int = -1) -> np.ndarray:
    return from_jax(_cross_entropy_grad(to_jax(z), to_jax(n), axis=positive_axis(axis, np.ndim(z))))


def _int_ce(z: jax.Array, y: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(z, y)


def _int_ce_where(z: jax.Array, y: jax.Array, where: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(z, y, where=where)


def _summed(fn: Any) -> Any:
    return jax.grad(lambda z, *rest: jnp.sum(fn(z, *rest)))


_int_loss = {False: bounded(jax.jit(_int_ce)), True: bounded(jax.jit(_int_ce_where))}
_int_loss_grad = {False: bounded(jax.jit(_summed(_int_ce))),
                  True: bounded(jax.jit(_summed(_int_ce_where)))}


def _loss_args(z: np.ndarray, y: np.ndarray, ignore_index: int | None,
               reduction: str) -> tuple[jax.Array, ...]:
    """(logits, labels) or (logits, labels, where): where is given only with ignore_index."""
    if reduction != "none":
        raise ValueError(f"reduction={reduction!r}: optax returns one loss per row ('none')")
    labels = np.asarray(y)
    if labels.dtype.kind not in "iu":
        raise TypeError("softmax_cross_entropy_with_integer_labels takes class indices")
    args = (to_jax(z), jnp.asarray(labels))
    return args if ignore_index is None else (*args, jnp.asarray(labels != ignore_index))


def cross_entropy_loss(z: np.ndarray, y: np.ndarray, *, ignore_index: int | None = None,
                       reduction: str = "none") -> np.ndarray:
    args = _loss_args(z, y, ignore_index, reduction)
    return from_jax(_int_loss[len(args) == 3](*args))


def cross_entropy_loss_grad(z: np.ndarray, y: np.ndarray, *, ignore_index: int | None = None,
                            reduction: str = "none") -> np.ndarray:
    args = _loss_args(z, y, ignore_index, reduction)
    return from_jax(_int_loss_grad[len(args) == 3](*args))


__softmax_oracle__ = {
    "name": "optax",
    "version": optax.__version__,
    "dtypes": DTYPES,
    "compute_dtype": {},
    "exp": exp,
    "loss": {"targets": ["index"], "reductions": ["none"],
             "options": ["ignore_index"] if HAS_WHERE else []},
}
