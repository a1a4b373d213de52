"""The built-in targets and ``round_to``: the careful numpy implementation against the mpmath
reference target on fixed adversarial inputs, masks, shapes, dtypes and mutation; the naive and
seed targets against the numbers in the design notes; ``round_to`` against numpy's and ml_dtypes'
own single roundings."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import ml_dtypes
import mpmath
import numpy as np
import pytest

from softmax_oracle.oracle.dtypes import DTYPES, DType, get_dtype, round_to
from softmax_oracle.targets import PROTOCOL, load_target
from softmax_oracle.targets import builtin_naive as naive
from softmax_oracle.targets import builtin_numpy as careful
from softmax_oracle.targets import builtin_reference as reference
from softmax_oracle.targets import builtin_seed as seed

DT = {name: get_dtype(name) for name in DTYPES}
LOW = ("float16", "bfloat16")
INF = math.inf

# Rows on which Alg. 4.1 is within a few ulps of the exact result in every component: the shifts
# z_j - max are exact (or their exp underflows anyway), and no output cancels.
ROWS: dict[str, list[list[float]]] = {
    "float64": [
        [1e300, -1e300, 0.0], [710.0, 709.0], [0.0, -40.0], [0.0, -745.0], [0.0, -720.0, -730.0],
        [-1000.0, -1000.5, -1001.0], [-800.0, -801.0], [20.0, 0.0], [3.0, 1.0, 0.5, -2.0],
        [1e8, 1e8 + 1.0, 1e8 - 0.5], [5.0], [0.0, -INF, 3.0],
    ],
    "float32": [
        [3e38, -3e38], [100.0, 99.0], [0.0, -200.0], [-100.0, -101.0], [0.0, -95.0],
        [20.0, 0.0], [88.0, -12.0, 1.0], [1e6, 1e6 + 0.5], [5.0], [0.0, -INF, 3.0],
    ],
    "float16": [
        [1e4, -1e4], [60000.0, -60000.0], [12.0, 11.0], [-15.0, -16.0], [0.0, -12.0],
        [0.0, -40.0], [-17.0, -17.5], [3.0, 1.0, 0.5, -2.0], [5.0], [0.0, -INF, 1.0],
    ],
    "bfloat16": [
        [3e38, -3e38], [100.0, 99.0], [-90.0, -91.0, -92.0], [0.0, -88.0], [1e30, 1e30],
        [0.0, -40.0], [3.0, 1.0, 0.5, -2.0], [5.0], [0.0, -INF, 1.0],
    ],
}
CASES = [(name, row) for name, rows in ROWS.items() for row in rows]


def _f64(x: object) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def assert_few_ulps(got: object, want: object, dt: DType, ulps: float = 4) -> None:
    """Elementwise |got - want| <= ulps ulp(want) (float32/64) or <= max(8u|want|, ulp(want))
    (float16/bfloat16); infinities and NaNs must match exactly."""
    g, w = _f64(got), _f64(want)
    assert g.shape == w.shape
    for gi, wi in zip(g.ravel(), w.ravel(), strict=True):
        if not math.isfinite(wi) or not math.isfinite(gi):
            assert gi == wi or (math.isnan(gi) and math.isnan(wi)), (gi, wi)
            continue
        allowed = max(8 * dt.u * abs(wi), dt.ulp(wi)) if dt.name in LOW else ulps * dt.ulp(wi)
        assert abs(gi - wi) <= allowed, f"{gi!r} vs {wi!r}: {abs(gi - wi) / dt.ulp(wi):.1f} ulp"


def _row(name: str, row: list[float]) -> np.ndarray:
    return np.array(row, dtype=DT[name].np)


def _one_hot_minor(z: np.ndarray) -> np.ndarray:
    """One-hot target on the finite entry with the smallest probability (so g_t <= 1/2)."""
    zf = _f64(z)
    t = int(np.argmin(np.where(np.isfinite(zf), zf, INF)))
    n = np.zeros(z.shape, dtype=z.dtype)
    n[t] = 1
    return n


# --- the careful implementation against the reference --------------------------------------------


@pytest.mark.parametrize(("name", "row"), CASES)
def test_numpy_matches_reference(name: str, row: list[float]) -> None:
    dt, z = DT[name], _row(name, row)
    assert_few_ulps(careful.softmax(z), reference.softmax(z), dt)
    assert_few_ulps(careful.log_softmax(z), reference.log_softmax(z), dt)
    assert_few_ulps(careful.logsumexp(z), reference.logsumexp(z), dt)
    n = _one_hot_minor(z)
    assert_few_ulps(careful.cross_entropy(z, n), reference.cross_entropy(z, n), dt)
    assert_few_ulps(careful.cross_entropy(z, 3 * n), reference.cross_entropy(z, 3 * n), dt)
    assert_few_ulps(careful.cross_entropy_grad(z, n), reference.cross_entropy_grad(z, n), dt)
    assert_few_ulps(careful.softmax_vjp(z, n), reference.softmax_vjp(z, n), dt)


@pytest.mark.parametrize("name", list(DTYPES))
def test_dense_grads_match_reference(name: str) -> None:
    """Small dyadic W, b, x make the logits exact, so only the softmax rounds; each gradient
    entry is then within a few ulps of the sum of the magnitudes it is built from."""
    dt = DT[name]
    rng = np.random.default_rng(3)
    W = (rng.integers(-8, 9, (3, 4)) / 4).astype(dt.np)
    b = (rng.integers(-8, 9, 3) / 4).astype(dt.np)
    x = (rng.integers(-8, 9, (5, 4)) / 4).astype(dt.np)
    n = (rng.integers(0, 3, (5, 3)) / 2).astype(dt.np)
    got = careful.dense_grads(W, b, x, n)
    want = reference.dense_grads(W, b, x, n)
    delta = np.abs(_f64(reference.cross_entropy_grad(_f64(x) @ _f64(W).T + _f64(b), _f64(n))))
    delta += _f64(reference.softmax(_f64(x) @ _f64(W).T + _f64(b))) * _f64(n).sum(1)[:, None]
    scales = (delta.T @ np.abs(_f64(x)), delta.sum(0), delta @ np.abs(_f64(W)))
    for g, w, s in zip(got, want, scales, strict=True):
        assert g.dtype == dt.np and g.shape == w.shape
        assert np.all(np.abs(_f64(g) - _f64(w)) <= 8 * dt.u * s + dt.rmin_sub)


def test_reference_dense_grads_match_design_notes() -> None:
    """The notes' dense-layer check: W = [[.5, -1], [2, .25], [-1, 1]], b = (.1, -.2, .3),
    x = (1.5, -.5), n = e3 gives dC/dx = (2.65858, -1.00251) and
    dC/db = (0.20792, 0.78223, -0.99015)."""
    W = np.array([[0.5, -1.0], [2.0, 0.25], [-1.0, 1.0]])
    dW, db, dx = reference.dense_grads(W, np.array([0.1, -0.2, 0.3]), np.array([[1.5, -0.5]]),
                                       np.array([[0.0, 0.0, 1.0]]))
    np.testing.assert_allclose(dx[0], [2.65858, -1.00251], atol=5e-6)
    np.testing.assert_allclose(db, [0.20792, 0.78223, -0.99015], atol=5e-6)
    np.testing.assert_allclose(dW, np.outer(db, [1.5, -0.5]), rtol=1e-15)


# --- masks, shapes, dtypes, mutation -------------------------------------------------------------

TARGETS = {"numpy": careful, "reference": reference}


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("name", list(DTYPES))
def test_masked_entries(target: str, name: str) -> None:
    mod, dt = TARGETS[target], DT[name]
    z = np.array([[1.0, -INF, 0.5, -INF], [-INF, -INF, -INF, -INF], [-INF, 2.0, -INF, -INF]],
                 dtype=dt.np)
    g, l, y = _f64(mod.softmax(z)), _f64(mod.log_softmax(z)), _f64(mod.logsumexp(z))
    masked = np.isneginf(_f64(z))
    assert np.all(g[:1][masked[:1]] == 0) and np.all(g[2:][masked[2:]] == 0)
    assert np.all(l[:1][masked[:1]] == -INF) and np.all(l[2:][masked[2:]] == -INF)
    assert y[1] == -INF
    assert y[2] == 2.0 and g[2, 1] == 1.0 and l[2, 1] == 0.0
    # masked entries are ignored: the same as the row without them
    assert_few_ulps(y[0], mod.logsumexp(np.array([1.0, 0.5], dtype=dt.np)), dt, ulps=0)
    assert_few_ulps(g[0, [0, 2]], mod.softmax(np.array([1.0, 0.5], dtype=dt.np)), dt, ulps=0)
    # a zero target on a masked logit costs nothing; a positive one costs +inf
    n = np.array([[1, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0]], dtype=dt.np)
    c = _f64(mod.cross_entropy(z, n))
    assert c[0] > 0 and math.isfinite(c[0]) and c[1] == 0 and c[2] == 0
    n_bad = np.array([0, 1, 0, 0], dtype=dt.np)
    assert _f64(mod.cross_entropy(z[0], n_bad)) == INF


def _call_all(mod: object, z: np.ndarray, n: np.ndarray, v: np.ndarray,
              axis: int) -> dict[str, np.ndarray]:
    return {
        "softmax": mod.softmax(z, axis=axis),  # type: ignore[attr-defined]
        "log_softmax": mod.log_softmax(z, axis=axis),  # type: ignore[attr-defined]
        "logsumexp": mod.logsumexp(z, axis=axis),  # type: ignore[attr-defined]
        "softmax_vjp": mod.softmax_vjp(z, v, axis=axis),  # type: ignore[attr-defined]
        "cross_entropy": mod.cross_entropy(z, n, axis=axis),  # type: ignore[attr-defined]
        "cross_entropy_grad": mod.cross_entropy_grad(z, n, axis=axis),  # type: ignore[attr-defined]
    }


@pytest.mark.parametrize("name", list(DTYPES))
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
def test_axes_batches_dtypes_and_no_mutation(name: str, axis: int) -> None:
    """3-D arrays along every axis: output dtype and shape, agreement with the reference (the
    same element by element as 1-D rows), and inputs left untouched."""
    dt = DT[name]
    rng = np.random.default_rng(axis + 7)
    z = (rng.integers(-48, 49, (2, 3, 4)) / 4).astype(dt.np)  # z_j - max z is exact
    z[0, 1, 2] = -INF
    n = rng.integers(0, 3, z.shape).astype(dt.np)
    v = rng.normal(0, 1, z.shape).astype(dt.np)
    copies = [a.copy() for a in (z, n, v)]
    got = _call_all(careful, z, n, v, axis)
    for a, c in zip((z, n, v), copies, strict=True):
        assert np.array_equal(a, c, equal_nan=True)
    reduced = np.sum(np.zeros(z.shape), axis=axis).shape
    for fname, out in got.items():
        out = np.asarray(out)
        assert out.dtype == dt.np, fname
        assert out.shape == (reduced if fname in ("logsumexp", "cross_entropy") else z.shape)
    # along the axis, each slice is the 1-D result
    zm, gm = np.moveaxis(z, axis, -1), np.moveaxis(_f64(got["softmax"]), axis, -1)
    ym = _f64(got["logsumexp"])
    for idx in np.ndindex(zm.shape[:-1]):
        assert np.array_equal(gm[idx], _f64(careful.softmax(zm[idx])))
        assert ym[idx] == _f64(careful.logsumexp(zm[idx]))
        assert_few_ulps(gm[idx], reference.softmax(zm[idx]), dt)
        assert_few_ulps(ym[idx], reference.logsumexp(zm[idx]), dt)


@pytest.mark.parametrize("name", list(DTYPES))
def test_length_one_axes(name: str) -> None:
    dt = DT[name]
    z = np.array([[3.5], [-1e4 if name != "float16" else -6e4], [-INF]], dtype=dt.np)
    for mod in (careful, reference):
        assert np.array_equal(_f64(mod.softmax(z))[:2], [[1.0], [1.0]])
        assert np.array_equal(_f64(mod.log_softmax(z))[:2], [[0.0], [0.0]])
        assert np.array_equal(_f64(mod.logsumexp(z)), _f64(z)[:, 0])
        assert np.asarray(mod.logsumexp(z)).dtype == dt.np
    zt = z[:2].T  # shape (1, 2): a length-1 axis 0
    assert np.array_equal(_f64(careful.softmax(zt, axis=0)), [[1.0, 1.0]])


@pytest.mark.parametrize("target", ["numpy", "reference", "naive", "seed"])
@pytest.mark.parametrize("name", list(DTYPES))
def test_every_target_keeps_dtype_and_inputs(target: str, name: str) -> None:
    dt = DT[name]
    loaded = load_target(target)
    rng = np.random.default_rng(11)
    args = {
        1: (rng.normal(0, 3, (2, 3)).astype(dt.np),),
        2: (rng.normal(0, 3, (2, 3)).astype(dt.np), rng.random((2, 3)).astype(dt.np)),
        4: tuple(rng.normal(0, 1, s).astype(dt.np) for s in ((3, 4), (3,), (2, 4), (2, 3))),
    }
    loss_args = {"cross_entropy_loss": (args[1][0], np.array([2, 0])),
                 "cross_entropy_loss_grad": (args[1][0], np.array([2, 0])),
                 "linear_cross_entropy": (args[4][2], args[4][0], args[4][1],
                                          np.array([1, 2]))}
    for fname, fn in loaded.functions.items():
        if fname in loss_args:
            inputs = loss_args[fname]
        else:
            inputs = args[len(PROTOCOL[fname].split(",")) - (0 if fname == "dense_grads" else 1)]
        copies = [a.copy() for a in inputs]
        out = fn(*inputs)
        for a, c in zip(inputs, copies, strict=True):
            assert np.array_equal(a, c), (target, fname)
        for o in out if fname in ("dense_grads", "linear_cross_entropy") else (out,):
            assert np.asarray(o).dtype == dt.np, (target, fname, np.asarray(o).dtype)


def test_numpy_declares_its_exp() -> None:
    info = careful.__softmax_oracle__
    assert info["name"] == "numpy" and info["version"] == np.__version__
    for name in DTYPES:
        dt = DT[name]
        x = np.array([0.0, math.log(dt.rmin) - 1], dtype=dt.np)
        e = info["exp"](x)
        assert e.dtype == dt.np and _f64(e)[0] == 1.0 and _f64(e)[1] > 0  # subnormals kept
    assert load_target("reference").is_reference


def test_sums_stay_in_the_dtype() -> None:
    """numpy sums float16 (and matmuls bfloat16) in float32; the careful target does not, so a
    long float16 row sums with float16 roundings: pairwise, not stuck at 2048 as sequential."""
    z = np.zeros(4096, dtype=np.float16)
    assert _f64(careful.logsumexp(z)) == _f64(np.float16(math.log(4096)))
    tail = np.full(3000, -8.0, dtype=np.float16)  # 3000 e^-8 = 1.0064 in float32 arithmetic
    s = _f64(careful.logsumexp(np.concatenate([[np.float16(0)], tail])))
    assert abs(s - math.log1p(3000 * math.exp(-8))) <= 8 * DT["float16"].u * abs(s)


# --- the naive and seed targets ------------------------------------------------------------------


def test_naive_overflows_where_the_notes_say() -> None:
    g = _f64(naive.softmax(np.array([710.0, 709.0])))
    assert math.isnan(g[0]) and g[1] == 0
    assert _f64(naive.logsumexp(np.array([-800.0, -800.0]))) == -INF
    assert _f64(naive.log_softmax(np.array([0.0, -200.0], dtype=np.float32)))[1] == -INF


def test_seed_formulas_as_written() -> None:
    z, n = np.array([0.0, 0.0]), np.array([2.0, 0.0])
    np.testing.assert_allclose(seed.cross_entropy_grad(z, n), [-1.5, 0.5])  # a - n, not (-1, 1)
    np.testing.assert_allclose(seed.softmax_vjp(z, np.array([1.0, 1.0])), [0.25, 0.25])
    assert not hasattr(seed, "log_softmax") and not hasattr(seed, "logsumexp")
    # section 2.3 with x = a^(L-1) = sigmoid(2), W = (1, -1)^T, b = 0, n = e1
    h = 1 / (1 + math.exp(-2.0))
    dW, _, _ = seed.dense_grads(np.array([[1.0], [-1.0]]), np.zeros(2), np.array([[h]]),
                                  np.array([[1.0, 0.0]]))
    np.testing.assert_allclose(dW[:, 0], [-0.018339 * h, 0.018339 * h], rtol=1e-4)
    dW_true = reference.dense_grads(np.array([[1.0], [-1.0]]), np.zeros(2), np.array([[h]]),
                                    np.array([[1.0, 0.0]]))[0]
    np.testing.assert_allclose(dW_true[:, 0], [-0.129117, 0.129117], rtol=1e-5)


# --- round_to ------------------------------------------------------------------------------------


def _random_float64(rng: np.random.Generator, dt: DType, size: int) -> np.ndarray:
    """Random bit patterns, plus values spread over dt's whole range (subnormals, overflow)."""
    bits = rng.integers(0, 2**63, size=size, dtype=np.uint64) | (
        rng.integers(0, 2, size=size, dtype=np.uint64) << np.uint64(63))
    patterns = bits.view(np.float64)
    spread = np.ldexp(rng.uniform(1, 2, size), rng.integers(dt.emin - dt.t - 2, dt.emax + 3, size))
    values = np.concatenate([patterns, spread * rng.choice([-1.0, 1.0], size)])
    return values[np.isfinite(values)]


def _same(a: float, b: float) -> bool:
    return (a == b and math.copysign(1, a) == math.copysign(1, b)) or (
        math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("name", ["float32", "float16"])
def test_round_to_matches_numpy_casts(name: str) -> None:
    """A float64 -> float32/float16 cast is a single correct rounding: round_to must agree."""
    dt = DT[name]
    values = _random_float64(np.random.default_rng(1), dt, 20000)
    with np.errstate(over="ignore"):
        cast = values.astype(dt.np).astype(np.float64)
    for v, c in zip(values, cast, strict=True):
        assert _same(round_to(float(v), dt), float(c)), (v, c)


def test_round_to_matches_ml_dtypes_bfloat16() -> None:
    """ml_dtypes casts float32 -> bfloat16 with one rounding; compare on float32 values. (Its
    float64 -> bfloat16 cast goes through float32 and rounds twice: see the next test.)"""
    dt = DT["bfloat16"]
    values = _random_float64(np.random.default_rng(2), dt, 20000)
    with np.errstate(over="ignore"):
        values = values.astype(np.float32)
    values = values[np.isfinite(values)]
    cast = values.astype(ml_dtypes.bfloat16).astype(np.float64)
    for v, c in zip(values, cast, strict=True):
        assert _same(round_to(float(v), dt), float(c)), (v, c)


def test_round_to_rounds_once() -> None:
    """Values just past a midpoint of the target format that float64 (or float32) rounds onto it."""
    # float32: 1 + 2^-24 + 2^-80 rounds up to 1 + 2^-23; through float64 it would tie to 1
    ctx = mpmath.MPContext()
    ctx.prec = 100
    v = ctx.mpf(1) + ctx.ldexp(1, -24) + ctx.ldexp(1, -80)
    assert round_to(v, DT["float32"]) == 1 + 2.0**-23
    assert np.float32(float(v)) == 1.0
    # bfloat16: -79953921.63158014 is past the midpoint -79953920 of -79691776 and -80216064
    x = -79953921.63158014
    lo, hi = -79691776.0, -80216064.0
    assert abs(Fraction(x) - Fraction(hi)) < abs(Fraction(x) - Fraction(lo))
    assert round_to(x, DT["bfloat16"]) == hi


@pytest.mark.parametrize("name", list(DTYPES))
def test_round_to_boundaries(name: str) -> None:
    dt = DT[name]
    ctx = mpmath.MPContext()
    ctx.prec = 400
    sub = ctx.ldexp(1, dt.emin - dt.t + 1)  # smallest subnormal
    rmax = ctx.mpf(dt.rmax)
    half_ulp_max = ctx.ldexp(1, dt.emax - dt.t)
    tiny = ctx.ldexp(1, dt.emin - dt.t - 200)  # far below the smallest subnormal
    tiny_top = ctx.ldexp(1, dt.emax - dt.t - 200)  # far below ulp(rmax)
    for sign in (1, -1):
        def r(value: Any, s: int = sign) -> float:
            return round_to(s * value, dt)
        zero = math.copysign(0.0, sign)
        assert _same(r(sub), sign * dt.rmin_sub)
        assert _same(r(sub / 2), zero)  # tie with 0: to even
        assert _same(r(sub / 2 + tiny), sign * dt.rmin_sub)
        assert _same(r(sub / 2 - tiny), zero)
        assert _same(r(3 * sub / 2), sign * 2 * dt.rmin_sub)  # tie: to even (2 sub)
        assert _same(r(5 * sub / 2), sign * 2 * dt.rmin_sub)
        assert _same(r(ctx.mpf(dt.rmin) - sub / 2), sign * dt.rmin)  # largest subnormal tie
        assert _same(r(rmax), sign * dt.rmax)
        assert _same(r(rmax + half_ulp_max - tiny_top), sign * dt.rmax)
        assert _same(r(rmax + half_ulp_max), sign * INF)  # tie at the top: overflow
        assert _same(r(ctx.ldexp(1, 10**6)), sign * INF)
        assert _same(r(ctx.ldexp(1, -(10**6))), zero)
    assert math.isnan(round_to(mpmath.mpf("nan"), dt))
    assert round_to(mpmath.mpf("-inf"), dt) == -INF
    assert round_to(3, dt) == 3.0 and round_to(-0.0, dt) == 0.0
    assert math.copysign(1, round_to(-0.0, dt)) == -1
    assert round_to(2**200 + 1, DT["float64"]) == 2.0**200
    assert round_to(ctx.mpf(1) / 3, DT["float64"]) == 1 / 3


def test_numpy_float16_rows_longer_than_the_largest_float16():
    """A float16 row of 100,277 near-equal logits: the sum of exp(z - max) overflows float16
    (it exceeds 65504), so the careful target scales it by a power of two instead of returning
    -inf log-probabilities (which PyTorch's CPU float16 log_softmax does on such rows)."""
    from softmax_oracle.engine.search import make_env
    from softmax_oracle.spec.claims import get_claim
    from softmax_oracle.targets import builtin_numpy, load_target

    size = 100277
    z = np.random.default_rng(0).normal(0.0, 1e-3, size).astype(np.float16)
    n = np.zeros(size, dtype=np.float16)
    n[7] = 1
    assert np.all(np.isfinite(builtin_numpy.log_softmax(z)))
    assert abs(float(builtin_numpy.logsumexp(z)) - np.log(size)) < 0.01
    dt = get_dtype("float16")
    env, _ = make_env(load_target("numpy"), dt)
    ex = {"z": z[None], "n": n[None], "axis": -1}
    for cid in ("softmax.matches_reference", "log_softmax.matches_reference",
                "logsumexp.matches_reference", "cross_entropy.matches_reference",
                "cross_entropy_grad.any_targets"):
        assert get_claim(cid).check(env, ex) <= 1, cid
