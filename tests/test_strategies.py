"""The adversary: valid inputs, regimes that really happen, and shifts that really are exact."""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, seed, settings
from hypothesis import strategies as st

from softmax_oracle.oracle.dtypes import DType, get_dtype
from softmax_oracle.spec import strategies as S

DTYPES = ("float64", "float32", "float16", "bfloat16")
EXAMPLES = 300  # per strategy and dtype
# Every regime shows up at least this often over all dtypes, and at least once per dtype. Hypothesis
# follows each new example with a few span-mutated copies of it, so counts come in clumps: 300
# examples make only about 50 independent draws of the family.
MIN_SHARE = 0.05

Example = dict[str, Any]


# --------------------------------------------------------------------------------------------------
# Collecting examples deterministically
# --------------------------------------------------------------------------------------------------


def collect(strategy: st.SearchStrategy[Any], count: int, seed_value: int) -> list[Any]:
    """Draw ``count`` examples through @given, reproducibly."""
    found: list[Any] = []

    @seed(seed_value)
    @settings(max_examples=count, database=None, phases=[Phase.generate], deadline=None)
    @given(strategy)
    def run(example: Any) -> None:
        found.append(example)

    run()
    return found


_FACTORIES: dict[str, Callable[[DType], st.SearchStrategy[Example]]] = {
    "logits": S.logits,
    "targets": S.logits_and_targets,
    "cotangent": S.logits_and_cotangent,
    "dense": S.dense_layers,
}


@functools.cache
def samples(kind: str, name: str) -> tuple[Example, ...]:
    seed_value = 1000 * list(_FACTORIES).index(kind) + DTYPES.index(name)
    return tuple(collect(_FACTORIES[kind](get_dtype(name)), EXAMPLES, seed_value))


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def rows_of(a: np.ndarray, axis: int) -> np.ndarray:
    """float64 copy with the softmax axis last, flattened to (rows, n)."""
    moved = np.moveaxis(np.asarray(a).astype(np.float64), axis, -1)
    return moved.reshape(-1, moved.shape[-1])


def exp_in(dtype: DType, values: np.ndarray) -> np.ndarray:
    """exp evaluated in the format itself, as a naive implementation would."""
    with np.errstate(over="ignore", under="ignore"):
        return np.exp(np.asarray(values).astype(dtype.np)).astype(np.float64)


def log_sum_exp_shifted(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows - max, log sum exp(rows - max)) in float64, for rows with a finite entry."""
    shifted = rows - np.max(rows, axis=-1, keepdims=True)
    with np.errstate(under="ignore"):
        return shifted, np.log(np.sum(np.exp(shifted), axis=-1))


def lse(rows: np.ndarray) -> np.ndarray:
    _, log_sum = log_sum_exp_shifted(rows)
    return np.max(rows, axis=-1) + log_sum


def share(examples: Iterable[Example], tag: str) -> float:
    examples = list(examples)
    return sum(tag in e["regime"] for e in examples) / len(examples)


def check_finite_or_masked(z: np.ndarray) -> None:
    values = z.astype(np.float64)
    assert not np.isnan(values).any()
    assert not (values == np.inf).any()


# --------------------------------------------------------------------------------------------------
# logits
# --------------------------------------------------------------------------------------------------


def check_logits(example: Example, dtype: DType, max_size: int) -> None:
    z, axis, regime = example["z"], example["axis"], example["regime"]
    assert isinstance(z, np.ndarray) and z.dtype == dtype.np
    assert 1 <= z.ndim <= 3
    assert isinstance(axis, int) and -z.ndim <= axis < z.ndim
    n = z.shape[axis]
    assert 1 <= n <= max_size
    assert 1 <= z.size <= max(4 * max_size, 64)
    check_finite_or_masked(z)
    assert isinstance(regime, tuple) and all(isinstance(t, str) for t in regime)
    assert regime[0] in S.LOGIT_FAMILIES
    rows = rows_of(z, axis)
    if "full_mask" not in regime:
        assert np.isfinite(rows).any(axis=-1).all(), "a row without a finite entry"
        assert ("mask" in regime) == bool(np.isneginf(rows).any())
    assert ("len1" in regime) == (n == 1)
    assert ("long" in regime) == (n > 256)
    assert ("batch" in regime) == (z.ndim > 1)
    assert ("inner_axis" in regime) == (axis % z.ndim != z.ndim - 1)


def check_regime_properties(example: Example, dtype: DType) -> None:
    """Each tag keeps the promise its name makes."""
    regime = example["regime"]
    rows = rows_of(example["z"], example["axis"])
    rows = rows[np.isfinite(rows).any(axis=-1)]
    finite = np.isfinite(rows)
    e = exp_in(dtype, rows)
    if "overflow" in regime:  # a naive exp overflows in every row
        assert (e == np.inf).any(axis=-1).all()
    if "underflow" in regime:  # every exp is 0
        assert (e == 0).all()
    if "subnormal" in regime:  # every exp of a finite entry is subnormal
        assert ((e > 0) & (e < dtype.rmin))[finite].all()
    if "tiny" in regime:
        assert (np.abs(rows[finite]) <= dtype.rmin * 2.0 ** (dtype.t / 2)).all()
    if "lse_zero" in regime:
        y = lse(rows)
        p = np.exp(rows - y[:, None])
        slack = np.array(
            [
                np.sum(pi[np.isfinite(ri)] * [dtype.ulp(x) for x in ri[np.isfinite(ri)]])
                for pi, ri in zip(p, rows, strict=True)
            ]
        )
        assert (np.abs(y) <= max(1e-2, 2 * math.sqrt(dtype.u)) + 2 * slack).all(), y
    if regime[0] == "ties" and "dominant" not in regime:
        assert all(len(set(r[np.isfinite(r)])) == 1 for r in rows)
    if regime[0] == "dominant" and "ties" not in regime and rows.shape[1] > 1:
        gap = -math.log(dtype.u)
        for r in rows:
            values = np.sort(r[np.isfinite(r)])
            if len(values) > 1:
                assert values[-1] - values[-2] >= 0.5 * gap, values


@pytest.mark.parametrize("name", DTYPES)
def test_logits_are_valid_inputs(name: str) -> None:
    dtype = get_dtype(name)
    for example in samples("logits", name):
        check_logits(example, dtype, 64)
        check_regime_properties(example, dtype)


@pytest.mark.parametrize("name", DTYPES)
def test_each_regime_keeps_its_promise_when_asked_for(name: str) -> None:
    dtype = get_dtype(name)
    for family in ("overflow", "underflow", "subnormal", "dominant", "lse_zero", "tiny"):
        examples = collect(S.logits(dtype, regimes=[family]), 40, 7)
        assert all(e["regime"][0] == family for e in examples)
        for example in examples:
            check_logits(example, dtype, 64)
            check_regime_properties(example, dtype)


def test_logits_regime_frequencies() -> None:
    pooled = [e for name in DTYPES for e in samples("logits", name)]
    tags = (*S.LOGIT_FAMILIES, "mask", "len1", "batch", "inner_axis")
    shares = {t: share(pooled, t) for t in tags}
    assert min(shares.values()) >= MIN_SHARE, shares
    for name in DTYPES:
        per_dtype = {t: share(samples("logits", name), t) for t in tags}
        assert min(per_dtype.values()) > 0, (name, per_dtype)


def test_logits_regimes_combine() -> None:
    pooled = [e for name in DTYPES for e in samples("logits", name)]
    combined = Counter(tuple(t for t in e["regime"] if t in S.LOGIT_FAMILIES) for e in pooled)
    assert sum(v for k, v in combined.items() if len(k) > 1) >= 0.2 * len(pooled)
    masked_families = {e["regime"][0] for e in pooled if "mask" in e["regime"]}
    assert masked_families == set(S.LOGIT_FAMILIES)


@pytest.mark.parametrize("name", DTYPES)
def test_full_masks_and_one_dimensional_logits(name: str) -> None:
    dtype = get_dtype(name)
    full = collect(S.logits(dtype, full_masks=True), 60, 11)
    assert share(full, "full_mask") >= 0.2
    for example in full:
        check_logits(example, dtype, 64)
        rows = rows_of(example["z"], example["axis"])
        assert np.isneginf(rows).all(axis=-1).any() == ("full_mask" in example["regime"])
    flat = collect(S.logits(dtype, batches=False, masks=False), 60, 12)
    assert all(e["z"].ndim == 1 and e["axis"] in (-1, 0) for e in flat)
    assert not any(np.isneginf(e["z"].astype(np.float64)).any() for e in flat)


def test_long_rows_stay_rare_and_small_in_total() -> None:
    dtype = get_dtype("float32")
    examples = collect(S.logits(dtype, max_size=4096), 200, 13)
    for example in examples:
        check_logits(example, dtype, 4096)
    assert 0 < share(examples, "long") <= 0.3


def test_min_size_makes_every_row_that_long() -> None:
    dtype = get_dtype("float32")
    for factory in (S.logits, S.logits_and_targets, S.logits_and_cotangent):
        for low, high in ((300, 1024), (17, 40), (5, 16)):
            examples = collect(factory(dtype, min_size=low, max_size=high), 40, 14)
            lengths = {e["z"].shape[e["axis"]] for e in examples}
            assert min(lengths) >= low and max(lengths) <= high, (factory, lengths)
            assert len(lengths) > 1
    # without min_size the draws are those of before (the size classes start at 1)
    assert collect(S.logits(dtype), 30, 15) and all(
        np.array_equal(a["z"], b["z"], equal_nan=True)
        for a, b in zip(collect(S.logits(dtype), 30, 15), collect(S.logits(dtype, min_size=1), 30,
                                                                   15), strict=True))
    with pytest.raises(ValueError, match="min_size"):
        S.logits(dtype, min_size=20, max_size=16)
    with pytest.raises(ValueError, match="min_size"):
        S.logits(dtype, min_size=0)
    with pytest.raises(ValueError, match="vocabulary-sized rows start"):
        S.logits(dtype, min_size=40000, max_size=50000, vocab_size=262144)


def test_float16_vocabulary_rows_sum_past_the_largest_float16() -> None:
    """Half the float16 rows of 69,600 entries or more have exponentials that sum past 65,504,
    where a sum in float16 is +inf; in a batch of two the second row's sum is sometimes exactly
    0 in float16 (a batch mixing a scaled sum with a zero one). No other format can get there."""
    dtype = get_dtype("float16")
    drawn = collect(S.logits_and_targets(dtype, min_size=69601, max_size=131072), 30, 16)
    examples = [e for e in drawn if "sum_overflow" in e["regime"]]
    assert 0.2 <= len(examples) / len(drawn) <= 0.8
    zero_rows = 0
    for example in examples:
        rows = rows_of(example["z"], example["axis"])
        assert rows.shape[1] >= 69600 and np.isfinite(rows).all()
        shifted, _ = log_sum_exp_shifted(rows)
        sums = np.sum(np.exp(shifted), axis=-1) - 1  # the maximal term left out
        assert sums[0] > 1.0625 * dtype.rmax
        assert all(s > 1.0625 * dtype.rmax or np.all(exp_in(dtype, r)[r < 0] == 0)
                   for s, r in zip(sums, shifted, strict=True))
        zero_rows += bool(sums[-1] < dtype.rmax)
        assert {"vocab", "long"} <= set(example["regime"]) and "mask" not in example["regime"]
    assert zero_rows >= 1
    for name in ("bfloat16", "float32"):
        assert not any("sum_overflow" in e["regime"] for e in collect(
            S.logits(get_dtype(name), min_size=69601, max_size=131072), 10, 17))


def test_softmax_in_unit_interval_meets_vocabulary_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under the thorough profile the unit-interval claim draws vocabulary-sized rows too, so that
    a float16 softmax whose scaled sums give probabilities outside [0, 1] meets it."""
    from softmax_oracle.engine.profiles import PROFILES
    from softmax_oracle.engine.search import _inputs
    from softmax_oracle.spec.claims import get_claim

    asked: list[int] = []
    real = S.logits

    def spy(*args: Any, **kw: Any) -> st.SearchStrategy[Example]:
        asked.append(kw.get("vocab_size", 0))
        return real(*args, **kw)

    monkeypatch.setattr(S, "logits", spy)
    get_claim("softmax.in_unit_interval").strategy(get_dtype("float16"),
                                                   _inputs(PROFILES["thorough"]))
    assert asked == [262144]


def test_simplest_logits_are_simple() -> None:
    dtype = get_dtype("float32")
    quiet = settings(database=None, max_examples=200, derandomize=True)
    simplest = find(S.logits(dtype), lambda e: True, settings=quiet)
    assert simplest["z"].shape == (1,) and simplest["axis"] == -1
    assert simplest["regime"] == ("normal", "len1")
    overflow = find(S.logits(dtype), lambda e: "overflow" in e["regime"], settings=quiet)
    assert overflow["z"].shape == (1,) and overflow["axis"] == -1


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="regimes"):
        S.logits("float32", regimes=["gaussian"])
    with pytest.raises(ValueError, match="max_size"):
        S.logits("float32", max_size=0)
    with pytest.raises(ValueError, match="normalised"):
        S.logits_and_targets("float32", kind="unnormalised", normalised=True)
    with pytest.raises(ValueError, match="kind"):
        S.logits_and_targets("float32", kind="hard")


# --------------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------------


def check_targets(
    z: np.ndarray, axis: int, n: np.ndarray, regime: tuple[str, ...], dtype: DType
) -> None:
    assert n.shape == z.shape and n.dtype == dtype.np
    zr, nr = rows_of(z, axis), rows_of(n, axis)
    assert np.isfinite(nr).all() and (nr >= 0).all()
    finite = np.isfinite(zr)
    assert (nr[~finite] == 0).all(), "target mass on a masked entry"
    assert np.isfinite(nr[finite] * zr[finite]).all()
    zmax = np.max(np.where(finite, np.abs(zr), 0.0), axis=-1)
    sums = nr.sum(axis=-1)
    assert (sums * zmax < dtype.rmax / 4).all()
    kind = next(t.split(":", 1)[1] for t in regime if t.startswith("target:"))
    length = zr.shape[1]
    if kind == "unnormalised":
        assert (sums != 1).all()
    else:
        assert (np.abs(sums - 1) <= (length + 80) * dtype.u).all(), sums
    if kind == "one_hot":
        assert ((nr == 0) | (nr == 1)).all() and (nr.sum(axis=-1) == 1).all()
        if "target_at:max" in regime:
            hot = np.argmax(nr, axis=-1)
            assert (zr[np.arange(len(zr)), hot] == zr.max(axis=-1)).all()
    if kind == "zero_where_underflow":
        shifted, log_sum = log_sum_exp_shifted(zr)
        log_p = shifted - log_sum[:, None]
        assert (nr[log_p < math.log(dtype.rmin_sub) - math.log(2)] == 0).all()


@pytest.mark.parametrize("name", DTYPES)
def test_targets_are_valid(name: str) -> None:
    dtype = get_dtype(name)
    for example in samples("targets", name):
        check_logits(
            {k: example[k] for k in ("z", "axis", "regime")}
            | {"regime": tuple(t for t in example["regime"] if not t.startswith("target"))},
            dtype,
            64,
        )
        check_targets(example["z"], example["axis"], example["n"], example["regime"], dtype)


def test_target_kind_frequencies() -> None:
    pooled = [e for name in DTYPES for e in samples("targets", name)]
    shares = {k: share(pooled, f"target:{k}") for k in S.TARGET_KINDS}
    assert min(shares.values()) >= MIN_SHARE, shares
    at = {w: share(pooled, f"target_at:{w}") for w in ("max", "min", "underflow", "random")}
    assert min(at.values()) >= 0.02, at


@pytest.mark.parametrize("normalised", [True, False])
def test_targets_can_be_restricted(normalised: bool) -> None:
    dtype = get_dtype("float16")
    examples = collect(S.logits_and_targets(dtype, normalised=normalised), 60, 21)
    kinds = {t for e in examples for t in e["regime"] if t.startswith("target:")}
    assert (kinds == {"target:unnormalised"}) != normalised
    for example in examples:
        check_targets(example["z"], example["axis"], example["n"], example["regime"], dtype)
    only = collect(S.logits_and_targets(dtype, kind="near_softmax"), 20, 22)
    assert all("target:near_softmax" in e["regime"] for e in only)


# --------------------------------------------------------------------------------------------------
# Cotangents
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DTYPES)
def test_cotangents_are_valid(name: str) -> None:
    dtype = get_dtype(name)
    for example in samples("cotangent", name):
        z, v, axis, regime = example["z"], example["v"], example["axis"], example["regime"]
        assert v.shape == z.shape and v.dtype == dtype.np
        values = v.astype(np.float64)
        assert np.isfinite(values).all()
        assert np.sum(np.abs(values)) < dtype.rmax / 8
        family = next(t.split(":", 1)[1] for t in regime if t.startswith("v:"))
        if family == "constant":
            assert len(np.unique(values)) == 1
        if family == "one_hot":
            assert ((rows_of(v, axis) != 0).sum(axis=-1) <= 1).all()
        if family == "subnormal":
            assert (np.abs(values) < dtype.rmin).all()


def test_cotangent_family_frequencies() -> None:
    pooled = [e for name in DTYPES for e in samples("cotangent", name)]
    shares = {f: share(pooled, f"v:{f}") for f in S.COTANGENT_FAMILIES}
    assert min(shares.values()) >= MIN_SHARE, shares


# --------------------------------------------------------------------------------------------------
# Dense layers
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DTYPES)
def test_dense_layers_are_valid(name: str) -> None:
    dtype = get_dtype(name)
    for example in samples("dense", name):
        w, b, x, n = example["W"], example["b"], example["x"], example["n"]
        k, m = w.shape
        batch = x.shape[0]
        assert 1 <= k <= 16 and 1 <= m <= 16 and 1 <= batch <= 4
        assert b.shape == (k,) and x.shape == (batch, m) and n.shape == (batch, k)
        assert all(a.dtype == dtype.np for a in (w, b, x, n))
        w64, b64, x64 = (a.astype(np.float64) for a in (w, b, x))
        assert all(np.isfinite(a).all() for a in (w64, b64, x64))
        bound = np.abs(x64) @ np.abs(w64).T + np.abs(b64)
        assert (bound <= dtype.rmax / 8 * (1 + 4 * dtype.u)).all()
        z = x64 @ w64.T + b64
        assert np.isfinite(z.astype(dtype.np).astype(np.float64)).all()
        if "large_logits" in example["regime"]:
            assert (exp_in(dtype, z) == np.inf).any()
        check_targets(z.astype(dtype.np), -1, n, example["regime"], dtype)


def test_dense_layer_frequencies() -> None:
    pooled = [e for name in DTYPES for e in samples("dense", name)]
    kinds = tuple(f"target:{k}" for k in S.TARGET_KINDS)
    tags = ("mixed_scale", "large_logits", "square", "batch", *kinds)
    shares = {t: share(pooled, t) for t in tags}
    assert min(shares.values()) >= MIN_SHARE, shares
    assert any(e["W"].shape[0] != e["W"].shape[1] for e in pooled)


# --------------------------------------------------------------------------------------------------
# Exact shifts and permutations
# --------------------------------------------------------------------------------------------------


def exact_in(value: Fraction, dtype: DType) -> bool:
    """Whether a rational is a finite number of the format (checked with fractions only)."""
    try:
        nearest = float(value)  # correctly rounded
    except OverflowError:
        return False
    if Fraction(nearest) != value or abs(nearest) > dtype.rmax:
        return False
    return bool(np.array(nearest).astype(dtype.np).astype(np.float64) == nearest)


def shift_is_exact(z: np.ndarray, c: float, dtype: DType) -> bool:
    values = z.astype(np.float64).ravel()
    finite = np.unique(values[np.isfinite(values)])
    return exact_in(Fraction(c), dtype) and all(
        exact_in(Fraction(float(x)) + Fraction(c), dtype) for x in finite
    )


@pytest.mark.parametrize("name", DTYPES)
def test_representable_shifts_are_exact(name: str) -> None:
    dtype = get_dtype(name)
    outcomes: Counter[str] = Counter()

    @seed(31 + DTYPES.index(name))
    @settings(
        max_examples=150, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(st.data())
    def run(data: st.DataObject) -> None:
        z = data.draw(S.logits(dtype, max_size=16))["z"]
        c = data.draw(S.representable_shift(dtype, z))
        assert type(c) is float
        assert shift_is_exact(z, c, dtype)
        with np.errstate(over="raise"):
            shifted = (z + z.dtype.type(c)).astype(np.float64)
        finite = np.isfinite(z.astype(np.float64))
        exact = [float(Fraction(float(x)) + Fraction(c)) for x in z.astype(np.float64)[finite]]
        assert shifted[finite].tolist() == exact
        magnitude = float(np.max(np.abs(z.astype(np.float64)[finite]), initial=0.0))
        outcomes["zero" if c == 0 else "large" if abs(c) >= max(magnitude, 1.0) else "small"] += 1

    run()
    assert outcomes["small"] + outcomes["large"] >= 0.3 * sum(outcomes.values()), outcomes
    assert outcomes["large"] > 0, outcomes


def test_shifts_of_ties_can_be_large_and_mixed_rows_cannot() -> None:
    dtype = get_dtype("float32")
    ties = np.full(5, 3.0, dtype=np.float32)
    shifts = collect(S.representable_shift(dtype, ties), 100, 41)
    assert max(abs(c) for c in shifts) > 1e3
    assert all(shift_is_exact(ties, c, dtype) for c in shifts)
    mixed = np.array([1.0, 1e-20, -np.inf], dtype=np.float32)
    assert set(collect(S.representable_shift(dtype, mixed), 50, 42)) == {0.0}


@pytest.mark.parametrize(
    ("name", "z", "c", "exact"),
    [
        ("float32", [1.0], 2.0**-23, True),
        ("float32", [1.0], 2.0**-24, False),
        ("float32", [1.0], 0.1, False),  # c itself is not a float32
        ("float64", [1e16], 1.0, False),
        ("float64", [1e16], 2.0, True),
        ("float16", [60000.0], 8192.0, False),  # overflows
        ("float16", [-np.inf, 3.0], -3.0, True),
        ("bfloat16", [1.0, 256.0], 1.0, False),  # 257 needs 9 bits
        ("float64", [5e-324, 1.0], 1.0, False),
    ],
)
def test_is_exact_shift_known_cases(name: str, z: list[float], c: float, exact: bool) -> None:
    dtype = get_dtype(name)
    array = np.array(z).astype(dtype.np)
    assert S.is_exact_shift(array, c, dtype) is exact
    assert shift_is_exact(array, c, dtype) is exact


@settings(max_examples=300, database=None, derandomize=True)
@given(
    st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=4),
    st.floats(width=32, allow_nan=False, allow_infinity=False),
)
def test_is_exact_shift_agrees_with_fractions(z: list[float], c: float) -> None:
    dtype = get_dtype("float32")
    array = np.array(z, dtype=np.float32)
    if (array == np.inf).any():
        array[array == np.inf] = 0
    assert S.is_exact_shift(array, c, dtype) == shift_is_exact(array, c, dtype)


def test_permutations() -> None:
    for n in (1, 2, 7):
        for p in collect(S.permutations(n), 20, 51):
            assert np.issubdtype(p.dtype, np.integer) and sorted(p.tolist()) == list(range(n))
