"""Each claim judges what it states, and says so: the order of softmax with ties, the seed's
section 2.3 refuted for each of its errors alone, the masked-logits claim on inputs that hold a
mask, and what a budget of 0 means in a message."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings

from softmax_oracle import Refuted, check
from softmax_oracle.engine.search import make_env
from softmax_oracle.oracle.compare import assess, index_labeler
from softmax_oracle.oracle.dtypes import get_dtype
from softmax_oracle.oracle.reference import context
from softmax_oracle.spec.claims import get_claim
from softmax_oracle.spec.inputs import Inputs, with_mask
from softmax_oracle.targets import builtin_numpy, load_target
from softmax_oracle.zoo._masks_and_targets import _softmax_mask_minus_1e4

F64 = get_dtype("float64")

# ================================================================== softmax.order_preserving


class _TieBreaking:
    """softmax(z), but for z = [1, 0, 1] it gives [0.5, 0.3, 0.2]: z_2 = z_0 with a_2 < a_0, and
    z_2 > z_1 with a_2 < a_1, next to a tie."""

    @staticmethod
    def softmax(z, axis=-1):
        z = np.asarray(z)
        if z.shape == (3,) and list(z) == [1.0, 0.0, 1.0]:
            return np.array([0.5, 0.3, 0.2], dtype=z.dtype)
        return builtin_numpy.softmax(z, axis)


class _FavoursFirstMaximum:
    """A sharpened softmax that adds 1% to the first of the largest logits and renormalises: the
    order of distinct logits survives, but tied maxima get unequal probabilities."""

    @staticmethod
    def softmax(z, axis=-1):
        a = np.moveaxis(builtin_numpy.softmax(z, axis), axis, -1).copy()
        k = np.argmax(np.moveaxis(np.asarray(z), axis, -1), axis=-1)[..., None]
        np.put_along_axis(a, k, np.take_along_axis(a, k, axis=-1) + 0.01, axis=-1)
        return np.moveaxis(a / a.sum(axis=-1, keepdims=True), -1, axis)


def _order(target, z, dtype=F64):
    env, _ = make_env(load_target(target), dtype)
    return get_claim("softmax.order_preserving").check(env, {"z": np.asarray(z), "axis": -1})


def test_unequal_probabilities_for_tied_logits_are_refuted():
    """Only adjacent pairs of the sorted logits were compared and equal pairs skipped, so
    [1, 0, 1] -> [0.5, 0.3, 0.2] passed."""
    with pytest.raises(Refuted) as e:
        _order(_TieBreaking, [1.0, 0.0, 1.0])
    assert e.value.ratio > 1e10
    assert "z[0] = z[2] = 1.0" in e.value.problem
    assert "equal logits must get equal probabilities" in e.value.problem


def test_a_larger_logit_with_a_smaller_probability_says_which():
    class Swapped:
        @staticmethod
        def softmax(z, axis=-1):
            z = np.asarray(z)
            if z.shape == (3,) and list(z) == [1.0, 0.0, 1.0]:
                return np.array([0.3, 0.4, 0.3], dtype=z.dtype)
            return builtin_numpy.softmax(z, axis)

    with pytest.raises(Refuted, match=r"^row 0: z\[1\] = 0.0 < z\[0\] = 1.0, but softmax\[1\] = "
                                      r"0.4 > softmax\[0\] = 0.3 by 0.1 \(allowed \S+\)$"):
        _order(Swapped, [1.0, 0.0, 1.0])


def test_ties_within_their_budgets_hold():
    assert _order("numpy", [1.0, 0.0, 1.0]) <= 1
    assert _order("numpy", [[3.0, -np.inf, 3.0, -np.inf, 0.5]]) <= 1  # tied masks: both 0
    assert _order("numpy", np.full(7, -2.5, dtype=np.float16), get_dtype("float16")) <= 1


def test_a_search_finds_tied_maxima_given_unequal_probabilities():
    report = check(_FavoursFirstMaximum, dtypes=["float64"], claims="softmax.order_preserving",
                   profile="ci")
    (r,) = report.results
    assert r.verdict == "refuted"
    assert "equal logits must get equal probabilities" in r.shrunk.problem


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_careful_softmax_keeps_order_and_ties_on_every_dtype(seed):
    report = check("numpy", dtypes=["float64", "float32", "float16", "bfloat16"],
                   claims="softmax.order_preserving", profile="quick", seed=seed)
    assert report.ok, [(r.dtype, r.shrunk and r.shrunk.problem) for r in report.results]
    assert all(r.verdict == "verified" and r.max_ratio <= 1 for r in report.results)


# ================================================================== the seed's section 2.3

_TWO_LAYER = {"x": 0.5, "w1": 1.2, "b1": -0.3, "W2": [0.4, -1.0, 2.0], "n": [0.0, 1.0, 0.0]}


def _statement_and_truth(claim_id: str) -> tuple[int, float, float]:
    with pytest.raises(Refuted) as e:
        get_claim(claim_id).check(None, dict(_TWO_LAYER))
    m = re.search(r"dC/dW2\[(\d)\]: the statement gives (\S+), the derivative .* is (\S+)$",
                  e.value.problem)
    assert m, e.value.problem
    return int(m[1]), float(m[2]), float(m[3])


def _two_layer_in_floats() -> tuple[float, np.ndarray, np.ndarray]:
    ex = _TWO_LAYER
    h = 1 / (1 + math.exp(-(ex["w1"] * ex["x"] + ex["b1"])))
    zs = np.array(ex["W2"]) * h
    a = np.exp(zs - zs.max())
    return h, a / a.sum(), np.array(ex["n"])


def test_each_error_of_section_2_3_is_refuted_on_its_own():
    """The statement with only the factor a(1 - a) wrong is off by exactly that factor, and the
    statement with only w^(L-1) in place of a^(L-1) by exactly w1 / h: each is refuted for its
    own error, whatever the other part says."""
    h, a, n = _two_layer_in_floats()
    w1 = _TWO_LAYER["w1"]
    j, said, truth = _statement_and_truth("seed.2_3_extra_factor")
    assert truth == pytest.approx((a[j] - n[j]) * h, rel=1e-5)
    assert said / truth == pytest.approx(a[j] * (1 - a[j]), rel=1e-4)
    j, said, truth = _statement_and_truth("seed.2_3_weight_for_activation")
    assert truth == pytest.approx((a[j] - n[j]) * h, rel=1e-5)
    assert said / truth == pytest.approx(w1 / h, rel=1e-4)
    j, said, truth = _statement_and_truth("seed.2_3_weight_gradient")  # both errors
    assert said / truth == pytest.approx(a[j] * (1 - a[j]) * w1 / h, rel=1e-4)


def test_the_seed_audit_states_and_refutes_both_errors_of_section_2_3():
    ids = ("seed.2_3_weight_gradient", "seed.2_3_extra_factor", "seed.2_3_weight_for_activation")
    for cid in ids:
        c = get_claim(cid)
        assert c.kind == "mathematics" and c.expect == "refuted" and c.correct, cid
    assert "a^(L-1)" in get_claim("seed.2_3_extra_factor").statement
    assert "a(1 - a)" not in get_claim("seed.2_3_weight_for_activation").statement.split(":")[-1]
    # (their verdicts on the reference target: tests/test_claims.py, with the rest of the audit)


# ================================================================== cross_entropy.masked_logits


@pytest.mark.parametrize("name", ["float64", "float16"])
def test_masked_logits_are_judged_only_on_inputs_with_a_mask(name):
    """Inputs without a -inf logit (a row of one entry, or no mask drawn) said nothing about
    masks, yet could refute the claim."""
    dt = get_dtype(name)

    @settings(max_examples=150, database=None)
    @given(get_claim("cross_entropy.masked_logits").strategy(dt, Inputs(max_size=16)))
    def each(ex):
        z, n = ex["z"], ex["n"]
        assert np.any(np.isneginf(z) & (n == 0))
        rows = np.moveaxis(np.isfinite(z), ex["axis"], -1)
        assert np.all(rows.any(axis=-1))  # every row keeps a finite logit

    each()


@pytest.mark.parametrize("full", [False, True])
def test_masked_inputs_always_hold_a_mask(full):
    @settings(max_examples=150, database=None)
    @given(with_mask(get_dtype("float32"), Inputs(max_size=8), full=full))
    def each(ex):
        assert np.any(np.isneginf(ex["z"]))
        if not full:
            assert np.all(np.moveaxis(np.isfinite(ex["z"]), ex["axis"], -1).any(axis=-1))

    each()


# ================================================================== a budget of 0 in messages


def test_a_masked_entry_that_is_not_zero_is_said_to_be_so():
    """It read "out[1] = 1.0, but should be 0.0 (|error| 1, allowed 0: infx the budget)"."""
    env, _ = make_env(load_target(type("M", (), {"softmax": staticmethod(
        _softmax_mask_minus_1e4)})), get_dtype("float32"))
    with pytest.raises(Refuted) as e:
        get_claim("softmax.matches_reference").check(
            env, {"z": np.array([-10034.0, -np.inf], dtype=np.float32), "axis": -1})
    problem = e.value.problem
    assert "out[1] = 1.0, but should be exactly 0" in problem
    assert "a masked entry (z = -inf) gets probability exactly 0" in problem
    assert "infx" not in problem and "allowed 0" not in problem


def _exact_problem(computed: float, ref: float, what: str = "softmax") -> str:
    ctx = context(F64.prec)
    a = assess(np.array([computed]), [ctx.mpf(ref)], [ctx.zero], F64, index_labeler((1,), -1),
               what)
    assert a.problem is not None
    return a.problem


def test_a_zero_budget_says_the_value_is_exact():
    assert _exact_problem(8.79e-29, 0.0).startswith(
        "softmax: out[0] = 8.79e-29, but should be exactly 0, with no budget for rounding")
    # the value compared with is another output of the target (shift, permutation, axis claims)
    problem = _exact_problem(0.0, 8.79e-29, "softmax(z + 1.0) vs softmax(z)")
    assert "out[0] = 0.0, compared with 8.79e-29, but both should be exactly 0" in problem
    problem = _exact_problem(-1.7976931348623157e308, -math.inf, "log_softmax")
    assert "but should be exactly -inf, with no budget for rounding" in problem
    assert "log-probability of a masked entry" in problem
    for p in (_exact_problem(8.79e-29, 0.0), problem):
        assert "infx" not in p and "allowed 0" not in p
