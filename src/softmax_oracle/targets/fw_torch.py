"""The ``torch`` target: PyTorch's own softmax family, cross-entropy and autograd, on numpy arrays.

Every protocol function converts its numpy inputs to tensors, calls PyTorch, and converts the result
back; nothing is re-implemented here:

- ``softmax``, ``log_softmax``, ``logsumexp``: ``torch.softmax``, ``torch.log_softmax``,
  ``torch.logsumexp`` along ``dim=axis``;
- ``cross_entropy``: ``torch.nn.functional.cross_entropy`` with probability targets and
  ``reduction="none"``, the class axis moved to dim 1 as PyTorch requires (a 1-D row is passed
  unbatched);
- ``softmax_vjp``, ``cross_entropy_grad``, ``dense_grads``: ``torch.autograd.grad`` of
  ``torch.softmax`` (with ``grad_outputs=v``), of the summed cross-entropy, and of
  ``F.cross_entropy(F.linear(x, W, b), n, reduction="sum")``;
- the loss API: ``cross_entropy_loss`` is ``F.cross_entropy(z, y, weight=..., ignore_index=...,
  label_smoothing=..., reduction=...)`` with class indices (int64) or probabilities,
  ``cross_entropy_loss_grad`` its ``torch.autograd.grad`` (of the sum of the rows' losses for
  ``reduction="none"``), and ``linear_cross_entropy`` is ``F.linear_cross_entropy(x, W, y,
  linear_bias=b, ...)`` on its unchunked reference path (``options=None``) with dx, dW, db by
  autograd. The chunked path is judged by the targets of ``fw_torch_lce``.

Conversion is exact in both directions. float16/float32/float64 arrays are copied into tensors of
the same dtype; ml_dtypes bfloat16 arrays go through float32, which holds every bfloat16 value,
and then ``.to(torch.bfloat16)``. Results come back as fresh numpy arrays of the input dtype: the
caller's arrays are never shared with PyTorch, and PyTorch's buffers are never handed out.

Measured on torch 2.13 (CPU), which shaped the metadata:

- No ``compute_dtype`` is declared. For float16/bfloat16, softmax along the last dim behaves like a
  float32 computation rounded once, but log_softmax along the last dim computes
  ``x - (max + log sum)`` with that sum rounded to the input dtype (float16 ``[10, 0, 0]`` gives
  ``[0, -10, -10]``; the exact first entry is -9.08e-05), and ``logsumexp``,
  ``cross_entropy`` and the gradients round intermediates to the input dtype. Declaring a float32
  compute dtype would judge those against budgets they were never designed to meet.
- CPU kernels keep subnormals in every dtype (no flush-to-zero), unless the process calls
  ``torch.set_flush_denormal(True)``; ``exp`` lets the kit probe that at run time.
- With ``n_j = 0`` and ``z_j = -inf``, ``F.cross_entropy`` returns NaN (it forms ``0 * -inf``);
  its gradient stays finite.
- The loss API follows PyTorch's own semantics, which the kit's exact reference states (checked
  against this target in float64): the mean divides by the sum of the kept rows' weights for class
  indices and by B for probabilities, and every row ignored gives a NaN loss with a zero gradient.
- The thread count is left at PyTorch's default. CPU reductions split work statically by thread
  count, so repeated calls in one process give identical bits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "cross_entropy",
    "cross_entropy_grad",
    "cross_entropy_loss",
    "cross_entropy_loss_grad",
    "dense_grads",
    "exp",
    "from_torch",
    "linear_cross_entropy",
    "log_softmax",
    "logsumexp",
    "softmax",
    "softmax_vjp",
    "to_torch",
]

_TORCH_DTYPE = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def to_torch(array: Any, requires_grad: bool = False) -> torch.Tensor:
    """An exact tensor copy of a float64/float32/float16/bfloat16 numpy array."""
    array = np.asarray(array)
    name = array.dtype.name
    if name not in _TORCH_DTYPE:
        raise TypeError(
            f"the torch target takes float64, float32, float16 or bfloat16 arrays, not {name}"
        )
    if name == "bfloat16":
        tensor = torch.from_numpy(array.astype(np.float32)).to(torch.bfloat16)
    else:
        tensor = torch.from_numpy(np.array(array, order="C", copy=True))
    return tensor.requires_grad_(requires_grad)


def from_torch(tensor: torch.Tensor, dtype: np.dtype[Any]) -> np.ndarray:
    """A fresh numpy array of ``dtype`` holding the tensor's values exactly."""
    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        return tensor.float().numpy().astype(dtype)
    return tensor.numpy().copy()


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    return from_torch(torch.softmax(to_torch(z), dim=axis), z.dtype)


def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    return from_torch(torch.log_softmax(to_torch(z), dim=axis), z.dtype)


def logsumexp(z: np.ndarray, axis: int = -1) -> np.ndarray:
    return from_torch(torch.logsumexp(to_torch(z), dim=axis), z.dtype)


def _cross_entropy(z: torch.Tensor, n: torch.Tensor, axis: int) -> torch.Tensor:
    """Per-row cross-entropy; PyTorch wants classes in dim 1 (or dim 0 for a single row)."""
    if z.dim() > 1:
        z, n = torch.movedim(z, axis, 1), torch.movedim(n, axis, 1)
    return F.cross_entropy(z, n, reduction="none")


def cross_entropy(z: np.ndarray, n: np.ndarray, axis: int = -1) -> np.ndarray:
    return from_torch(_cross_entropy(to_torch(z), to_torch(n), axis), z.dtype)


def softmax_vjp(z: np.ndarray, v: np.ndarray, axis: int = -1) -> np.ndarray:
    zt = to_torch(z, requires_grad=True)
    (grad,) = torch.autograd.grad(torch.softmax(zt, dim=axis), zt, grad_outputs=to_torch(v))
    return from_torch(grad, z.dtype)


def cross_entropy_grad(z: np.ndarray, n: np.ndarray, axis: int = -1) -> np.ndarray:
    zt = to_torch(z, requires_grad=True)
    (grad,) = torch.autograd.grad(_cross_entropy(zt, to_torch(n), axis).sum(), zt)
    return from_torch(grad, z.dtype)


def dense_grads(
    W: np.ndarray, b: np.ndarray, x: np.ndarray, n: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    Wt, bt, xt = (to_torch(a, requires_grad=True) for a in (W, b, x))
    loss = F.cross_entropy(F.linear(xt, Wt, bt), to_torch(n), reduction="sum")
    dW, db, dx = torch.autograd.grad(loss, (Wt, bt, xt))
    return from_torch(dW, W.dtype), from_torch(db, b.dtype), from_torch(dx, x.dtype)


# --- the loss API ---------------------------------------------------------------------------------


def loss_target(y: Any, dtype: np.dtype[Any]) -> torch.Tensor:
    """Class indices as an int64 tensor (what PyTorch requires), probabilities exactly as a tensor
    of the logits' dtype."""
    y = np.asarray(y)
    if y.dtype.kind in "iu":
        return torch.from_numpy(np.array(y, dtype=np.int64, copy=True))
    return to_torch(y.astype(dtype, copy=False))


def loss_options(weight: Any, ignore_index: int | None, label_smoothing: float,
                 reduction: str) -> dict[str, Any]:
    """The keyword arguments of ``F.cross_entropy`` / ``F.linear_cross_entropy``; ignore_index is
    passed only when given (``F.linear_cross_entropy`` refuses it with probability targets)."""
    out: dict[str, Any] = {"weight": None if weight is None else to_torch(weight),
                           "label_smoothing": float(label_smoothing), "reduction": reduction}
    if ignore_index is not None:
        out["ignore_index"] = int(ignore_index)
    return out


def _loss(zt: torch.Tensor, y: Any, dtype: np.dtype[Any], weight: Any, ignore_index: int,
          label_smoothing: float, reduction: str) -> torch.Tensor:
    return F.cross_entropy(zt, loss_target(y, dtype),
                           **loss_options(weight, ignore_index, label_smoothing, reduction))


def cross_entropy_loss(z: np.ndarray, y: np.ndarray, *, weight: np.ndarray | None = None,
                       ignore_index: int = -100, label_smoothing: float = 0.0,
                       reduction: str = "mean") -> np.ndarray:
    loss = _loss(to_torch(z), y, z.dtype, weight, ignore_index, label_smoothing, reduction)
    return from_torch(loss, z.dtype)


def cross_entropy_loss_grad(z: np.ndarray, y: np.ndarray, *, weight: np.ndarray | None = None,
                            ignore_index: int = -100, label_smoothing: float = 0.0,
                            reduction: str = "mean") -> np.ndarray:
    zt = to_torch(z, requires_grad=True)
    loss = _loss(zt, y, z.dtype, weight, ignore_index, label_smoothing, reduction)
    (grad,) = torch.autograd.grad(loss.sum(), zt)
    return from_torch(grad, z.dtype)


def linear_cross_entropy_with(
    x: np.ndarray, W: np.ndarray, b: np.ndarray, y: np.ndarray, options: Any, *,
    weight: np.ndarray | None = None, ignore_index: int | None = None,
    label_smoothing: float = 0.0, reduction: str = "mean",
    check: Callable[[torch.Tensor], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``F.linear_cross_entropy`` with the given ``options`` (None: the reference path) and its
    gradients dx, dW, db by autograd (of the sum of the rows' losses for reduction 'none');
    ``check`` sees the loss tensor before the backward pass."""
    xt, Wt, bt = (to_torch(a, requires_grad=True) for a in (x, W, b))
    loss = F.linear_cross_entropy(xt, Wt, loss_target(y, x.dtype), linear_bias=bt,
                                  options=options,
                                  **loss_options(weight, ignore_index, label_smoothing, reduction))
    if check is not None:
        check(loss)
    dx, dW, db = torch.autograd.grad(loss.sum(), (xt, Wt, bt))
    return (from_torch(loss, x.dtype), from_torch(dx, x.dtype), from_torch(dW, W.dtype),
            from_torch(db, b.dtype))


def linear_cross_entropy(x: np.ndarray, W: np.ndarray, b: np.ndarray, y: np.ndarray, *,
                         weight: np.ndarray | None = None, ignore_index: int | None = None,
                         label_smoothing: float = 0.0, reduction: str = "mean",
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return linear_cross_entropy_with(x, W, b, y, None, weight=weight, ignore_index=ignore_index,
                                     label_smoothing=label_smoothing, reduction=reduction)


def exp(x: np.ndarray) -> np.ndarray:
    """``torch.exp`` in the array's own dtype (the kit's flush-to-zero probe)."""
    return from_torch(torch.exp(to_torch(x)), x.dtype)


__softmax_oracle__ = {
    "name": "torch",
    "version": torch.__version__,
    "dtypes": tuple(_TORCH_DTYPE),
    "compute_dtype": {},
    "exp": exp,
    "loss": {"targets": ["index", "probability"], "reductions": ["none", "sum", "mean"],
             "options": ["weight", "ignore_index", "label_smoothing"]},
}
