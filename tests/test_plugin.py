"""The pytest plugin: claims as test items with ids like softmax.sums_to_one[float32]."""

from __future__ import annotations

from softmax_oracle.spec.claims import select

pytest_plugins = ["pytester"]


def test_plugin_runs_claims_as_items(pytester):
    result = pytester.runpytest_subprocess(
        "--softmax-oracle", "numpy", "--softmax-oracle-dtype",
        "float32", "--softmax-oracle-claim", "softmax.sums_to_one,logsumexp.bounds", "-v")
    result.stdout.fnmatch_lines([
        "softmax-oracle?numpy?::softmax.sums_to_one?float32? PASSED*",
        "softmax-oracle?numpy?::logsumexp.bounds?float32? PASSED*"])
    assert result.ret == 0


def test_an_item_can_be_selected_by_its_node_id(pytester):
    node = "softmax-oracle[numpy]::logsumexp.bounds[float64]"
    result = pytester.runpytest_subprocess("--softmax-oracle", "numpy", "--collect-only", "-q")
    assert node in result.stdout.str()
    result = pytester.runpytest_subprocess("--softmax-oracle", "numpy", "-v", "-k",
                                           "logsumexp.bounds and float64")
    items = 2 * len(select())  # every claim that judges a target, in float64 and float32
    result.stdout.fnmatch_lines([f"*collected {items} items / {items - 1} deselected / 1 selected",
                                 node.replace("[", "?").replace("]", "?") + " PASSED*"])
    result.assert_outcomes(passed=1, deselected=items - 1)


def test_plugin_reports_a_refuted_claim(pytester):
    result = pytester.runpytest_subprocess(
        "--softmax-oracle", "naive", "--softmax-oracle-dtype",
        "float64", "--softmax-oracle-claim", "softmax.finite_for_huge_logits")
    result.stdout.fnmatch_lines(["*Claim refuted: softmax.finite_for_huge_logits*",
                                 "*Reproduce: softmax-oracle check naive*"])
    assert result.ret == 1


def test_plugin_is_inert_without_the_option(pytester):
    pytester.makepyfile("def test_x():\n    assert True\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_an_exception_fails_one_item_and_skips_the_claims_it_left_unjudged(pytester):
    target = pytester.makepyfile(impl="def softmax(z, axis=-1):\n"
                                      "    raise TypeError('no kernel for this dtype')\n")
    result = pytester.runpytest_subprocess(
        "--softmax-oracle", str(target), "--softmax-oracle-dtype", "float32",
        "--softmax-oracle-claim", "softmax.returns_on_valid_input,softmax.sums_to_one", "-rs")
    result.stdout.fnmatch_lines([
        "*Problem:   softmax raised TypeError: no kernel for this dtype*",
        "SKIPPED*unjudged: * examples skipped: softmax raised TypeError*"])
    result.assert_outcomes(failed=1, skipped=1)
