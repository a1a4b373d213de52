"""A softmax that is wrong on about 30% of calls, decided by a global random generator:
numpy's legacy one, or the standard library's (SOFTMAX_ORACLE_TEST_RNG=random), or torch's
(SOFTMAX_ORACLE_TEST_RNG=torch). Hypothesis reseeds the global generators before every example,
which once made such a target pass every claim."""

import os
import random

import numpy as np

WHICH = os.environ.get("SOFTMAX_ORACLE_TEST_RNG", "numpy")


def _unlucky() -> bool:
    if WHICH == "random":
        return random.random() < 0.3
    if WHICH == "torch":
        import torch

        return bool(torch.rand(()) < 0.3)
    return bool(np.random.random() < 0.3)  # noqa: NPY002 -- the global generator is the point


def softmax(z, axis=-1):
    e = np.exp(z - np.max(z, axis=axis, keepdims=True))
    out = e / np.sum(e, axis=axis, keepdims=True)
    return out * np.asarray(1.001 if _unlucky() else 1.0, dtype=z.dtype)
