"""The oracle checks itself at doubled precision, every reference family on every row length.

Each reference value the kit computes at its working precision p (2t + 64 bits) must agree with
the same value computed at 2p within the accuracy the kit claims for it, and each fast enclosure
(``FastRows``: float64 or long double intervals) must hold the value at 2p as well as its own.

The claimed accuracy is the model of ``intervals.mp_slack`` (docs/tolerances.md, "The reference in
W"): (n + 64) 2^-(p-4) times the magnitudes a quantity's formula adds up or cancels. The magnitudes
below are those of ``FastRows`` and ``RowRef``, with each quantity's inputs counted at the larger
of their two values (exp(l) at p and at 2p can differ by far more than a factor 2 when |l| is
near 2^p, e.g. float64 gaps of 1e300). The families without enclosures (the VJP and the dense
layer) get magnitudes in the same model, derived in their docstrings. Since the 2p value is itself
within the claim at 2p of the exact one, |v_p - v_2p| <= (n + 64)(2^-(p-4) + 2^-(2p-4)) m.

Doubling the working precision cannot see a computation that leaks into mpmath's global context
(``mpmath.fsum`` for ``ctx.fsum``): both values would carry the same fixed-precision error. So the
values at p are computed with the global precision at 12 bits, and those at 2p at 53.

Rows come from the kit's own strategies in every dtype: short (1 to 16 entries), long (257 to
1024) and vocabulary-sized (32,000 to 32,768), with masks, huge spreads, ties and subnormal
probabilities as the families draw them. On a long row a few elements are compared (both ends,
the maximum, the smallest finite entry, a masked one, targets, and some in between), since each
costs mpmath evaluations at two precisions; the row's shared sums are computed in full.

Adding a family: a ``Family`` in ``FAMILIES`` (see the note there for the loss API).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softmax_oracle.oracle.dtypes import DTYPES, get_dtype
from softmax_oracle.oracle.exact import MPF, Certified, context, mp_vector, rows_of
from softmax_oracle.oracle.intervals import _to_mpf_exact
from softmax_oracle.oracle.reference import dense_ref, row_refs
from softmax_oracle.spec import strategies as S

Example = dict[str, Any]
Key = tuple[Any, ...]
#: Values of one family at one precision: key -> (value, enclosure: a Certified vector and an
#: index, or None).
Values = dict[Key, tuple[MPF, tuple[Certified, int] | None]]
#: Magnitudes: key -> the magnitude its claim scales, or None for exact values (masks) that must
#: be equal at both precisions. Keys left out are ingredients of other magnitudes, not compared.
Magnitudes = dict[Key, MPF | None]

#: Row lengths: (min_size, max_size, examples (of any dtype), rows of a batch compared).
SIZES: dict[str, tuple[int, int, int, int]] = {
    "short": (1, 16, 40, 4),
    "long": (257, 1024, 6, 2),
    "vocabulary": (S.VOCAB_MIN, 32768, 2, 1),
}
LEAKY_PREC = 12  # mpmath's global precision while the values at p are computed (53 at 2p)
_fsum = context(256).fsum  # sums of magnitudes (nonnegative terms)


@dataclass(frozen=True)
class Family:
    """Inputs for a dtype and a range of row lengths; the values at one precision (computed,
    not lazy); their magnitudes from the values at both precisions; examples per row length
    where fewer than ``SIZES`` says (0: not run)."""

    inputs: Callable[[str, int, int], st.SearchStrategy[Example]]
    values: Callable[[Example, int, int], Values]
    magnitudes: Callable[[Example, Values, Values], Magnitudes]
    examples: dict[str, int]


# =============================================================================== the comparison


def _label(key: Key) -> str:
    return " ".join(str(k) for k in key)


def _holds(key: Key, low: tuple[MPF, Any], high: tuple[MPF, Any], magnitude: MPF | None,
           p: int, n: int) -> None:
    ctx = context(4 * p)  # differences of a p-bit and a 2p-bit value are exact here
    lo, hi = ctx.mpf(low[0]), ctx.mpf(high[0])
    what = _label(key)
    if magnitude is None or not (ctx.isfinite(lo) and ctx.isfinite(hi)):
        assert lo == hi, f"{what}: {lo} at {p} bits, {hi} at {2 * p} bits"
    else:
        allowed = (n + 64) * (ctx.ldexp(1, 4 - p) + ctx.ldexp(1, 4 - 2 * p)) * magnitude
        diff = abs(lo - hi)
        assert diff <= allowed, (f"{what}: {mpmath.nstr(lo, 20)} at {p} bits, "
                                 f"{mpmath.nstr(hi, 20)} at {2 * p} bits differ by "
                                 f"{mpmath.nstr(diff, 3)}, more than the claimed "
                                 f"{mpmath.nstr(allowed, 3)}")
    if low[1] is None:
        return
    cert, j = low[1]
    bounds = cert.bounds
    assert bounds is not None, f"{what}: no enclosure"
    approx, err, lows = bounds
    mid = _to_mpf_exact(ctx, approx[j])
    if lows is not None:
        mid += _to_mpf_exact(ctx, lows[j])
    for v, prec in ((hi, 2 * p), (lo, p)):
        if not (ctx.isfinite(v) and ctx.isfinite(mid)):
            assert v == mid and err[j] == 0, f"{what}: enclosure {mid}, value {v}"
            continue
        radius = _to_mpf_exact(ctx, err[j]) if np.isfinite(err[j]) else ctx.inf
        assert abs(v - mid) <= radius, (f"{what}: the enclosure {mpmath.nstr(mid, 20)} +- "
                                        f"{mpmath.nstr(radius, 3)} misses the value at {prec} "
                                        f"bits, {mpmath.nstr(v, 20)}")


def _picks(row: np.ndarray, extra: np.ndarray | None = None) -> list[int]:
    """Every index of a short row; on a long one, both ends, the maximum, the smallest finite
    entry (the smallest probability), the first masked entry, up to four indices where ``extra``
    is nonzero (targets) and six evenly spaced ones."""
    n = row.size
    if n <= 16:
        return list(range(n))
    finite = np.flatnonzero(row > -np.inf)
    masked = np.flatnonzero(row == -np.inf)
    picks = {0, n - 1, int(np.argmax(row)), *np.linspace(0, n - 1, 6).astype(int).tolist()}
    if finite.size:
        picks.add(int(finite[np.argmin(row[finite])]))
    if masked.size:
        picks.add(int(masked[0]))
    if extra is not None:
        picks.update(int(j) for j in np.flatnonzero(extra)[:4])
    return sorted(picks)


def _bigger(lo: Values, hi: Values) -> Callable[..., MPF]:
    """big(*key): the larger magnitude of a value at the two precisions."""
    return lambda *key: max(abs(lo[key][0]), abs(hi[key][0]))


# =============================================================================== rows


def rows_values(ex: Example, p: int, rows: int) -> Values:
    z, axis = ex["z"], ex["axis"]
    zr = rows_of(z, axis)
    out: Values = {}
    for i, r in enumerate(row_refs(z, axis, p)[:rows]):
        out[i, "logsumexp"] = (r.y, (r.logsumexp(certified=True), 0))
        out[i, "L"] = (r.L, None)
        for j in _picks(zr[i]):
            out[i, "log_softmax", j] = (r.l[j], (r.l, j))
            out[i, "softmax", j] = (r.g[j], (r.g, j))
            out[i, "1 - softmax", j] = (r.one_minus_g[j], (r.one_minus_g, j))
    return out


def rows_magnitudes(ex: Example, lo: Values, hi: Values) -> Magnitudes:
    """FastRows' magnitudes: |y| + L, L, |l_j| + L, g_j (2 + |l_j| + L),
    g_j (1 + |l_j| + L) + 1 - g_j; masked entries and all-masked rows are exact."""
    zr, big = rows_of(ex["z"], ex["axis"]), _bigger(lo, hi)
    out: Magnitudes = {}
    for key in lo:
        i, what, *j = key
        if not np.any(zr[i] > -np.inf) or (j and zr[i][j[0]] == -np.inf):
            out[key] = None
        elif what == "logsumexp":
            out[key] = big(i, what) + big(i, "L")
        elif what == "L":
            out[key] = big(i, "L")
        elif what == "log_softmax":
            out[key] = big(*key) + big(i, "L")
        elif what == "softmax":
            out[key] = big(*key) * (2 + big(i, "log_softmax", *j) + big(i, "L"))
        elif what == "1 - softmax":
            out[key] = big(i, "softmax", *j) * (1 + big(i, "log_softmax", *j) + big(i, "L")) \
                + big(*key)
    return out


# =============================================================================== cross-entropy


def cross_entropy_values(ex: Example, p: int, rows: int) -> Values:
    z, axis = ex["z"], ex["axis"]
    zr, nr = rows_of(z, axis), rows_of(ex["n"], axis)
    out: Values = {}
    for i, r in enumerate(row_refs(z, axis, p)[:rows]):
        ns = mp_vector(r.ctx, nr[i])
        out[i, "cross_entropy"] = (r.cross_entropy(ns), (r.cross_entropy(ns, certified=True), 0))
        out[i, "L"] = (r.L, None)
        grad = r.grad(ns)
        picks = _picks(zr[i], nr[i])
        for j in sorted({*picks, *np.flatnonzero(nr[i]).tolist()}):
            out[i, "log_softmax", j] = (r.l[j], (r.l, j))
        for j in picks:
            out[i, "softmax", j] = (r.g[j], (r.g, j))
            out[i, "cross_entropy_grad", j] = (grad[j], (grad, j))
    return out


def cross_entropy_magnitudes(ex: Example, lo: Values, hi: Values) -> Magnitudes:
    """C = -sum n_j l_j: sum |n_j| (|l_j| + L) (FastRows: sum |n_j l_j|, and |l_j| >= L);
    dC/dz_j = g_j (S_n - n_j) - n_j (1 - g_j): (N1 + 2|n_j|) g_j (2 + |l_j| + L) + 2|n_j| (the
    errors of g_j and 1 - g_j carried through, and the roundings of the two products). A target
    on a masked entry makes C = +inf, exactly."""
    zr, nr = rows_of(ex["z"], ex["axis"]), rows_of(ex["n"], ex["axis"])
    big = _bigger(lo, hi)
    out = rows_magnitudes(ex, lo, hi)
    for key in lo:
        i, what, *j = key
        L = big(i, "L")
        if what == "cross_entropy":
            support = np.flatnonzero(nr[i])
            out[key] = None if np.any(zr[i][support] == -np.inf) else _fsum(
                abs(float(nr[i][s])) * (big(i, "log_softmax", int(s)) + L) for s in support)
        elif what == "cross_entropy_grad":
            nj, n1 = abs(float(nr[i][j[0]])), _fsum(abs(v) for v in nr[i].tolist())
            out[key] = None if zr[i][j[0]] == -np.inf else (n1 + 2 * nj) * big(
                i, "softmax", *j) * (2 + big(i, "log_softmax", *j) + L) + 2 * nj
    return out


# =============================================================================== the VJP


def vjp_values(ex: Example, p: int, rows: int) -> Values:
    z, axis = ex["z"], ex["axis"]
    zr, vr = rows_of(z, axis), rows_of(ex["v"], axis)
    out: Values = {}
    for i, r in enumerate(row_refs(z, axis, p)[:rows]):
        vjp = r.vjp(mp_vector(r.ctx, vr[i]))
        out[i, "L"] = (r.L, None)
        for j in range(r.n):  # every g_j enters <g, v>
            out[i, "log_softmax", j] = (r.l[j], None)
            out[i, "softmax", j] = (r.g[j], None)
        for j in _picks(zr[i]):
            out[i, "softmax_vjp", j] = (vjp[j], None)
    return out


def vjp_magnitudes(ex: Example, lo: Values, hi: Values) -> Magnitudes:
    """v^T J = g (v - m), m = sum_i g_i v_i. With e_i = g_i (2 + |l_i| + L) the magnitude of
    g_i, A = sum g_i |v_i| and T = sum e_i |v_i|, the error of m is within T (and the roundings
    of its products and sum, A), so element j has (|v_j| + A) e_j + T g_j."""
    zr, big = rows_of(ex["z"], ex["axis"]), _bigger(lo, hi)
    vr = rows_of(ex["v"], ex["axis"]).tolist()
    out: Magnitudes = {}
    for i in sorted({k[0] for k in lo}):
        L = big(i, "L")
        live = np.flatnonzero(zr[i] > -np.inf).tolist()
        g = {j: big(i, "softmax", j) for j in live}
        e = {j: g[j] * (2 + big(i, "log_softmax", j) + L) for j in live}
        A = _fsum(g[j] * abs(vr[i][j]) for j in live)
        T = _fsum(e[j] * abs(vr[i][j]) for j in live)
        for key in lo:
            if key[:2] == (i, "softmax_vjp"):
                j = key[2]
                out[key] = None if j not in g else (abs(vr[i][j]) + A) * e[j] + T * g[j]
    return out


# =============================================================================== the dense layer


def dense_values(ex: Example, p: int, rows: int) -> Values:
    W, b, x, n = (np.asarray(ex[k], dtype=np.float64) for k in ("W", "b", "x", "n"))
    ref = dense_ref(W, b, x, n, p)
    out: Values = {}
    for bi, r in enumerate(ref.rows):
        out[bi, "L"] = (r.L, None)
        for i in range(W.shape[0]):
            out[bi, "logits", i] = (ref.logits[bi][i], None)
            out[bi, "log_softmax", i] = (r.l[i], None)
            out[bi, "softmax", i] = (r.g[i], None)
            out[bi, "delta", i] = (ref.delta[bi][i], None)
        for j in range(W.shape[1]):
            out[bi, "dx", j] = (ref.dx[bi][j], None)
    for i in range(W.shape[0]):
        out["db", i] = (ref.db[i], None)
        for j in range(W.shape[1]):
            out["dW", i, j] = (ref.dW[i][j], None)
    return out


def dense_magnitudes(ex: Example, lo: Values, hi: Values) -> Magnitudes:
    """z_bi = b_i + sum_j W_ij x_bj rounds once: |z_bi|. That moves every l_bj by at most
    2 Z_b 2^-p (Z_b = max_i |z_bi|), so the row's values get the magnitudes of ``rows`` with
    2 Z_b added to |l| + L, and delta_bi (as cross_entropy_grad) d_bi = (N1_b + 2|n_bi|) g_bi
    (2 + |l_bi| + L_b + 2 Z_b) + 2|n_bi|. The sums over it: dW_ij = sum_b delta_bi x_bj gets
    sum_b (d_bi + |delta_bi|)|x_bj| + |dW_ij|, db_i sum_b (d_bi + |delta_bi|) + |db_i|, and
    dx_bj = sum_i delta_bi W_ij sum_i (d_bi + |delta_bi|)|W_ij| + |dx_bj|."""
    W, x, n = (np.asarray(ex[k], dtype=np.float64).tolist() for k in ("W", "x", "n"))
    k, m, B = len(W), len(W[0]), len(x)
    big = _bigger(lo, hi)
    out: Magnitudes = {}
    d: dict[tuple[int, int], MPF] = {}
    for bi in range(B):
        Z = max(big(bi, "logits", i) for i in range(k))
        L = big(bi, "L")
        out[bi, "L"] = L + 2 * Z
        n1 = _fsum(abs(v) for v in n[bi])
        for i in range(k):
            ell = big(bi, "log_softmax", i) + L + 2 * Z
            g = big(bi, "softmax", i)
            out[bi, "logits", i] = big(bi, "logits", i)
            out[bi, "log_softmax", i] = ell
            out[bi, "softmax", i] = g * (2 + ell)
            d[bi, i] = (n1 + 2 * abs(n[bi][i])) * g * (2 + ell) + 2 * abs(n[bi][i])
            out[bi, "delta", i] = d[bi, i]
            d[bi, i] += big(bi, "delta", i)
        for j in range(m):
            out[bi, "dx", j] = _fsum(d[bi, i] * abs(W[i][j]) for i in range(k)) + big(bi, "dx", j)
    for i in range(k):
        out["db", i] = _fsum(d[bi, i] for bi in range(B)) + big("db", i)
        for j in range(m):
            out["dW", i, j] = _fsum(d[bi, i] * abs(x[bi][j]) for bi in range(B)) + big("dW", i, j)
    return out


def _dense_of_rows(ex: Example) -> Example:
    """A dense layer whose logits are the drawn rows exactly: W holds them as columns, x = I, b = 0
    (k = the row length, m = B = the number of rows, at most 2)."""
    z, n = rows_of(ex["z"], ex["axis"])[:2], rows_of(ex["n"], ex["axis"])[:2]
    return {"W": z.T.copy(), "b": np.zeros(z.shape[1]), "x": np.eye(z.shape[0]), "n": n}


def _dense_inputs(name: str, lo: int, hi: int) -> st.SearchStrategy[Example]:
    if hi <= 16:
        return S.dense_layers(name, max_size=hi)
    return S.logits_and_targets(name, min_size=lo, max_size=min(hi, 2 * lo), masks=False).map(
        _dense_of_rows)


# =============================================================================== the loss API


def loss_values(ex: Example, p: int, rows: int) -> Values:
    """The loss API's reduced loss and its gradient's elements (with the rows' L, log-softmax
    and softmax at the same elements as ingredients)."""
    from softmax_oracle.oracle.loss import LossSpec, loss_ref

    z = ex["z"]
    ref = loss_ref(z, LossSpec.of(ex["y"], ex["options"]), p)
    out: Values = {}
    if not ref.defined:
        return out
    for k, v in enumerate(ref.loss()):
        out["loss", k] = (v, None)
    for i, r in enumerate(ref.rows[:rows]):
        out[i, "L"] = (r.L, None)
        grad = ref.grad(i)
        for j in _picks(rows_of(z, -1)[i]):
            out[i, "log_softmax", j] = (r.l[j], None)
            out[i, "softmax", j] = (r.g[j], None)
            out[i, "loss_grad", j] = (grad[j], None)
    return out


def loss_magnitudes(ex: Example, lo: Values, hi: Values) -> Magnitudes:
    """Each row's loss as cross_entropy_magnitudes with the effective targets t_i (whose own
    roundings at p bits add |t_ij| relative 2**-p each), summed over the rows (and over D for the
    mean); each gradient element as there, with S_i = sum t_i, scaled like the gradient."""
    from softmax_oracle.oracle.loss import LossSpec, loss_ref

    z = ex["z"]
    ref = loss_ref(z, LossSpec.of(ex["y"], ex["options"]), 256)
    if not ref.defined:
        return {}
    big = _bigger(lo, hi)
    scale = abs(ref.scale)
    out: Magnitudes = {}
    row_mag = []
    for r, t in zip(ref.rows, ref.t):
        if t is None:
            row_mag.append(0)
            continue
        row_mag.append(_fsum(abs(tj) * (abs(r.l[j]) + r.L) for j, tj in enumerate(t) if tj))
    for k in range(len(ref.loss())):
        mags = [row_mag[k]] if ref.spec.reduction == "none" else row_mag
        out["loss", k] = _fsum(mags) * (scale if ref.spec.reduction == "mean" else 1)
    for key in lo:
        i, what, *j = key
        if what != "loss_grad":
            continue
        t = ref.t[i]
        if t is None:
            out[key] = None  # exactly 0
            continue
        S, tj = _fsum(t), abs(t[j[0]])
        out[key] = scale * ((S + 2 * tj) * big(i, "softmax", *j)
                            * (2 + big(i, "log_softmax", *j) + big(i, "L")) + 2 * tj)
    return out


# =============================================================================== the families

#: The VJP (its <g, v> needs every g_i) and the dense layer (``dense_ref`` is eager, about 15
#: mpmath operations per logit) evaluate every element at both precisions whatever is compared,
#: so they get fewer examples. The kit evaluates neither beyond short rows (no vocabulary-sized
#: cotangents; dense layers of at most 16 outputs), and the dense layer stops at long rows:
#: 32,768 outputs would take about a minute.
#:
#: The loss API (oracle/loss.py): inputs from its strategies (class indices or probabilities,
#: weights, smoothing, ignore_index, each reduction, up to a thousand rows), values
#: loss_ref(z, spec, p).loss() and .grad(i), and the magnitudes of cross_entropy_magnitudes per
#: row with the effective targets t_i for n, summed over the rows for sum and mean and times 1/D
#: for the mean. Short rows only: the kit judges the loss API's gradient on short rows, and its
#: vocabulary-sized losses are the rows' cross-entropies checked above.
FAMILIES: dict[str, Family] = {
    "rows": Family(lambda name, lo, hi: S.logits(name, min_size=lo, max_size=hi,
                                                 full_masks=True, batches=hi <= 16),
                   rows_values, rows_magnitudes, {}),
    "cross_entropy": Family(
        lambda name, lo, hi: S.logits_and_targets(name, min_size=lo, max_size=hi),
        cross_entropy_values, cross_entropy_magnitudes, {}),
    "vjp": Family(lambda name, lo, hi: S.logits_and_cotangent(name, min_size=lo, max_size=hi),
                  vjp_values, vjp_magnitudes, {"vocabulary": 1}),
    "dense": Family(_dense_inputs, dense_values, dense_magnitudes,
                    {"short": 30, "long": 4, "vocabulary": 0}),
    "loss": Family(lambda name, lo, hi: S.loss_inputs(name, max_size=hi),
                   loss_values, loss_magnitudes, {"short": 30, "long": 0, "vocabulary": 0}),
}


@pytest.mark.parametrize(("family", "size"), [
    (family, size) for family, f in FAMILIES.items() for size in SIZES
    if f.examples.get(size, SIZES[size][2])])
def test_reference_agrees_with_doubled_precision(family, size):
    f = FAMILIES[family]
    lo, hi, examples, rows = SIZES[size]
    compared: list[int] = []
    tags: set[str] = set()

    @settings(max_examples=f.examples.get(size, examples))
    @given(st.sampled_from(sorted(DTYPES)).flatmap(
        lambda name: st.tuples(st.just(name), f.inputs(name, lo, hi))))
    def check(case):
        name, ex = case
        p = get_dtype(name).prec
        with mpmath.workprec(LEAKY_PREC):
            low = f.values(ex, p, rows)
        with mpmath.workprec(53):
            high = f.values(ex, 2 * p, rows)
        n = (max(*ex["W"].shape, len(ex["x"])) if "W" in ex else ex["z"].shape[0] * ex["z"].shape[1]
             if "y" in ex else ex["z"].shape[ex["axis"]])
        for key, magnitude in f.magnitudes(ex, low, high).items():
            _holds(key, low[key], high[key], magnitude, p, n)
        compared.append(len(low))
        tags.update(ex.get("regime", ()))
        if any(k[1] == "softmax" and 0 < high[k][0] < get_dtype(name).rmin for k in high):
            tags.add("subnormal probability")

    check()
    assert sum(compared) > 0
    if size == "short" and family in ("rows", "cross_entropy"):  # the hard cases were there
        assert {"mask", "dominant", "offset", "subnormal probability"} <= tags, sorted(tags)
