"""Bad targets get clear verdicts, never a traceback from the kit's internals."""

from __future__ import annotations

import sys
import textwrap
import time
import types

import numpy as np
import pytest

from softmax_oracle import TargetError, check, load_target
from softmax_oracle.targets import builtin_numpy


def _module(**functions):
    mod = types.SimpleNamespace(**functions)
    mod.__name__ = "user_impl"
    return mod


def _one(target, claim, dtype="float64", **kw):
    report = check(target, dtypes=[dtype], claims=claim, profile="ci", max_examples=10, **kw)
    (r,) = report.results
    return r


def test_a_target_that_does_not_import():
    with pytest.raises(TargetError, match="no module named 'no_such_module_xyz'"):
        load_target("no_such_module_xyz.impl")


def test_a_module_without_the_attribute():
    with pytest.raises(TargetError, match="has no attribute 'nope'"):
        load_target("softmax_oracle.targets.builtin_numpy:nope")


def test_a_module_with_no_protocol_function():
    with pytest.raises(TargetError, match="none of the protocol functions"):
        load_target(_module(something=lambda z: z))


def test_a_function_with_the_wrong_signature():
    expected = r"softmax\(z\) cannot be called as softmax\(z, axis=-1\)"
    with pytest.raises(TargetError, match=expected):
        load_target(_module(softmax=lambda z: z))


def test_a_file_target(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(textwrap.dedent("""
        import numpy as np
        def softmax(z, axis=-1):
            e = np.exp(z - np.max(z, axis=axis, keepdims=True))
            return e / np.sum(e, axis=axis, keepdims=True)
    """))
    t = load_target(str(path))
    assert set(t.functions) == {"softmax"}


def test_an_implementation_that_raises():
    """Judged once, by softmax.returns_on_valid_input; the other claims skip the example (every
    one here: unjudged), and say why."""
    def softmax(z, axis=-1):
        raise ValueError("boom")

    r = _one(_module(softmax=softmax), "softmax.returns_on_valid_input")
    assert r.verdict == "refuted"
    assert "softmax raised ValueError: boom" in r.shrunk.problem
    r = _one(_module(softmax=softmax), "softmax.matches_reference")
    assert r.verdict == "unjudged" and r.shrunk is None and r.skipped == r.examples
    assert "softmax raised ValueError: boom" in r.reason
    assert "judged under softmax.returns_on_valid_input" in r.reason


def test_wrong_shape():
    r = _one(_module(softmax=lambda z, axis=-1: np.ones(3)), "softmax.matches_reference")
    assert r.verdict == "refuted" and "returned shape (3,)" in r.shrunk.problem


def test_not_an_array():
    r = _one(_module(logsumexp=lambda z, axis=-1: "hello"), "logsumexp.matches_reference")
    assert r.verdict == "refuted" and "not" in r.shrunk.problem


def test_nan_output():
    r = _one(_module(softmax=lambda z, axis=-1: np.full(z.shape, np.nan)),
             "softmax.matches_reference")
    assert r.verdict == "refuted" and "nan" in r.shrunk.problem


def test_wrong_dtype():
    def softmax(z, axis=-1):
        return builtin_numpy.softmax(z.astype(np.float64), axis=axis)

    r = _one(_module(softmax=softmax), "softmax.shape_and_dtype", dtype="float32")
    assert r.verdict == "refuted" and "dtype float64 for float32 input" in r.shrunk.problem


def test_mutation():
    def softmax(z, axis=-1):
        z -= np.max(z, axis=axis, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=axis, keepdims=True)

    r = _one(_module(softmax=softmax), "softmax.no_mutation")
    assert r.verdict == "refuted" and "mutated its input z" in r.shrunk.problem


def test_a_hang_is_cut_by_the_deadline():
    def softmax(z, axis=-1):
        while True:
            time.sleep(0.01)

    start = time.perf_counter()
    report = check(_module(softmax=softmax), dtypes=["float64"], claims="softmax.sums_to_one",
                   profile="ci", max_examples=5, timeout=0.2)
    (r,) = report.results
    assert r.verdict == "refuted" and "did not return within 0.2 s" in r.shrunk.problem
    assert time.perf_counter() - start < 60


def test_missing_functions_are_not_applicable():
    report = check(_module(softmax=builtin_numpy.softmax), dtypes=["float64"], profile="ci",
                   max_examples=5, claims="logsumexp.matches_reference,softmax.sums_to_one")
    verdicts = {r.claim_id: (r.verdict, r.reason) for r in report.results}
    assert verdicts["logsumexp.matches_reference"] == ("not_applicable",
                                                       "the target has no logsumexp")
    assert verdicts["softmax.sums_to_one"][0] == "verified"


def test_the_kit_carries_on_after_a_refutation():
    def softmax(z, axis=-1):
        return np.full(np.shape(z), np.nan)

    mod = _module(softmax=softmax, logsumexp=builtin_numpy.logsumexp)
    report = check(mod, dtypes=["float64"], profile="ci", max_examples=5,
                   claims="softmax.sums_to_one,logsumexp.matches_reference")
    assert [r.verdict for r in report.results] == ["refuted", "verified"]


def test_unknown_dtype_and_claim_are_usage_errors():
    with pytest.raises(ValueError, match="dtype='float8'"):
        check("numpy", dtypes=["float8"])
    with pytest.raises(ValueError, match="matches no claim"):
        check("numpy", claims="no.such.claim")


def test_user_module_on_the_path(tmp_path, monkeypatch):
    (tmp_path / "user_softmax_pkg.py").write_text(
        "from softmax_oracle.targets.builtin_numpy import softmax, logsumexp\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    report = check("user_softmax_pkg", dtypes=["float32"], profile="ci", max_examples=10,
                   claims="softmax.*,logsumexp.*")
    assert report.ok and sum(r.verdict == "verified" for r in report.results) > 10
    sys.modules.pop("user_softmax_pkg", None)
