"""The ``optax`` target: ``optax.softmax_cross_entropy`` and its ``jax.grad``, on numpy arrays.

- ``cross_entropy(z, n, axis)``: ``optax.softmax_cross_entropy(logits, labels)``, per row, with
  the class axis moved last first. optax only grew an ``axis`` argument in 0.2.4; moving the axis
  works with every optax release and computes the same thing.
- ``cross_entropy_grad``: ``jax.grad`` of the summed loss.

optax is JAX code, so everything the ``jax`` target says applies here too: importing this module
imports that one and with it turns on JAX's process-wide 64-bit mode; XLA on CPU flushes
float64/float32/bfloat16 subnormals to zero (``exp`` is JAX's, for the kit's probe); results are
compiled once per shape. optax computes ``-sum(labels * log_softmax(logits))``, so a label of 0
on a logit of ``-inf`` gives NaN, which the kit reports (``optax.safe_softmax_cross_entropy`` is
optax's guarded variant and is not what this target checks).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from softmax_oracle.targets.fw_jax import DTYPES, exp, from_jax, jit_axis, positive_axis, to_jax

__all__ = ["cross_entropy", "cross_entropy_grad"]


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


__softmax_oracle__ = {
    "name": "optax",
    "version": optax.__version__,
    "dtypes": DTYPES,
    "compute_dtype": {},
    "exp": exp,
}
