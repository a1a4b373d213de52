"""The ``jax`` target: ``jax.nn``'s softmax family, cross-entropy as JAX users write it, and
gradients through ``jax.vjp``/``jax.grad``, on numpy arrays.

- ``softmax``, ``log_softmax``, ``logsumexp``: ``jax.nn.softmax``, ``jax.nn.log_softmax``,
  ``jax.nn.logsumexp``;
- ``cross_entropy``: ``-jnp.sum(n * jax.nn.log_softmax(z, axis), axis)``, the usual hand-written
  loss (JAX itself has none; the ``optax`` target checks optax's);
- ``softmax_vjp``: the pullback of ``jax.nn.softmax`` from ``jax.vjp``;
- ``cross_entropy_grad``, ``dense_grads``: ``jax.grad`` of the summed loss, the dense layer written
  ``x @ W.T + b``.

**Importing this module turns on 64-bit mode** (``jax.config.update("jax_enable_x64", True)``),
without which JAX silently computes float64 inputs in float32. The setting is process-wide: after
it, Python floats and integers given to JAX default to 64-bit types in the whole program.
``to_jax`` refuses to run if something later turns it off again.

The functions are compiled with ``jax.jit`` once per (shape, dtype, axis); the axis is a static
argument, normalised to be non-negative so that ``axis=-1`` and ``axis=ndim-1`` share a
compilation. The first call on a new shape pays for compilation (40-160 ms on a CPU, most of it
XLA's code generation); later calls on that shape take 35-300 us. Compilation is what makes this
target slow to check: a check's examples meet hundreds of distinct shapes, and numpy needs none.
The shapes are checked as they are: padding them to a few bucket sizes would judge another
program, because XLA's CPU compiler splits a reduction longer than 32 into blocks of 32 placed by
the row's length (so padding changes the order of summation), and a padded ``-inf`` logit with a
zero target makes the hand-written cross-entropy NaN.

**Compiled functions are evicted.** JAX keeps every executable (1-3 MB each) in caches of 2,048
to 8,192 entries, so a long check's worker grew by gigabytes. Past ``COMPILED_LIMIT`` distinct
signatures (function, shapes, dtypes, axis) in a process, ``jax.clear_caches()`` drops them all:
memory stays flat, and a signature met again is compiled again, to the same executable.

A repeated check need not compile at all: the kit's worker processes turn on JAX's persistent
compilation cache (in ``.hypothesis/softmax-oracle-jax``, bounded to 256 MB; see
``engine.supervisor.compile_cache_env``), so a rerun loads the executables from disk (a few kB
each), the same programs: a rerun of the ``softmax.*`` claims took 1.65-2.06 times numpy's
time, a first run 3.6-3.9, on an idle machine (docs/benchmarks.md). This module itself leaves
the cache alone: imported into a user's own process, JAX's configuration is its user's.

Conversion is exact: ``to_jax`` keeps the dtype (JAX's bfloat16 dtype is ml_dtypes' bfloat16) and
``from_jax`` returns a writable numpy copy, never a view of a JAX buffer.

Measured on jax 0.10.2 (CPU), which shaped the metadata:

- **XLA on CPU flushes subnormals to zero in float64, float32 and bfloat16**, both results and
  inputs: ``exp(log(r_min) - 1)`` is 0 and a subnormal times 1 is 0. float16 arithmetic runs in
  float32, where float16 subnormals are normal numbers, so float16 keeps them. ``exp`` lets the kit
  probe this at run time and use the smallest normal number as its floor.
- No ``compute_dtype`` is declared: with float16/bfloat16 inputs the intermediates (the shifted
  exponentials, their sum, the log) are rounded to the input dtype, and errors exceed a
  float32-compute budget by factors of 3 to 400.
- **With ``n_j = 0`` and ``z_j = -inf``, ``cross_entropy`` returns NaN**: ``log_softmax`` gives
  ``-inf`` there and ``0 * -inf`` is NaN. That is what the hand-written formula does, so it is kept
  and the kit reports it; ``optax.safe_softmax_cross_entropy`` is the guarded variant.
- The dense layer's matmul is requested at ``Precision.HIGHEST``: the kit's budgets assume
  full-precision products. That is the default on CPU anyway; on some accelerators the default
  would be a reduced-precision (bfloat16 or TF32) pass.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# Before anything below is traced: float64 inputs must stay float64 (see the module docstring).
jax.config.update("jax_enable_x64", True)

__all__ = [
    "COMPILED_LIMIT",
    "DTYPES",
    "bounded",
    "cross_entropy",
    "cross_entropy_grad",
    "dense_grads",
    "exp",
    "from_jax",
    "jit_axis",
    "log_softmax",
    "logsumexp",
    "positive_axis",
    "softmax",
    "softmax_vjp",
    "to_jax",
]

#: The dtypes the jax targets take (bfloat16 is ml_dtypes's).
DTYPES = ("float64", "float32", "float16", "bfloat16")


def to_jax(array: Any) -> jax.Array:
    """A JAX array with exactly the values and dtype of a float64/32/16 or bfloat16 numpy array."""
    array = np.asarray(array)
    if array.dtype.name not in DTYPES:
        raise TypeError(
            f"the jax targets take float64, float32, float16 or bfloat16 arrays, "
            f"not {array.dtype.name}"
        )
    if array.dtype == np.float64 and not jax.config.read("jax_enable_x64"):
        raise RuntimeError(
            "jax_enable_x64 was switched off after softmax_oracle.targets.fw_jax turned it on; "
            "JAX would compute float64 inputs in float32"
        )
    return jnp.asarray(array, dtype=array.dtype)


def from_jax(result: jax.Array) -> np.ndarray:
    """A writable numpy copy of a JAX result (blocks until it is computed)."""
    return np.asarray(result).copy()


def positive_axis(axis: int, ndim: int) -> int:
    """``axis`` in ``range(ndim)``, so that ``-1`` and ``ndim - 1`` share one compilation."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of bounds for an array of dimension {ndim}")
    return axis % ndim


#: Distinct signatures compiled in this process before every compiled function is dropped
#: (1.6-2.8 MB each; a check of every claim meets about a thousand per dtype). On the calls of
#: such a check in float32 (seeds 1 and 3), keeping 128 compiles 19% and 22% more often than
#: keeping them all.
COMPILED_LIMIT = 128

_compiled: set[tuple[Any, ...]] = set()  # the signatures compiled since the last eviction


def bounded(jitted: Callable[..., Any]) -> Callable[..., Any]:
    """``jitted`` (a ``jax.jit`` function), its compilations counted against ``COMPILED_LIMIT``:
    a call with a signature not met since the last eviction, past the limit, first clears every
    cache of JAX's (``jax.clear_caches()``). The call itself is ``jitted``'s, unchanged."""

    @functools.wraps(jitted)
    def call(*arrays: jax.Array, **static: Any) -> Any:
        key = (id(jitted), tuple((a.shape, a.dtype) for a in arrays), tuple(static.items()))
        if key not in _compiled:
            if len(_compiled) >= COMPILED_LIMIT:
                jax.clear_caches()
                _compiled.clear()
            _compiled.add(key)
        return jitted(*arrays, **static)

    return call


def jit_axis(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``jax.jit`` with the ``axis`` keyword static (one compilation per shapes, dtypes and
    axis), ``bounded``."""
    return bounded(jax.jit(fn, static_argnames="axis"))


@jit_axis
def _softmax(z: jax.Array, axis: int) -> jax.Array:
    return jax.nn.softmax(z, axis=axis)


@jit_axis
def _log_softmax(z: jax.Array, axis: int) -> jax.Array:
    return jax.nn.log_softmax(z, axis=axis)


@jit_axis
def _logsumexp(z: jax.Array, axis: int) -> jax.Array:
    return jax.nn.logsumexp(z, axis=axis)


def _ce(z: jax.Array, n: jax.Array, axis: int) -> jax.Array:
    return -jnp.sum(n * jax.nn.log_softmax(z, axis=axis), axis=axis)


_cross_entropy = jit_axis(_ce)


@jit_axis
def _softmax_vjp(z: jax.Array, v: jax.Array, axis: int) -> jax.Array:
    _, pullback = jax.vjp(lambda z_: jax.nn.softmax(z_, axis=axis), z)
    (grad,) = pullback(v)
    return grad


@jit_axis
def _cross_entropy_grad(z: jax.Array, n: jax.Array, axis: int) -> jax.Array:
    return jax.grad(lambda z_: jnp.sum(_ce(z_, n, axis)))(z)


def _dense_loss(W: jax.Array, b: jax.Array, x: jax.Array, n: jax.Array) -> jax.Array:
    logits = jnp.matmul(x, W.T, precision=jax.lax.Precision.HIGHEST) + b
    return jnp.sum(_ce(logits, n, -1))


_dense_grads = bounded(jax.jit(jax.grad(_dense_loss, argnums=(0, 1, 2))))
_exp = bounded(jax.jit(jnp.exp))


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    return from_jax(_softmax(to_jax(z), axis=positive_axis(axis, np.ndim(z))))


def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    return from_jax(_log_softmax(to_jax(z), axis=positive_axis(axis, np.ndim(z))))


def logsumexp(z: np.ndarray, axis: int = -1) -> np.ndarray:
    return from_jax(_logsumexp(to_jax(z), axis=positive_axis(axis, np.ndim(z))))


def cross_entropy(z: np.ndarray, n: np.ndarray, axis: int = -1) -> np.ndarray:
    return from_jax(_cross_entropy(to_jax(z), to_jax(n), axis=positive_axis(axis, np.ndim(z))))


def softmax_vjp(z: np.ndarray, v: np.ndarray, axis: int = -1) -> np.ndarray:
    return from_jax(_softmax_vjp(to_jax(z), to_jax(v), axis=positive_axis(axis, np.ndim(z))))


def cross_entropy_grad(z: np.ndarray, n: np.ndarray, axis: int = -1) -> np.ndarray:
    return from_jax(_cross_entropy_grad(to_jax(z), to_jax(n), axis=positive_axis(axis, np.ndim(z))))


def dense_grads(
    W: np.ndarray, b: np.ndarray, x: np.ndarray, n: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dW, db, dx = _dense_grads(to_jax(W), to_jax(b), to_jax(x), to_jax(n))
    return from_jax(dW), from_jax(db), from_jax(dx)


def exp(x: np.ndarray) -> np.ndarray:
    """``jnp.exp`` in the array's own dtype, compiled (the kit's flush-to-zero probe)."""
    return from_jax(_exp(to_jax(x)))


__softmax_oracle__ = {
    "name": "jax",
    "version": jax.__version__,
    "dtypes": DTYPES,
    "compute_dtype": {},
    "exp": exp,
}
