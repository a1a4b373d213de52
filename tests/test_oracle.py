"""The oracle checks itself: closed forms and exact rounding (recomputation at doubled precision,
for every reference family: tests/test_reference_selfcheck.py)."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from softmax_oracle.oracle.dtypes import get_dtype, round_to
from softmax_oracle.oracle.exact import context
from softmax_oracle.oracle.reference import dense_ref, row_ref

F64 = get_dtype("float64")


def _close(a, b, bits):
    return abs(a - b) <= abs(b) * mpmath.mpf(2) ** -bits + mpmath.mpf(2) ** -1100


@pytest.mark.parametrize("n", [1, 2, 3, 7, 1000])
@pytest.mark.parametrize("c", [0.0, -1e300, 1e300, 12.5, -745.0])
def test_ties_closed_form(n, c):
    """softmax of equal logits is exactly 1/n; LSE = c + log n."""
    r = row_ref(np.full(n, c), F64.prec)
    ctx = r.ctx
    for gj in r.g:
        assert _close(gj, ctx.mpf(1) / n, F64.prec - 4)
    assert abs(r.y - (ctx.mpf(c) + ctx.log(n))) <= abs(ctx.mpf(c) + ctx.log(n)) * 2.0**-150 + 1e-300


def test_lse_near_zero_example_from_the_issue():
    """LSE([0, -40]) = 4.248354255291589e-18 (the plain shifted formula returns 0)."""
    r = row_ref(np.array([0.0, -40.0]), F64.prec)
    assert float(r.y) == 4.248354255291589e-18
    assert round_to(r.y, F64) == 4.248354255291589e-18


def test_huge_offsets_keep_relative_accuracy():
    """[1e300, 1e300]: a + L would lose L; l_j and g_j must not."""
    r = row_ref(np.array([1e300, 1e300]), F64.prec)
    assert float(r.g[0]) == 0.5 and float(r.l[0]) == -math.log(2)


def test_masked_rows():
    r = row_ref(np.array([-np.inf, -np.inf]), F64.prec)
    assert r.all_masked and r.y == -mpmath.inf
    r = row_ref(np.array([-np.inf, 0.0, 0.0]), F64.prec)
    assert r.g[0] == 0 and float(r.g[1]) == 0.5


def test_context_is_private():
    before = mpmath.mp.prec
    row_ref(np.array([1.0, 2.0]), 500)
    assert mpmath.mp.prec == before
    assert context(500).prec == 500


@given(st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_round_to_is_a_single_correct_rounding(x):
    """mpf -> float32 directly must equal numpy's (single) float64 -> float32 rounding."""
    ctx = context(200)
    with np.errstate(over="ignore"):
        expected = float(np.float32(x))
    assert round_to(ctx.mpf(x), get_dtype("float32")) == expected


def test_round_to_avoids_double_rounding():
    """A value just above a float32 midpoint, which float64 would round onto the midpoint."""
    ctx = context(200)
    one = ctx.mpf(1)
    mid = one + ctx.ldexp(1, -24)  # the midpoint between 1 and 1 + 2**-23
    v = mid + ctx.ldexp(1, -70)  # above it: must round up in float32
    assert float(np.float32(float(v))) == 1.0  # double rounding via float64 gets it wrong
    assert round_to(v, get_dtype("float32")) == 1.0 + 2.0**-23


def test_dense_reference_closed_form():
    """The worked example of the design notes: dx = W^T (a - n), db = a - n."""
    W = np.array([[0.5, -1.0], [2.0, 0.25], [-1.0, 1.0]])
    b = np.array([0.1, -0.2, 0.3])
    x = np.array([[1.5, -0.5]])
    n = np.array([[0.0, 0.0, 1.0]])
    ref = dense_ref(W, b, x, n, 200)
    assert [round(float(v), 5) for v in ref.dx[0]] == [2.65858, -1.00251]
    assert [round(float(v), 5) for v in ref.db] == [0.20792, 0.78223, -0.99015]
