"""The comparison of computed values with references and budgets: the verdicts, the messages
that say what failed, and the fast path on enclosures deciding as mpmath would."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from softmax_oracle.oracle.compare import RATIO_PRECISION, assess, index_labeler, informs
from softmax_oracle.oracle.dtypes import get_dtype, round_to
from softmax_oracle.oracle.reference import context, row_ref, working_format
from softmax_oracle.oracle.tolerance import Model
from softmax_oracle.spec import strategies as S

F32 = get_dtype("float32")
BF16 = get_dtype("bfloat16")
CTX = context(F32.prec)


def _one(computed: float, ref: float, tol: float = 1e-7, what: str = "softmax(z)") -> str:
    a = assess(np.array([computed]), [CTX.mpf(ref)], [CTX.mpf(tol)], F32,
               index_labeler((1,), -1), what)
    assert a.problem is not None and a.ratio == math.inf
    return a.problem


def test_a_nan_compared_with_a_nan_is_not_said_to_be_what_it_should_be():
    """The message read "out[0] = nan, but should be nan (not allowed)": false and unclear. In
    the shift and permutation claims the value compared with is another output of the target."""
    problem = _one(math.nan, math.nan, what="softmax(z + 1.0) vs softmax(z)")
    assert problem.startswith("softmax(z + 1.0) vs softmax(z): out[0] = nan, and the value it "
                              "is compared with is nan too (a NaN is never within a budget)")
    assert "should be nan" not in problem and "not allowed" not in problem


@pytest.mark.parametrize("computed, ref, says", [
    (math.nan, 0.5, "out[0] = nan, but should be 0.5 (NaN is never within a budget)"),
    (math.inf, 0.5, "out[0] = inf, but should be 0.5 (an infinity where a finite value is due"),
    (0.5, -math.inf, "out[0] = 0.5, but should be -inf (an infinite value must be matched "
                     "exactly)"),
])
def test_values_without_a_finite_error_say_why_they_fail(computed, ref, says):
    problem = _one(computed, ref)
    assert says in problem and "not allowed" not in problem
    assert problem.endswith("Mismatched elements: 1 / 1 (100%)")


def test_a_correctly_rounded_overflow_or_reference_passes_even_with_no_budget():
    big = CTX.mpf(F32.rmax) * 2  # rounds to inf in float32
    third = CTX.mpf(1) / 3
    computed = np.array([math.inf, round_to(third, F32)])
    a = assess(computed, [big, third], [CTX.zero, CTX.zero], F32, index_labeler((2,), -1))
    assert a.problem is None and a.ratio == 0 and a.bad == 0


def test_the_worst_element_is_named_with_its_error_and_budget():
    refs = [CTX.mpf(1), CTX.mpf(2), CTX.mpf(3)]
    computed = np.array([1.0, 2.0 + 2.0**-19, 3.0 + 2.0**-21])  # 2x and 0.5x the budget
    a = assess(computed, refs, [CTX.mpf(2.0**-20)] * 3, F32, index_labeler((3,), -1), "f(z)")
    assert a.bad == 1 and a.ratio == 2.0
    assert a.problem is not None
    assert a.problem.startswith("f(z): out[1] = 2.000001907348633, but should be 2.0 (|error| "
                                "1.9e-06, 9.5e-07 relative; allowed 9.5e-07: 2x the budget)")
    assert "Mismatched elements: 1 / 3 (33.3%)" in a.problem


def test_index_labeler_maps_positions_along_an_inner_axis_back_to_the_array():
    label = index_labeler((2, 3), axis=0)  # rows along axis 0: 3 rows of 2
    assert [label(p) for p in range(6)] == ["out[0, 0]", "out[1, 0]", "out[0, 1]", "out[1, 1]",
                                            "out[0, 2]", "out[1, 2]"]
    assert index_labeler((), -1)(0) == "out"


@pytest.mark.skipif(working_format(F32.prec) is None,
                    reason="no calibrated float64 exp/log here: no fast path to compare")
@given(S.logits("float32", max_size=16, batches=False), st.integers(-40, 40),
       st.integers(0, 15))
def test_the_fast_path_decides_as_mpmath_does(ex, ulps, at):
    """Enclosures decide most elements; the verdict, the count of bad elements and (within
    2^-8) the ratio must be those of the element-by-element mpmath comparison."""
    z = ex["z"]
    model = Model.for_target(F32, "stable")
    r = row_ref(z, F32.prec)
    refs, tols = r.g, model.softmax(r)
    computed = np.array([round_to(g, F32) for g in refs])
    j = at % len(computed)
    if np.isfinite(z[j]):  # move one finite entry by some float32 ulps
        moved = np.float32(computed[j])
        for _ in range(abs(ulps)):
            moved = np.nextafter(moved, np.float32(np.inf if ulps > 0 else -np.inf))
        computed[j] = float(moved)
    label = index_labeler(computed.shape, -1)
    fast = assess(computed, refs, tols, F32, label)
    slow = assess(computed, list(refs), list(tols), F32, label)
    assert (fast.bad, fast.problem is None) == (slow.bad, slow.problem is None)
    assert fast.ratio == pytest.approx(slow.ratio, rel=RATIO_PRECISION, abs=RATIO_PRECISION)


# =============================================================================== vacuity


def test_a_budget_at_least_the_quantity_is_vacuous_and_zero_or_infinite_quantities_neither():
    one, two = CTX.mpf(1), CTX.mpf(2)
    assert informs([one], [one]) is False  # |error| <= |q| passes 0
    assert informs([one], [one / 2]) is True
    assert informs([-two], [one]) is True  # the magnitude of the quantity
    assert informs([CTX.zero, CTX.mpf("-inf")], [one, one]) is None
    assert informs([CTX.zero, one], [one, one]) is False
    assert informs([one, two], [two, one]) is True  # one informative budget is enough


@pytest.mark.skipif(working_format(BF16.prec) is None,
                    reason="no calibrated float64 exp/log here: no fast path to compare")
@given(S.logits("bfloat16", max_size=128, batches=False), st.sampled_from(["stable", "accurate"]))
def test_informs_on_enclosures_decides_as_mpmath_does(ex, level):
    """bfloat16 rows up to 128 entries: budgets cross the quantities they bound near n = 60."""
    r = row_ref(ex["z"], BF16.prec)
    model = Model.for_target(BF16, level)
    for refs, tols in ((r.g, model.softmax(r)), (r.l, model.log_softmax(r))):
        assert informs(refs, tols) == informs(list(refs), list(tols))
