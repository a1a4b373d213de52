"""What a verdict rests on (``engine.search.run_claim``): a budget at least the quantity it bounds
is uninformative, not verified; an exception on a valid input is judged once, by
``<function>.returns_on_valid_input``, and the other claims skip it; a convention claim says which
convention a target follows, and refutes only a value that follows neither.

The targets are real (the kit's numpy implementation, or a few lines of numpy in a file); the
claims are the specification's own, some on inputs fixed to make a point (``_fixed``).
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import strategies as st

from softmax_oracle import check
from softmax_oracle.cli import main
from softmax_oracle.engine.profiles import get_profile
from softmax_oracle.engine.results import ClaimResult
from softmax_oracle.engine.search import make_env, run_claim
from softmax_oracle.oracle.dtypes import get_dtype
from softmax_oracle.spec.claims import get_claim
from softmax_oracle.targets import load_target
from softmax_oracle.zoo import CONVENTIONS, ZOO, as_target

BF16 = get_dtype("bfloat16")


def _run(target: Any, claim_id: str, dtype: str, examples: st.SearchStrategy[Any] | None = None,
         max_examples: int = 10) -> ClaimResult:
    """One claim, in this process, on a real target; on ``examples`` if given."""
    claim = get_claim(claim_id)
    if examples is not None:
        claim = dataclasses.replace(claim, strategy=lambda dt, inp: examples)
    env, _ = make_env(load_target(target), get_dtype(dtype))
    return run_claim(claim, env, target_name="t", level="stable", profile=get_profile("ci"),
                     seed=1, max_examples=max_examples)


def _rows(*lengths: int, dtype: Any = BF16) -> st.SearchStrategy[dict[str, Any]]:
    """Rows of equal logits (their softmax is exactly 1/n), of these lengths."""
    return st.sampled_from(lengths).map(lambda n: {"z": np.zeros(n, dtype=dtype.np), "axis": -1})


def _random_rows(n: int, dtype: Any = BF16) -> st.SearchStrategy[dict[str, Any]]:
    return st.integers(0, 2**32 - 1).map(lambda s: {
        "z": np.random.default_rng(s).normal(0, 1, n).astype(dtype.np), "axis": -1})


def _file(tmp_path: Path, source: str) -> str:
    path = tmp_path / "impl.py"
    path.write_text("import numpy as np\nfrom softmax_oracle.targets import builtin_numpy as ref\n"
                    + textwrap.dedent(source))
    return str(path)


# =============================================================================== uninformative


def test_a_budget_at_least_the_quantity_it_bounds_is_uninformative_not_verified():
    """bfloat16, 64 equal logits: |sum - 1| may be 1.08, so a softmax of zeros "sums to one".
    Once reported as verified."""
    careful = _run("numpy", "softmax.sums_to_one", "bfloat16", _rows(64))
    assert careful.verdict == "uninformative"
    assert careful.uninformative == careful.examples > 0
    zeros = types.SimpleNamespace(softmax=lambda z, axis=-1: np.zeros_like(z))
    assert _run(zeros, "softmax.sums_to_one", "bfloat16", _rows(64)).verdict == "uninformative"
    # on 8 entries the same budget is informative, and the zeros are refuted
    assert _run("numpy", "softmax.sums_to_one", "bfloat16", _rows(8)).verdict == "verified"
    assert _run(zeros, "softmax.sums_to_one", "bfloat16", _rows(8)).verdict == "refuted"


@pytest.mark.parametrize("claim_id", ["softmax.matches_reference", "softmax.sums_to_one"])
def test_one_informative_example_makes_it_verified_and_the_others_are_counted(claim_id):
    r = _run("numpy", claim_id, "bfloat16", _rows(64, 4), max_examples=20)
    assert r.verdict == "verified"
    assert 0 < r.uninformative < r.examples


def test_uninformative_bfloat16_rows_are_checked_against_computing_in_float32():
    """On 256 random bfloat16 logits the native budget is uninformative; numpy computes in
    bfloat16, more than the float32 budget allows (measured: 6x), which the result says without
    refuting it."""
    r = _run("numpy", "softmax.matches_reference", "bfloat16", _random_rows(256))
    assert r.verdict == "uninformative"
    assert r.wider is not None and r.wider.dtype == "float32"
    assert r.wider.examples == r.uninformative and r.wider.max_ratio > 1
    assert r.wider.worst is not None and "z" in r.wider.worst.inputs
    # float32 has no wider dtype here, and no uninformative budget on such rows
    f32 = _run("numpy", "softmax.matches_reference", "float32", _random_rows(256, get_dtype(
        "float32")))
    assert f32.verdict == "verified" and f32.uninformative == 0 and f32.wider is None


def test_the_wider_budget_is_offered_only_where_it_is_derived():
    """The compute dtype applies to softmax, log-softmax and log-sum-exp only: a claim on the
    gradient gets no wider budget even where its own is uninformative."""
    def grads(dt: Any, inp: Any) -> st.SearchStrategy[dict[str, Any]]:
        z = np.zeros(256, dtype=BF16.np)
        n = np.tile([2 / 256, 0.0], 128).astype(BF16.np)  # dC/dz_j = 1/256 - n_j = ±1/256
        return st.just({"z": z, "n": n, "axis": -1})

    claim = dataclasses.replace(get_claim("cross_entropy_grad.normalised_targets"),
                                strategy=grads)
    env, _ = make_env(load_target("numpy"), BF16)
    r = run_claim(claim, env, target_name="t", level="stable", profile=get_profile("ci"),
                  seed=1, max_examples=5)
    assert r.verdict == "uninformative" and r.wider is None


# =============================================================================== exceptions


_LAST_AXIS_ONLY = """
    def logsumexp(z, axis=-1):
        if axis % np.ndim(z) != np.ndim(z) - 1:
            raise ValueError(f"only the last axis is supported, not axis={axis}")
        return ref.logsumexp(z, axis)
"""


def test_an_exception_is_judged_once_and_the_other_claims_judge_the_rest(tmp_path):
    """A target that raises on every axis but the last (as TensorFlow's cross-entropy does):
    the refusal is one refutation, and the numerics are judged where it returns. Once, every
    claim on the function was refuted with the same message."""
    report = check(_file(tmp_path, _LAST_AXIS_ONLY), dtypes=["float64"], profile="ci",
                   claims="logsumexp.returns_on_valid_input,logsumexp.matches_reference,"
                          "logsumexp.bounds")
    by = {r.claim_id: r for r in report.results}
    raised = by["logsumexp.returns_on_valid_input"]
    assert raised.verdict == "refuted" and raised.shrunk is not None
    assert "logsumexp raised ValueError: only the last axis" in raised.shrunk.problem
    for cid in ("logsumexp.matches_reference", "logsumexp.bounds"):
        r = by[cid]
        assert r.verdict == "verified", (cid, r.verdict, r.reason)
        assert 0 < r.skipped < r.examples
        assert f"{r.skipped} of {r.examples} examples skipped: logsumexp raised ValueError" \
            in r.reason
        assert "(judged under logsumexp.returns_on_valid_input)" in r.reason
    assert not report.ok and report.refuted == [raised]


def test_a_claim_whose_every_example_raised_is_unjudged(tmp_path):
    target = _file(tmp_path, """
        def logsumexp(z, axis=-1):
            raise TypeError("no such dtype")
    """)
    report = check(target, dtypes=["float64"], profile="ci", claims="logsumexp.*")
    by = {r.claim_id: r for r in report.results}
    assert by["logsumexp.returns_on_valid_input"].verdict == "refuted"
    others = [r for cid, r in by.items() if cid != "logsumexp.returns_on_valid_input"]
    assert others and {r.verdict for r in others} == {"unjudged"}
    assert all(r.skipped == r.examples > 0 and r.as_expected for r in others)
    assert [r.claim_id for r in report.results if not r.as_expected] == [
        "logsumexp.returns_on_valid_input"]


def test_a_function_that_raises_does_not_hide_another_functions_numerics(tmp_path):
    """log_softmax.equals_z_minus_lse needs logsumexp too: its examples are skipped, and the
    skip names the function that raised."""
    target = _file(tmp_path, _LAST_AXIS_ONLY + """
    log_softmax = ref.log_softmax
    """)
    report = check(target, dtypes=["float64"], profile="ci",
                   claims="log_softmax.equals_z_minus_lse,log_softmax.returns_on_valid_input")
    by = {r.claim_id: r for r in report.results}
    assert by["log_softmax.returns_on_valid_input"].verdict == "verified"
    eq = by["log_softmax.equals_z_minus_lse"]
    assert eq.verdict == "verified" and eq.skipped > 0
    assert "logsumexp raised ValueError" in eq.reason


# =============================================================================== conventions


def test_masked_logits_is_a_convention_claim_at_the_stable_level():
    c = get_claim("cross_entropy.masked_logits")
    assert c.kind == "convention" and c.level == "stable"
    assert "0 log 0 = 0" in c.convention and "NaN" in c.alternative


def test_the_nan_convention_differs_and_is_no_bug():
    (member,) = [m for m in CONVENTIONS if m.name == "ce_zero_times_inf"]
    assert member.name not in {m.name for m in ZOO}  # no longer counted as a bug
    report = check(as_target(member), dtypes=[member.dtype], level=member.level, profile="ci",
                   claims=",".join(member.differs_by), seed=3)
    (r,) = report.results
    assert r.verdict == "differs" and r.as_expected and report.ok
    assert r.shrunk is not None and "= nan" in r.shrunk.problem
    assert "-np.inf" in r.shrunk.inputs["z"]
    assert r.reproduce.startswith("softmax-oracle check ")
    careful = check("numpy", dtypes=["float64"], claims="cross_entropy.masked_logits",
                    profile="ci")
    assert [x.verdict for x in careful.results] == ["follows"]


def test_a_value_that_follows_neither_convention_is_refuted(tmp_path):
    """A masked entry with a zero target made to count as log(1e-30): finite, but wrong under
    either convention."""
    target = _file(tmp_path, """
        def cross_entropy(z, n, axis=-1):
            ls = np.where(np.isneginf(z), np.log(1e-30), ref.log_softmax(z, axis))
            return -np.sum(np.where(np.isneginf(z), 1e-3, n) * ls, axis=axis).astype(z.dtype)
    """)
    report = check(target, dtypes=["float64"], profile="ci",
                   claims="cross_entropy.masked_logits")
    (r,) = report.results
    assert r.verdict == "refuted" and not report.ok
    assert r.shrunk is not None and "nan" not in r.shrunk.problem.split(",")[0]


def test_check_exits_0_on_another_convention_and_says_which(tmp_path, capsys):
    target = _file(tmp_path, """
        def cross_entropy(z, n, axis=-1):
            with np.errstate(all="ignore"):
                return -np.sum(n * ref.log_softmax(z, axis), axis=axis)
    """)
    out = tmp_path / "r.json"
    code = main(["check", target, "--dtype", "float64", "--profile", "ci", "--kind",
                 "convention", "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "1 conventions not followed (another convention)" in text
    assert "cross_entropy.masked_logits [float64]: differs: follows 0 * (-inf) = NaN" in text
    results = json.loads(out.read_text())["results"]
    assert {r["claim_id"] for r in results} >= {"cross_entropy.masked_logits"}
    assert all(get_claim(r["claim_id"]).kind == "convention" for r in results)


def test_kind_names_the_kinds_it_accepts(capsys):
    assert main(["check", "numpy", "--kind", "conventions"]) == 2
    assert "--kind 'conventions': use one or more of numerical, contract, convention, " \
           "mathematics" in capsys.readouterr().err


def test_the_careful_numpy_target_returns_on_every_valid_input():
    report = check("numpy", dtypes=["float32"], profile="ci", max_examples=20,
                   claims="*.returns_on_valid_input")
    assert len(report.results) >= 7
    assert {r.verdict for r in report.results} == {"verified"}, [
        (r.claim_id, r.shrunk and r.shrunk.problem) for r in report.results]
