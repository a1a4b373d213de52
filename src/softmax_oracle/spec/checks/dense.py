"""The checks of the gradients of a dense layer feeding softmax cross-entropy."""

from __future__ import annotations

import numpy as np

from softmax_oracle.oracle.compare import Refuted, assess
from softmax_oracle.oracle.reference import dense_ref
from softmax_oracle.spec.checks.common import Check, Example
from softmax_oracle.targets.call import Env


def check_dense(which: int) -> Check:
    names = ("dW", "db", "dx")

    def check(env: Env, ex: Example) -> float:
        W, b, x, n = ex["W"], ex["b"], ex["x"], ex["n"]
        out = env.call("dense_grads", W, b, x, n)[which]
        ref = dense_ref(W, b, x, n, env.prec)
        tols = env.stable.dense(ref, W, x, n)[which]
        refs = (ref.dW, ref.db, ref.dx)[which]
        flat_ref = [v for row in refs for v in row] if which != 1 else list(refs)
        flat_tol = [v for row in tols for v in row] if which != 1 else list(tols)
        shape = out.shape
        a = assess(out.reshape(-1), flat_ref, flat_tol, env.dtype,
                   lambda p: f"{names[which]}[{', '.join(map(str, np.unravel_index(p, shape)))}]",
                   f"dense_grads {names[which]}")
        a.raise_if_bad()
        return a.ratio

    check.__name__ = f"check_dense_{names[which]}"
    return check


def check_dense_empty(env: Env, ex: Example) -> float:
    dW, db, _ = env.call("dense_grads", ex["W"], ex["b"], ex["x"], ex["n"])  # shapes checked
    for name, g in (("dW", dW), ("db", db)):
        if np.any(g != 0):
            bad = int(np.argmax(g.reshape(-1) != 0))
            raise Refuted(f"{name} must be zero for a batch of no rows (an empty sum); "
                          f"{name} has {int(np.sum(g != 0))} nonzero entries, e.g. "
                          f"{float(g.reshape(-1)[bad])!r}")
    return 0.0
