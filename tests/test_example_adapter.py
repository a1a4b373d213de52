"""The documented way to plug in a framework the kit does not ship (docs/examples/): the example
adapter runs, holds, and its ``__softmax_oracle__`` dtypes make the dtypes it has no kernels for
"not applicable"; a target that raises for want of a kernel is told to declare them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from softmax_oracle import check

ADAPTER = Path(__file__).resolve().parents[1] / "docs" / "examples" / "array_api_target.py"
HINT = '__softmax_oracle__ = {"dtypes": '

needs_array_api_strict = pytest.mark.skipif(
    importlib.util.find_spec("array_api_strict") is None,
    reason="the example adapter needs array-api-strict: pip install array-api-strict (the dev "
           "extra installs it)")


@needs_array_api_strict
def test_the_example_adapter_holds_and_declares_the_dtypes_it_has():
    report = check(str(ADAPTER), dtypes=["float32", "float16", "bfloat16"],
                   claims="softmax.*,logsumexp.*", profile="ci")
    by_dtype = {dt: [r for r in report.results if r.dtype == dt] for dt in report.dtypes}
    assert {r.verdict for r in by_dtype["float32"]} >= {"verified"}
    assert not [r for r in by_dtype["float32"] if r.verdict in ("refuted", "error")]
    for dt in ("float16", "bfloat16"):
        assert by_dtype[dt] and {r.verdict for r in by_dtype[dt]} == {"not_applicable"}
        assert all(r.reason == f"the target does not support {dt}" for r in by_dtype[dt])
    assert report.target_version and report.ok


@needs_array_api_strict
def test_undeclared_the_missing_float16_kernel_is_refuted_with_a_hint(tmp_path):
    """Without the declaration the float16 claims met "raised TypeError", with no word on
    how to say that the framework has no float16."""
    declaration = '    "dtypes": ["float64", "float32"],\n'
    source = ADAPTER.read_text(encoding="utf-8")
    assert declaration in source
    (tmp_path / "undeclared.py").write_text(source.replace(declaration, ""), encoding="utf-8")
    report = check(str(tmp_path / "undeclared.py"), dtypes=["float16"], claims="softmax.*",
                   profile="ci")
    raised = [r for r in report.results
              if r.shrunk is not None and "raised TypeError" in r.shrunk.problem]
    assert raised
    for r in raised:
        assert HINT + '["float64", "float32", "bfloat16"]}' in r.shrunk.problem


def test_a_no_kernel_message_gets_the_hint_and_other_errors_do_not(tmp_path):
    """PyTorch's wording for a missing half-precision kernel, and an unrelated exception."""
    (tmp_path / "halfless.py").write_text(
        "import numpy as np\n"
        "from softmax_oracle.targets.builtin_numpy import softmax as _softmax\n"
        "def softmax(z, axis=-1):\n"
        "    if z.dtype == np.float16:\n"
        "        raise RuntimeError('\"softmax_lastdim_kernel_impl\" not implemented for "
        "\\'Half\\'')\n"
        "    return _softmax(z, axis=axis)\n"
        "def logsumexp(z, axis=-1):\n"
        "    raise ValueError('shapes (2,) and (3,) not aligned')\n")
    report = check(str(tmp_path / "halfless.py"), dtypes=["float16"],
                   claims="softmax.matches_reference,softmax.returns_on_valid_input,"
                          "logsumexp.matches_reference,logsumexp.returns_on_valid_input",
                   profile="ci")
    problems = {r.claim_id: r.shrunk.problem for r in report.results if r.shrunk is not None}
    softmax = [p for c, p in problems.items() if c.startswith("softmax.")]
    lse = [p for c, p in problems.items() if c.startswith("logsumexp.")]
    assert softmax and lse
    assert all(HINT in p for p in softmax)
    assert not any(HINT in p for p in lse)
