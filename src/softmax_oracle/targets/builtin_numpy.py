"""The kit's own careful numpy implementation: a reference people can copy.

Every function follows Algorithm 4.1 of Blanchard, Higham & Higham, "Accurately computing the
log-sum-exp and softmax functions", IMA J. Numer. Anal. 41(4), 2021 (arXiv:1909.03469)::

    [a, k] = max_i z_i                      (a = 0 for a row that is entirely -inf)
    w_i    = exp(z_i - a)                   (so w_k = 1 exactly, and no w_i overflows)
    s      = sum_{i != k} w_i               (the largest term is left out: never sum(w) - 1)
    LSE    = a + log1p(s)
    g_i    = w_i / (1 + s)                  (softmax)
    l_i    = (z_i - a) - log1p(s)           (log-softmax)

Shifting by the maximum removes overflow; any underflow then happens only in terms that are added
to 1, where it is harmless; leaving the maximal term out of ``s`` and using ``log1p`` keeps
log-sum-exp and log-softmax accurate when one logit dominates (``s`` tiny). The loss and the
gradients are built on these: C = -sum_j n_j l_j, dC/dz = g * sum(n) - n, and the softmax
vector-Jacobian product g * (v - <g, v>).

Everything is computed in the dtype of the input, one rounded operation at a time, with no hidden
upcasting, so that the kit judges this code honestly in float16 and bfloat16 too. Two numpy
conveniences are avoided for that reason: ``np.sum`` and ``np.matmul`` on float16 (and ``@`` on
ml_dtypes' bfloat16) accumulate in float32, while ``np.sum`` on bfloat16 accumulates sequentially in
bfloat16 (1000 ones sum to 256). Sums here use an explicit pairwise tree in the input's dtype, in
every dtype; float32 and float64 products use ``np.matmul``. Mixing a Python float into bfloat16
arithmetic promotes it to float32, so constants are made in the array's dtype.

Conventions: -inf logits are masks (softmax 0, log-softmax -inf, ignored by log-sum-exp); a row
that is entirely -inf has log-sum-exp -inf, softmax 0 and log-softmax -inf; a +inf logit gives
log-sum-exp +inf and NaN softmax. Targets n >= 0 need not sum to one, and entries with n_j = 0
contribute nothing to the loss (0 log 0 = 0), even where z_j = -inf.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "cross_entropy",
    "cross_entropy_grad",
    "cross_entropy_loss",
    "cross_entropy_loss_grad",
    "dense_grads",
    "linear_cross_entropy",
    "log_softmax",
    "logsumexp",
    "softmax",
    "softmax_vjp",
]


def _exp(x: Any) -> np.ndarray:
    """numpy's exp in the array's own dtype (used by the kit to probe for flushed subnormals)."""
    x = np.asarray(x)
    with np.errstate(all="ignore"):
        return np.asarray(np.exp(x), dtype=x.dtype)


__softmax_oracle__ = {"name": "numpy", "version": np.__version__, "exp": _exp,
                      "loss": {"targets": ["index", "probability"]}}


# --- helpers -------------------------------------------------------------------------------------


def _as_float(x: Any) -> np.ndarray:
    """The input as an array; integer and boolean inputs become float64, others keep their dtype."""
    x = np.asarray(x)
    return x.astype(np.float64) if x.dtype.kind in "biu" else x


def _const(value: float, dtype: np.dtype[Any]) -> np.ndarray:
    """A 0-d constant of ``dtype`` (a bare Python float would promote bfloat16 to float32)."""
    return np.asarray(value, dtype=dtype)


def _sum(x: np.ndarray, keepdims: bool = False) -> np.ndarray:
    """Sum along the last axis by a pairwise tree, each addition rounded in ``x.dtype``.

    The error is at most ceil(log2 n) u relative to the sum of magnitudes, whatever the dtype.
    """
    if x.shape[-1] == 0:
        out = np.zeros((*x.shape[:-1], 1), dtype=x.dtype)
        return out if keepdims else out[..., 0]
    while x.shape[-1] > 1:
        half = x.shape[-1] // 2
        paired = x[..., : 2 * half : 2] + x[..., 1 : 2 * half : 2]
        x = np.concatenate([paired, x[..., 2 * half :]], axis=-1) if x.shape[-1] % 2 else paired
    return x if keepdims else x[..., 0]


def _matmul(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """p @ q in the operands' dtype (float16/bfloat16 via products and a pairwise sum)."""
    if p.dtype in (np.float32, np.float64):
        return np.asarray(np.matmul(p, q), dtype=p.dtype)
    products = p[..., :, :, None] * q[..., None, :, :]  # (rows, inner, cols)
    return _sum(np.moveaxis(products, -2, -1))


def _alg41(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Alg. 4.1 along the last axis: (a, z - shift, w, s, e) with a the max (kept dims), shift = a
    (0 for all -inf rows), w = exp(z - shift), and s 2**e the sum of w without one maximal entry.

    e = 0 but where that sum overflows the format: a float16 row of more than 65504 entries
    (language-model vocabularies) can sum to more than the largest float16. There s is the sum
    of w 2**-e, scaled exactly by a power of two (terms lost below the subnormals are less than
    n 2**-25 against s >= 2**15), with e the smallest that keeps it finite."""
    a = np.max(z, axis=-1, keepdims=True)
    shift = np.where(np.isneginf(a), _const(0.0, z.dtype), a)
    zs = z - shift
    w = np.exp(zs)
    k = np.argmax(z, axis=-1)[..., None]
    others = np.arange(z.shape[-1]) != k  # leaves out exactly one maximal entry per row
    terms = np.where(others, w, _const(0.0, z.dtype))
    s = _sum(terms, keepdims=True)
    e = np.zeros(s.shape, dtype=np.int64)
    overflowed = np.isposinf(s) & np.isfinite(a)
    if np.any(overflowed):
        # s < n 2**0, and the largest finite number is just below 2**maxexp.
        bits = int(np.ceil(np.log2(max(z.shape[-1], 2))))
        exponent = max(1, bits - int(np.finfo(z.dtype).maxexp) + 2)
        scaled = _sum(terms * _const(2.0**-exponent, z.dtype), keepdims=True)
        s = np.where(overflowed, scaled, s)
        e = np.where(overflowed, exponent, 0)
    return a, zs, w, s, e


def _log1p_sum(s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """log(1 + s 2**e): log1p(s), or log(s) + e ln 2 where s was scaled (then s 2**e >= 2**15 and
    log(1 + x) - log(x) < 2**-15, below half an ulp of the result)."""
    if not np.any(e):
        return np.log1p(s)
    ln2 = _const(np.log(2.0), s.dtype)
    return np.where(e > 0, np.log(s) + e.astype(s.dtype) * ln2, np.log1p(s))


def _log_softmax_last(z: np.ndarray) -> np.ndarray:
    _, zs, _, s, e = _alg41(z)
    return zs - _log1p_sum(s, e)


def _softmax_last(z: np.ndarray) -> np.ndarray:
    _, _, w, s, e = _alg41(z)
    if not np.any(e):
        return w / (_const(1.0, z.dtype) + s)
    scale = np.ldexp(_const(1.0, z.dtype), -e).astype(z.dtype)  # 2**-e, exact
    return (w * scale) / (scale + s)


def _cross_entropy_grad_last(z: np.ndarray, n: np.ndarray) -> np.ndarray:
    return _softmax_last(z) * _sum(n, keepdims=True) - n


# --- the protocol --------------------------------------------------------------------------------


def softmax(z: Any, axis: int = -1) -> np.ndarray:
    """softmax(z)_j = exp(z_j - a) / (1 + s), Alg. 4.1 of Blanchard, Higham & Higham (2021).

    a = max z along ``axis`` and s = sum of exp(z_i - a) without one maximal entry, so the
    denominator 1 + s is formed from a sum that never overflows and never underflows to 0.
    """
    z = _as_float(z)
    with np.errstate(all="ignore"):
        return np.moveaxis(_softmax_last(np.moveaxis(z, axis, -1)), -1, axis)


def log_softmax(z: Any, axis: int = -1) -> np.ndarray:
    """log_softmax(z)_j = (z_j - a) - log1p(s), from Alg. 4.1 of Blanchard, Higham & Higham (2021).

    Never log(softmax(z)): a probability that underflows would give -inf. log1p(s) keeps the
    largest entry accurate when one logit dominates (s tiny), where log(1 + s) would round to 0.
    """
    z = _as_float(z)
    with np.errstate(all="ignore"):
        return np.moveaxis(_log_softmax_last(np.moveaxis(z, axis, -1)), -1, axis)


def logsumexp(z: Any, axis: int = -1) -> np.ndarray:
    """log(sum_j exp(z_j)) = a + log1p(s), Alg. 4.1 of Blanchard, Higham & Higham (2021).

    ``axis`` is removed. a = max z and s = sum of exp(z_i - a) without one maximal entry:
    a + log(sum of all exp(z_i - a)) would first round 1 + s and lose s when it is below u.
    An all -inf row gives -inf; a +inf entry gives +inf.
    """
    z = np.moveaxis(_as_float(z), axis, -1)
    with np.errstate(all="ignore"):
        a, _, _, s, e = _alg41(z)
        lse = np.where(np.isposinf(a), a, a + _log1p_sum(s, e))
    return np.asarray(lse[..., 0], dtype=z.dtype)


def softmax_vjp(z: Any, v: Any, axis: int = -1) -> np.ndarray:
    """Vector-Jacobian product of softmax: g * (v - <v, g>) along ``axis``, g = softmax(z).

    The softmax Jacobian diag(g) - g g^T is symmetric, so this is also the Jacobian-vector product.
    g comes from Alg. 4.1 (Blanchard, Higham & Higham 2021).
    """
    z = _as_float(z)
    v = np.asarray(v, dtype=z.dtype)
    with np.errstate(all="ignore"):
        g = _softmax_last(np.moveaxis(z, axis, -1))
        vl = np.moveaxis(v, axis, -1)
        r = g * (vl - _sum(g * vl, keepdims=True))
    return np.moveaxis(r, -1, axis)


def cross_entropy(z: Any, n: Any, axis: int = -1) -> np.ndarray:
    """Cross-entropy C = -sum_j n_j log softmax(z)_j per row (``axis`` removed, no batch mean).

    Evaluated as sum_j n_j * (-l_j) with l = log-softmax from Alg. 4.1 (Blanchard, Higham & Higham
    2021), never as -log of a computed probability. Entries with n_j = 0 are left out (0 log 0 = 0),
    so a masked logit z_j = -inf costs nothing unless its target is positive (then C = +inf).
    """
    z = _as_float(z)
    n = np.asarray(n, dtype=z.dtype)
    with np.errstate(all="ignore"):
        nl = np.moveaxis(n, axis, -1)
        neg_l = -_log_softmax_last(np.moveaxis(z, axis, -1))
        terms = np.where(nl != 0, nl * neg_l, _const(0.0, z.dtype))
        return np.asarray(_sum(terms), dtype=z.dtype)


def cross_entropy_grad(z: Any, n: Any, axis: int = -1) -> np.ndarray:
    """Gradient of the cross-entropy with respect to the logits: softmax(z) * sum(n) - n.

    Valid for any targets n; it reduces to softmax(z) - n only when sum(n) = 1. The entries sum to
    zero, because the loss is shift invariant. softmax from Alg. 4.1 (Blanchard, Higham & Higham).
    """
    z = _as_float(z)
    n = np.asarray(n, dtype=z.dtype)
    with np.errstate(all="ignore"):
        d = _cross_entropy_grad_last(np.moveaxis(z, axis, -1), np.moveaxis(n, axis, -1))
    return np.moveaxis(d, -1, axis)


def dense_grads(W: Any, b: Any, x: Any, n: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of L = sum over rows of C(x W^T + b, n) for a dense layer with a softmax output.

    W (k, m), b (k,), x (B, m), n (B, k). With delta = softmax(z) * sum(n) - n per row (shape
    (B, k)): dW = delta^T x, db = sum of delta over the batch, dx = delta W. The logits
    z = x W^T + b are formed in the inputs' dtype.
    """
    W = _as_float(W)
    b = np.asarray(b, dtype=W.dtype)
    x = np.asarray(x, dtype=W.dtype)
    n = np.asarray(n, dtype=W.dtype)
    with np.errstate(all="ignore"):
        z = _matmul(x, W.T) + b
        delta = _cross_entropy_grad_last(z, n)
        dW = _matmul(delta.T, x)
        db = _sum(delta.T)
        dx = _matmul(delta, W)
    return dW, db, dx


# --- the loss API --------------------------------------------------------------------------------
#
# Class indices or probabilities, class weights, label smoothing, ignore_index and the three
# reductions, with PyTorch's semantics (see the claims). Computed in a wider format (float32 for
# float16 and bfloat16, float64 otherwise) with the same Alg. 4.1 and pairwise sums, and rounded
# to the input's dtype once: the accurate level of the claims.


def _wide(dtype: np.dtype[Any]) -> Any:
    return np.float32 if np.finfo(dtype).bits < 32 else np.float64


def _effective(z: np.ndarray, y: Any, weight: Any, ignore_index: int, label_smoothing: float,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
    """(log-softmax, effective targets t, ignored rows, denominator of the mean), widened."""
    wide = _wide(z.dtype)
    zw = z.astype(wide)
    classes = z.shape[-1]
    w = np.ones(classes, dtype=wide) if weight is None else np.asarray(weight).astype(wide)
    eps = wide(label_smoothing)
    y = np.asarray(y)
    if y.dtype.kind in "iu":
        ignored = y == ignore_index
        label = np.where(ignored, 0, y)
        if np.any((label < 0) | (label >= classes)):
            raise IndexError(f"class index out of range [0, {classes}) (ignore_index="
                             f"{ignore_index})")
        rows = np.arange(z.shape[0])
        p = np.zeros(zw.shape, dtype=wide)
        p[rows, label] = w[label]
        p[ignored] = 0
        D = _sum(np.where(ignored, wide(0), w[label]))
    else:
        ignored = np.zeros(z.shape[0], dtype=bool)
        p = w * np.asarray(y).astype(wide)
        D = wide(z.shape[0])
    t = (wide(1) - eps) * p + (eps / wide(classes)) * w
    t[ignored] = 0
    return _log_softmax_last(zw), t, ignored, D


def _loss_and_delta(z: np.ndarray, y: Any, weight: Any, ignore_index: int,
                    label_smoothing: float, reduction: str,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The reduced loss and dL/dz, both in the wide format."""
    if reduction not in ("none", "sum", "mean"):
        raise ValueError(f"reduction={reduction!r}: use 'none', 'sum' or 'mean'")
    with np.errstate(all="ignore"):
        l, t, _, D = _effective(z, y, weight, ignore_index, label_smoothing)
        terms = np.where(t != 0, t * -l, 0)
        rows = _sum(terms)
        g = np.exp(l)  # softmax from the accurate log-softmax
        delta = g * _sum(t, keepdims=True) - t
        if reduction == "none":
            return rows, delta
        total = _sum(rows)
        if reduction == "sum":
            return total, delta
        # an empty mean is 0/0 = NaN, as in PyTorch, whose gradient is 0 (no row contributes)
        scale = 1 / D if D != 0 else D
        return total / D, delta * scale


def cross_entropy_loss(z: Any, y: Any, *, weight: Any = None, ignore_index: int = -100,
                       label_smoothing: float = 0.0, reduction: str = "mean") -> np.ndarray:
    """Cross-entropy loss over a batch z (B, K) with class indices y (B,) or probabilities
    y (B, K), PyTorch's semantics: per row -sum_j t_j log softmax(z)_j with effective targets
    t = (1 - eps) w_y e_y + (eps / K) w (0 for ignored rows) or w * ((1 - eps) q + eps / K);
    'mean' divides by the sum of w_y over rows not ignored (by B for probabilities)."""
    z = _as_float(z)
    loss, _ = _loss_and_delta(z, y, weight, ignore_index, label_smoothing, reduction)
    return np.asarray(loss).astype(z.dtype)


def cross_entropy_loss_grad(z: Any, y: Any, *, weight: Any = None, ignore_index: int = -100,
                            label_smoothing: float = 0.0, reduction: str = "mean") -> np.ndarray:
    """dL/dz of ``cross_entropy_loss`` (for 'none', of the sum of the rows' losses):
    (softmax(z) sum(t) - t), divided by the mean's denominator for 'mean'."""
    z = _as_float(z)
    _, delta = _loss_and_delta(z, y, weight, ignore_index, label_smoothing, reduction)
    return delta.astype(z.dtype)


def linear_cross_entropy(x: Any, W: Any, b: Any, y: Any, *, weight: Any = None,
                         ignore_index: int = -100, label_smoothing: float = 0.0,
                         reduction: str = "mean",
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The loss of z = x W^T + b and its gradients (loss, dx, dW, db), everything computed in
    the wide format (the logits are never rounded to the input's dtype)."""
    x = _as_float(x)
    wide = _wide(x.dtype)
    xw, Ww = x.astype(wide), np.asarray(W).astype(wide)
    z = _matmul(xw, Ww.T) + np.asarray(b).astype(wide)
    loss, delta = _loss_and_delta(z, y, weight, ignore_index, label_smoothing, reduction)
    with np.errstate(all="ignore"):
        dW = _matmul(delta.T, xw)
        db = _sum(delta.T)
        dx = _matmul(delta, Ww)
    dt = x.dtype
    return (np.asarray(loss).astype(dt), dx.astype(dt), dW.astype(dt),
            np.asarray(db).astype(dt))
