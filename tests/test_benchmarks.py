"""Smoke tests of the benchmark scripts' cores: the detection measurement on two zoo members,
the conventional baseline, the mutation driver on three mutants, and the splicing of their parts
of docs/benchmarks.md. Seconds, not minutes: few examples, one dtype."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from softmax_oracle.zoo import CONTROL, ZOO

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name: str) -> ModuleType:
    """Import a benchmark script as a module (the scripts are not part of the package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def detection() -> ModuleType:
    return _script("detection")


@pytest.fixture(scope="module")
def mutation() -> ModuleType:
    return _script("mutation")


def _member(name: str):
    return next(m for m in ZOO if m.name == name)


@pytest.mark.parametrize("name", ["in_place_shift", "lse_max_only"])
def test_detection_counts_examples_until_the_first_counterexample(detection, name):
    member = _member(name)
    run = detection.first_counterexample(member, seed=1, profile="quick", max_examples=10)
    assert [c["claim"] for c in run["claims"]] == list(member.refuted_by)
    claim = run["claims"][0]
    assert claim["verdict"] == "refuted"
    # counted before shrinking: at least one example, no more than the run made in all
    assert 1 <= claim["first_example"] <= claim["examples"]
    assert 0 < claim["first_seconds"] <= claim["seconds"]
    summary = detection.summarise_member(member, [run])
    assert summary["refuted_seeds"] == [1]
    assert summary["first_examples"] == claim["first_example"]


def test_the_conventional_test_passes_the_control_and_catches_only_visible_bugs(detection):
    assert detection.conventional_test(CONTROL) == ""
    assert detection.conventional_test(_member("lse_max_only")).startswith("logsumexp:")
    # the input is overwritten, but the returned values are right: a fixed-input test passes
    assert detection.conventional_test(_member("in_place_shift")) == ""


def test_detection_writes_only_its_part_of_the_file(detection, tmp_path):
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\n## Speed\n\nkept as it is\n", encoding="utf-8")
    code = detection.main(["--members", "lse_max_only", "--profile", "quick",
                           "--max-examples", "5", "--jobs", "1", "--out", str(out)])
    text = out.read_text(encoding="utf-8")
    assert code == 0
    assert "## Speed\n\nkept as it is\n" in text
    assert text.count("<!-- detection:begin -->") == 1
    assert "| lse_max_only | float64, stable | 1/1 |" in text
    detection.main(["--members", "lse_max_only", "--profile", "quick", "--max-examples", "5",
                    "--jobs", "1", "--out", str(out)])
    assert out.read_text(encoding="utf-8").count("<!-- detection:end -->") == 1


def test_mutants_are_distinct_and_compile(mutation):
    mutants = mutation.mutants()
    original = ast.unparse(ast.parse(Path(mutation.SOURCE).read_text(encoding="utf-8")))
    sources = {m.source for m in mutants}
    assert len(sources) == len(mutants) and original not in sources
    for m in mutants:
        compile(m.source, f"mutant {m.index}", "exec")
    operators = {m.operator for m in mutants}
    assert {"arithmetic", "comparison", "constant", "function", "keepdims", "axis",
            "delete statement"} <= operators
    assert any(m.before.replace("log1p", "log") == m.after for m in mutants)


def test_mutants_are_checked_only_on_the_claims_that_reach_them(mutation):
    assert {c.split(".")[0] for c in mutation.claims_for("dense_grads")} == {"dense_grads"}
    everything = mutation.claims_for("_exp")  # the flush probe matters to every claim
    assert mutation.claims_for("_sum") == everything


def _find(mutation, function: str, before: str, after: str):
    return next(m for m in mutation.mutants()
                if m.function == function and before in m.before and after in m.after)


def test_the_mutation_driver_kills_real_changes_and_spares_an_equivalent_one(mutation):
    kwargs = {"profile": "quick", "seed": 1, "dtypes": ["float64"], "max_examples": 5}
    sign = _find(mutation, "_log_softmax_last", "zs - _log1p_sum(s, e)", "zs + _log1p_sum(s, e)")
    product = _find(mutation, "_softmax_last", "w / (_const", "w * (_const")
    # float64 inputs only: b is already float64, so dropping its conversion changes nothing
    same = _find(mutation, "dense_grads", "b = np.asarray(b, dtype=W.dtype)", "pass")
    for mutant in (sign, product):
        result = mutation.run_mutant(mutant, **kwargs)
        assert result["killed"], mutant.key
        assert result["by"].split(".")[0] in ("log_softmax", "softmax", "cross_entropy",
                                             "cross_entropy_grad", "softmax_vjp", "dense_grads")
    assert not mutation.run_mutant(same, **kwargs)["killed"]


def test_every_classified_survivor_is_still_a_mutant(mutation):
    """A classification whose mutant no longer exists (the module changed) is stale: re-run the
    driver and classify its survivors again."""
    keys = {m.key for m in mutation.mutants()}
    assert [k for k in mutation.CLASSIFIED if k not in keys] == []
    assert {c for c, _ in mutation.CLASSIFIED.values()} <= {"equivalent", "gap", "other dtypes"}
