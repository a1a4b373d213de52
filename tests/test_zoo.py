"""Proof that the bugs are found: every member of the zoo is refuted by a claim that names its
bug, and the control (the careful numpy implementation) by none; an implementation that follows
another legitimate convention is said to, and refuted by nothing."""

from __future__ import annotations

import pytest

from softmax_oracle import check
from softmax_oracle.zoo import CONTROL, CONVENTIONS, ZOO, as_target


@pytest.mark.parametrize("member", ZOO, ids=[m.name for m in ZOO])
def test_zoo_member_is_refuted_by_the_claim_that_names_its_bug(member):
    report = check(as_target(member), dtypes=[member.dtype], level=member.level,
                   claims=",".join(member.refuted_by), profile="ci")
    refuted = [r.claim_id for r in report.results if r.verdict == "refuted"]
    assert refuted, (f"{member.name} ({member.bug_class}) escaped "
                     f"{', '.join(member.refuted_by)}")
    assert not [r for r in report.results if r.verdict == "error"]


@pytest.mark.parametrize("member", CONVENTIONS, ids=[m.name for m in CONVENTIONS])
def test_another_convention_is_reported_as_such_and_not_refuted(member):
    """ce_zero_times_inf (0 * (-inf) = NaN, as PyTorch, JAX and optax compute) was a zoo member
    refuted at the accurate level; it follows a legitimate convention, not a bug."""
    report = check(as_target(member), dtypes=[member.dtype], level=member.level,
                   claims=",".join(member.differs_by), profile="ci")
    assert [r.verdict for r in report.results] == ["differs"] * len(member.differs_by)
    assert report.ok and not member.refuted_by
    assert member.name not in {m.name for m in ZOO}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_control_is_never_refuted(dtype):
    report = check(as_target(CONTROL), dtypes=[dtype], level="accurate", profile="ci", seed=7,
                   max_examples=20)
    assert report.ok, [(r.claim_id, r.shrunk and r.shrunk.problem) for r in report.results
                       if not r.as_expected]


def test_the_zoo_covers_every_bug_class_of_the_brief():
    classes = {m.bug_class for m in ZOO}
    for needed in ("overflow", "underflow", "log of an underflowed probability", "cancellation",
                   "lost precision", "masks", "targets", "derivative", "interface"):
        assert needed in classes, needed
    claims = {c for m in ZOO for c in m.refuted_by}
    for needed in ("softmax.no_mutation", "softmax.shape_and_dtype", "softmax.axis_and_batch",
                   "cross_entropy_grad.any_targets", "dense_grads.dW"):
        assert needed in claims, needed
    assert len(ZOO) >= 30
