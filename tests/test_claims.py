"""The specification: its catalogue, and the verdicts that define it (numpy holds, naive and the
seed are refuted, the seed audit comes out as the design notes say)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import softmax_oracle
from softmax_oracle import CLAIMS, check
from softmax_oracle.spec.claims import KINDS, select
from softmax_oracle.targets import PROTOCOL


def test_ids_are_unique_and_dotted():
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids))
    for c in CLAIMS:
        assert re.fullmatch(r"[a-z_]+\.[A-Za-z0-9_]+", c.id), c.id
        assert c.statement and c.latex and c.source
        assert set(c.needs) <= set(PROTOCOL), c.id
        assert c.kind in KINDS
        assert c.level in ("stable", "accurate")
        if c.expect == "refuted":
            assert c.correct, f"{c.id}: a refuted statement must say what is correct"


def test_every_protocol_function_has_value_and_contract_claims():
    for fname in PROTOCOL:
        mine = [c for c in CLAIMS if fname in c.needs]
        assert any(c.kind == "numerical" for c in mine), fname
        for suffix in ("no_mutation", "shape_and_dtype", "deterministic"):
            assert softmax_oracle.get_claim(f"{fname}.{suffix}")


def test_exceptions_are_judged_by_one_claim_per_function_on_the_inputs_of_all():
    """Every function with contract claims has ``returns_on_valid_input``, whose inputs are
    those of every claim on the function."""
    from hypothesis import find

    from softmax_oracle.oracle.dtypes import get_dtype
    from softmax_oracle.spec.claims import Inputs

    for fname in {c.function for c in CLAIMS if c.id.endswith(".no_mutation")}:
        claim = softmax_oracle.get_claim(f"{fname}.returns_on_valid_input")
        assert claim.kind == "contract" and claim.needs == (fname,)
    # it meets masked logits with zero targets there (cross_entropy.masked_logits's inputs)
    strategy = softmax_oracle.get_claim("cross_entropy.returns_on_valid_input").strategy(
        get_dtype("float64"), Inputs())
    ex = find(strategy, lambda e: "mask" in e.get("regime", ()) and bool(np.any(
        np.isneginf(e["z"]) & (e["n"] == 0))))
    assert np.isneginf(ex["z"]).any()


def test_select_patterns():
    assert {c.id for c in select("softmax.sums_to_one")} == {"softmax.sums_to_one"}
    assert all(c.id.startswith("softmax.") for c in select("softmax"))
    assert "logsumexp.accurate" not in {c.id for c in select("logsumexp.*")}
    assert "logsumexp.accurate" in {c.id for c in select("logsumexp.*", level="accurate")}


@pytest.mark.parametrize("level", ["stable", "accurate"])
@pytest.mark.parametrize("seed", [1, 2])
def test_numpy_target_is_never_refuted(level, seed):
    """Zero false alarms: the kit's careful implementation holds at both levels."""
    report = check("numpy", dtypes=["float64", "float32"], level=level, profile="ci", seed=seed,
                   max_examples=30)
    bad = [(r.claim_id, r.dtype, r.verdict, r.shrunk.problem if r.shrunk else r.reason)
           for r in report.results if not r.as_expected]
    assert not bad
    assert all(r.max_ratio <= 1 for r in report.results)


def test_reference_target_holds_and_the_seed_audit_comes_out_as_derived():
    report = check("reference", dtypes=["float64"], profile="ci", max_examples=20)
    verdicts = {r.claim_id: r.verdict for r in report.results}
    assert report.ok, [r.claim_id for r in report.results if not r.as_expected]
    assert verdicts["seed.2_1_jacobian_diagonal"] == "verified"
    assert verdicts["seed.2_1_chain_rule"] == "refuted"
    assert verdicts["seed.2_2_dC_da"] == "refuted"
    assert verdicts["seed.2_2_dC_dz_normalised"] == "verified"
    assert verdicts["seed.2_2_dC_dz_unnormalised"] == "refuted"
    assert verdicts["seed.2_3_weight_gradient"] == "refuted"
    assert verdicts["seed.2_3_extra_factor"] == "refuted"
    assert verdicts["seed.2_3_weight_for_activation"] == "refuted"
    assert verdicts["seed.class_sigmoid_mse"] == "verified"
    assert verdicts["softmax.jacobian_formula"] == "verified"
    assert verdicts["dense_grads.formula_matches_fd"] == "verified"


@pytest.mark.parametrize("claim", [
    "softmax.finite_for_huge_logits", "logsumexp.finite_for_huge_logits", "log_softmax.finite",
    "cross_entropy.finite", "softmax.matches_reference", "cross_entropy_grad.any_targets",
])
def test_naive_target_is_refuted(claim):
    report = check("naive", dtypes=["float32"], claims=claim, profile="ci")
    (r,) = report.results
    assert r.verdict == "refuted", claim
    assert r.shrunk is not None and r.shrunk.problem and "z" in r.shrunk.inputs
    assert r.reproduce.startswith("softmax-oracle check naive --claim " + claim)


@pytest.mark.parametrize("claim", [
    "softmax_vjp.matches_reference",  # 2.1: v * a(1 - a)
    "cross_entropy_grad.any_targets",  # 2.2: a - n
    "dense_grads.dW",  # 2.3: the extra a(1 - a)
    "dense_grads.db",
    "dense_grads.dx",
])
def test_seed_target_is_refuted(claim):
    report = check("seed", dtypes=["float64"], claims=claim, profile="ci")
    (r,) = report.results
    assert r.verdict == "refuted", claim


def test_seed_gradient_holds_where_its_precondition_holds_on_benign_inputs():
    """a - n is right for targets that sum to one; the seed's unshifted softmax is what fails."""
    from softmax_oracle.engine.search import make_env
    from softmax_oracle.spec.claims import get_claim
    from softmax_oracle.targets import load_target
    from softmax_oracle.targets.call import Env  # noqa: F401  (documented API of checks)

    env, _ = make_env(load_target("seed"), softmax_oracle.oracle.dtypes.get_dtype("float64"))
    claim = get_claim("cross_entropy_grad.normalised_targets")
    ex = {"z": np.array([[0.5, -1.0, 2.0]]), "axis": -1, "n": np.array([[0.0, 1.0, 0.0]])}
    assert claim.check(env, ex) <= 1
    ex2 = {**ex, "n": np.array([[0.0, 2.0, 0.0]])}
    with pytest.raises(softmax_oracle.Refuted):
        get_claim("cross_entropy_grad.any_targets").check(env, ex2)


class _Broken:
    """Small realistic mistakes the catalogue must catch, each beside a careful implementation."""

    @staticmethod
    def logsumexp(z, axis=-1):  # max-shifted, but +inf - +inf = NaN for a +inf logit
        z = np.asarray(z)
        m = np.max(z, axis=axis, keepdims=True)
        m = np.where(np.isneginf(m), 0, m).astype(z.dtype)
        return (np.squeeze(m, axis) + np.log(np.sum(np.exp(z - m), axis=axis))).astype(z.dtype)

    @staticmethod
    def softmax(z, axis=0):  # the default axis of scipy.special.softmax before 1.x: None/0
        from softmax_oracle.targets import builtin_numpy
        return builtin_numpy.softmax(z, axis=axis)

    @staticmethod
    def dense_grads(W, b, x, n):  # the mean over the batch: 0 / 0 for an empty batch
        from softmax_oracle.targets import builtin_numpy
        dW, db, dx = builtin_numpy.dense_grads(W, b, x, n)
        rows = np.asarray(x).shape[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = np.asarray(np.float64(rows) / np.float64(rows), dtype=dW.dtype)
        return dW * scale, db * scale, dx


@pytest.mark.parametrize("claim, needle", [
    ("logsumexp.infinite_logits", "+inf logit"),
    ("softmax.axis_and_batch", "defaults to axis=0"),
    ("dense_grads.empty_batch", "must be zero for a batch of no rows"),
])
def test_edge_claims_refute_realistic_mistakes(claim, needle):
    report = check(_Broken, dtypes=["float64"], claims=claim, profile="quick", seed=1)
    (r,) = report.results
    assert r.verdict == "refuted", claim
    assert needle in r.shrunk.problem


@pytest.mark.parametrize("target", ["numpy", "reference"])
def test_edge_claims_hold_for_careful_implementations(target):
    report = check(target, dtypes=["float64", "float32", "float16"],
                   claims="logsumexp.infinite_logits,dense_grads.empty_batch,*.axis_and_batch",
                   profile="quick", seed=2)
    assert report.ok, [(r.claim_id, r.shrunk and r.shrunk.problem) for r in report.results
                       if not r.as_expected]


def test_a_function_that_returns_none_is_said_to_return_none(tmp_path):
    """The contract said "softmax returned shape (), expected (1,)": np.asarray(None) is a 0-d
    array of objects, which is not what the function returned."""
    (tmp_path / "no_return.py").write_text(
        "import numpy as np\n"
        "def softmax(z, axis=-1):\n"
        "    np.exp(z)  # computes, but forgets to return\n")
    report = check(str(tmp_path / "no_return.py"), dtypes=["float64"],
                   claims="softmax.shape_and_dtype", profile="ci")
    (r,) = report.results
    assert r.verdict == "refuted"
    assert r.shrunk.problem.startswith("softmax returned None, expected an array of shape (")
    assert "shape ()" not in r.shrunk.problem
