"""The tolerance model: its budgets hold for a correct max-shifted algorithm, catch a merely
half-precise one, demand exact zeros where the answer is exact, and its fast enclosures contain
the mpmath budgets they stand for."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given

from softmax_oracle.oracle.dtypes import get_dtype
from softmax_oracle.oracle.reference import row_ref, row_refs, working_format
from softmax_oracle.oracle.tolerance import Model
from softmax_oracle.spec import strategies as S

F32 = get_dtype("float32")
F16 = get_dtype("float16")


def _shifted_softmax(z: np.ndarray, np_dtype: type) -> np.ndarray:
    """Blanchard, Higham & Higham's Alg. 4.1 in the given precision."""
    z = z.astype(np_dtype)
    with np.errstate(all="ignore"):
        e = np.exp(z - np.max(z))
        return (e / np.sum(e)).astype(np.float64)


def _over_budget(computed: np.ndarray, row: np.ndarray, model: Model) -> list[int]:
    r = row_ref(row, model.dtype.prec)
    tol = model.softmax(r)
    ctx = r.ctx
    return [j for j, c in enumerate(computed)
            if abs(ctx.mpf(float(c)) - r.g[j]) > tol[j]]


@given(S.logits("float32", max_size=32, batches=False))
def test_a_max_shifted_softmax_in_float32_is_within_its_budgets(ex):
    z = ex["z"]
    model = Model.for_target(F32, "stable")
    assert _over_budget(_shifted_softmax(z, np.float32), z, model) == []


def test_the_budgets_catch_a_softmax_computed_in_half_precision():
    """float32 budgets are a few dozen float32 ulps here: float16 arithmetic is 8000x coarser."""
    z = np.array([0.1, 0.7, -0.3, 1.9], dtype=np.float32)
    model = Model.for_target(F32, "stable")
    assert _over_budget(_shifted_softmax(z, np.float32), z, model) == []
    assert _over_budget(_shifted_softmax(z, np.float16), z, model) != []
    r = row_ref(z, F32.prec)
    relative = [float(t / g) for t, g in zip(model.softmax(r), r.g)]
    assert all(F32.u < x < 100 * F32.u for x in relative)


def test_masked_entries_and_empty_rows_allow_no_error():
    z = np.array([0.5, -np.inf, 2.0], dtype=np.float32)
    model = Model.for_target(F32, "accurate")
    r = row_ref(z, F32.prec)
    assert model.softmax(r)[1] == 0 and model.log_softmax(r)[1] == 0
    assert model.softmax(r)[0] > 0 and model.log_softmax(r)[0] > 0
    assert model.logsumexp(row_ref(np.array([-np.inf, -np.inf]), F32.prec)) == 0


def test_the_accurate_level_only_ever_tightens_and_a_flushing_backend_gets_a_larger_floor():
    z = np.array([1000.0, 999.0, -1000.0], dtype=np.float32)
    r = row_ref(z, F32.prec)
    stable, accurate = Model.for_target(F32, "stable"), Model.for_target(F32, "accurate")
    assert accurate.logsumexp(r) <= stable.logsumexp(r)
    assert all(a <= s for a, s in zip(accurate.log_softmax(r), stable.log_softmax(r)))
    flushing = Model.for_target(F32, "stable", flushes=True)
    assert flushing.phi0 == F32.rmin > stable.phi0 == F32.rmin_sub
    assert flushing.softmax(r)[2] > stable.softmax(r)[2]  # exp(-2000) underflows either way


def test_a_wider_compute_dtype_shrinks_the_budget_of_one_fused_kernel_only():
    z = np.array([0.25, 3.0, -2.0], dtype=np.float16)
    plain = Model.for_target(F16, "stable")
    wide = Model.for_target(F16, "stable", compute=F32)
    assert wide.uc == F32.u and plain.uc == F16.u
    r = row_ref(z, F16.prec)
    assert all(w < p for w, p in zip(wide.softmax(r), plain.softmax(r)))
    # the final rounding to float16 stays: at least u |g_j|
    assert all(w >= F16.u * g for w, g in zip(wide.softmax(r), r.g))


@pytest.mark.skipif(working_format(F32.prec) is None,
                    reason="no calibrated float64 exp/log here: no fast enclosures to check")
@given(S.logits("float32", max_size=24))
def test_the_fast_enclosures_contain_the_exact_budgets(ex):
    """For float32 the enclosures are float64 numbers: they convert to mpf exactly."""
    z, axis = ex["z"], ex["axis"]
    model = Model.for_target(F32, "accurate")
    for r in row_refs(z, axis, F32.prec):
        for budgets in (model.softmax(r), model.log_softmax(r), model.logsumexp(r, True)):
            bounds = budgets.bounds
            assert bounds is not None
            mid, rad = bounds[0], bounds[1]
            for j, exact in enumerate(budgets):
                if not (math.isfinite(mid[j]) and math.isfinite(rad[j])):
                    continue  # an infinite or NaN radius decides nothing (it goes to mpmath)
                assert abs(exact - r.ctx.mpf(float(mid[j]))) <= r.ctx.mpf(float(rad[j])), j
