"""The chunked path of PyTorch's ``F.linear_cross_entropy``, one target per accumulation policy.

``F.linear_cross_entropy(x, W, y, linear_bias=b, options=LinearCrossEntropyOptions(...))``
processes the batch in chunks and never forms the (B, K) logits; ``options=None`` is the unchunked
reference path, which the ``torch`` target judges. Each target here exposes

- ``linear_cross_entropy``: the chunked call, with dx, dW, db by ``torch.autograd.grad`` (of the
  sum of the rows' losses for reduction 'none'), as a user's ``loss.backward()`` computes them;
- ``cross_entropy_loss``: torch's unchunked ``F.cross_entropy`` (the ``torch`` target's), so that
  ``linear_cross_entropy.equals_linear_then_loss`` compares the chunked path with the unchunked one.

The targets and their options (torch 2.13; ``acc_dtype`` left to PyTorch unless named):

=========================  =======================================================================
``torch-lce-auto``         ``LinearCrossEntropyOptions()``: on CPU, float16/bfloat16 use policy
                           'accurate' with float32 accumulation; float32/float64 'compact'
``torch-lce-accurate``     ``LinearCrossEntropyOptions(acc_policy='accurate')``
``torch-lce-balanced``     ``LinearCrossEntropyOptions(acc_policy='balanced')``
``torch-lce-compact``      ``LinearCrossEntropyOptions(acc_policy='compact')``
``torch-lce-balanced-fp32``  ``acc_policy='balanced', acc_dtype=torch.float32`` (16-bit inputs)
``torch-lce-compact-fp32``   ``acc_policy='compact', acc_dtype=torch.float32`` (16-bit inputs)
=========================  =======================================================================

Naming a policy leaves ``acc_dtype=None``, which PyTorch resolves to the *input* dtype (only the
'auto' policy picks float32 for 16-bit inputs): the three named policies then compute float16 and
bfloat16 entirely in that format, and 'accurate' and 'balanced' run the same code, bit for bit
(their difference is which intermediates are kept in a wider ``acc_dtype``). The ``-fp32``
targets reach the mixed-precision layouts: with float32 accumulation, 'accurate' is what 'auto'
runs; 'balanced' and 'compact' differ from it in float16 (compact keeps float16 logits and
streams dW without a scratch buffer); in bfloat16 all three are bit for bit the same on CPU.

The chunked path supports class-index targets, no label smoothing, class weights and
ignore_index; anything else falls back to the reference path with a ``UserWarning``. The targets
declare exactly that support, so the kit never asks them for a configuration that falls back,
and every call checks that the chunked op really ran: the loss's ``grad_fn`` must be the backward
of ``torch_nn::_linear_cross_entropy_batch_chunked`` (or ``..._no_reduction``), else the call
raises (with PyTorch's warning, if any). The chunk size is PyTorch's own choice for the shape
(``chunking_method='auto'``: ``aspect_ratio`` or ``aspect_ratio:2``): on the kit's small examples
that is anything from one row per chunk (K much larger than the input width) to the whole
batch, so both the chunk loop's accumulation across chunks and a single chunk are exercised.
Warnings are recorded, never printed or raised.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from softmax_oracle.targets import fw_torch

__all__ = ["POLICIES", "chunked"]

#: target name suffix -> (acc_policy, acc_dtype for float16/bfloat16 inputs; None: PyTorch's)
POLICIES: dict[str, tuple[str, torch.dtype | None]] = {
    "auto": ("auto", None),
    "accurate": ("accurate", None),
    "balanced": ("balanced", None),
    "compact": ("compact", None),
    "balanced-fp32": ("balanced", torch.float32),
    "compact-fp32": ("compact", torch.float32),
}

_CHUNKED_OPS = ("_linear_cross_entropy_batch_chunked",)


def _options(acc_policy: str, acc_dtype: torch.dtype | None,
             dtype: np.dtype[Any]) -> torch.nn.LinearCrossEntropyOptions:
    wide = acc_dtype if np.dtype(dtype).itemsize == 2 else None
    return torch.nn.LinearCrossEntropyOptions(acc_policy=acc_policy,  # type: ignore[arg-type]
                                              acc_dtype=wide)


def _make(acc_policy: str, acc_dtype: torch.dtype | None) -> Callable[..., Any]:
    def linear_cross_entropy(x: np.ndarray, W: np.ndarray, b: np.ndarray, y: np.ndarray, *,
                             weight: np.ndarray | None = None, ignore_index: int | None = None,
                             reduction: str = "mean",
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        options = _options(acc_policy, acc_dtype, x.dtype)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")

            def took_chunked(loss: torch.Tensor) -> None:
                name = type(loss.grad_fn).__name__
                if not any(op in name for op in _CHUNKED_OPS):
                    said = "; ".join(str(w.message) for w in caught) or "nothing"
                    raise RuntimeError(f"F.linear_cross_entropy(options={options}) did not take "
                                       f"the chunked path (its backward is {name}); PyTorch "
                                       f"warned: {said}")

            return fw_torch.linear_cross_entropy_with(
                x, W, b, y, options, weight=weight, ignore_index=ignore_index,
                reduction=reduction, check=took_chunked)

    linear_cross_entropy.__doc__ = (
        f"F.linear_cross_entropy on its chunked path (acc_policy={acc_policy!r}"
        f"{'' if acc_dtype is None else ', acc_dtype=torch.float32 for 16-bit inputs'}) and "
        f"dx, dW, db by autograd.")
    return linear_cross_entropy


def chunked(suffix: str) -> SimpleNamespace:
    """The target ``torch-lce-<suffix>``: a namespace with ``linear_cross_entropy`` (chunked),
    ``cross_entropy_loss`` (unchunked) and ``__softmax_oracle__``."""
    acc_policy, acc_dtype = POLICIES[suffix]
    dtypes = ("float16", "bfloat16") if acc_dtype is not None else tuple(fw_torch._TORCH_DTYPE)
    return SimpleNamespace(
        linear_cross_entropy=_make(acc_policy, acc_dtype),
        cross_entropy_loss=fw_torch.cross_entropy_loss,
        __softmax_oracle__={
            "name": f"torch-lce-{suffix}",
            "version": torch.__version__,
            "dtypes": dtypes,
            "compute_dtype": {},
            "exp": fw_torch.exp,
            "loss": {"targets": ["index"], "reductions": ["none", "sum", "mean"],
                     "options": ["weight", "ignore_index"]},
        },
    )


auto = chunked("auto")
accurate = chunked("accurate")
balanced = chunked("balanced")
compact = chunked("compact")
balanced_fp32 = chunked("balanced-fp32")
compact_fp32 = chunked("compact-fp32")
