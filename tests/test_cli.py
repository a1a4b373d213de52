"""The command line: exit codes, readable output, JSON."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from softmax_oracle.cli import main
from softmax_oracle.engine.results import SCHEMA_VERSION


def run(*args):
    return subprocess.run([sys.executable, "-m", "softmax_oracle.cli", *args],
                          capture_output=True, text=True, timeout=600)


def test_check_numpy_exits_0_and_writes_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    code = main(["check", "numpy", "--dtype", "float32", "--profile", "ci", "--claim",
                 "softmax.*", "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "all applicable claims hold" in text
    data = json.loads(out.read_text())
    assert data["schema_version"] == SCHEMA_VERSION and data["target"] == "numpy"
    assert {r["verdict"] for r in data["results"]} == {"verified"}


def test_check_naive_exits_1_with_a_readable_counterexample(capsys):
    code = main(["check", "naive", "--dtype", "float64", "--profile", "ci", "--claim",
                 "logsumexp.finite_for_huge_logits"])
    text = capsys.readouterr().out
    assert code == 1
    for part in ("Claim refuted: logsumexp.finite_for_huge_logits", "Statement:", "Problem:",
                 "Input (shrunk):", "Reproduce: softmax-oracle check naive"):
        assert part in text, part


def test_accurate_level_refutes_the_plain_shifted_lse(tmp_path, capsys):
    (tmp_path / "plain_lse.py").write_text(
        "import numpy as np\n"
        "def logsumexp(z, axis=-1):\n"
        "    a = np.max(z, axis=axis, keepdims=True)\n"
        "    a = np.where(np.isfinite(a), a, 0)\n"
        "    return np.squeeze(a + np.log(np.sum(np.exp(z - a), axis=axis, keepdims=True)),"
        " axis=axis)\n")
    target = str(tmp_path / "plain_lse.py")
    assert main(["check", target, "--dtype", "float64", "--profile", "ci", "--claim",
                 "logsumexp.*"]) == 0
    capsys.readouterr()
    assert main(["check", target, "--dtype", "float64", "--profile", "ci", "--level",
                 "accurate", "--claim", "logsumexp.accurate"]) == 1
    assert "Claim refuted: logsumexp.accurate" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["check", "no_such_target_module"], "no module named 'no_such_target_module'"),
    (["check", "numpy", "--dtype", "float128"], "dtype='float128'"),
    (["check", "numpy", "--claim", "nothing.like.this"], "matches no claim"),
])
def test_usage_and_target_errors_exit_2(args, message):
    p = run(*args)
    assert p.returncode == 2, p.stdout + p.stderr
    assert message in p.stderr
    assert "Traceback" not in p.stderr


def test_claims_and_targets_commands(capsys):
    assert main(["claims"]) == 0
    text = capsys.readouterr().out
    assert "softmax.sums_to_one" in text and "seed.2_3_weight_gradient" in text
    assert main(["targets"]) == 0
    text = capsys.readouterr().out
    assert "numpy" in text and "reference" in text


def test_help():
    p = run("check", "--help")
    assert p.returncode == 0 and "--level" in p.stdout and "--profile" in p.stdout


def test_a_found_counterexample_is_replayed_first(tmp_path, monkeypatch, capsys):
    """With the default profile the failing example is saved in .hypothesis/ and the next run
    starts from it."""
    (tmp_path / "bad.py").write_text(
        "import numpy as np\n"
        "def softmax(z, axis=-1):\n"
        "    e = np.exp(z)\n"
        "    return e / np.sum(e, axis=axis, keepdims=True)\n")
    monkeypatch.chdir(tmp_path)
    args = ["check", "bad.py", "--dtype", "float32", "--claim", "softmax.finite_for_huge_logits",
            "--json", "r.json"]
    assert main([*args, "--seed", "1"]) == 1
    first = json.loads((tmp_path / "r.json").read_text())["results"][0]
    assert main([*args, "--seed", "2"]) == 1
    second = json.loads((tmp_path / "r.json").read_text())["results"][0]
    assert (tmp_path / ".hypothesis").is_dir()
    assert second["examples"] <= first["examples"]
    assert second["shrunk"]["inputs"] == first["shrunk"]["inputs"]


def test_the_ci_profile_is_deterministic():
    from softmax_oracle import check

    def run():
        report = check("naive", dtypes=["float32"], claims="softmax.*,logsumexp.*",
                       profile="ci", seed=5)
        return [(r.claim_id, r.verdict, r.examples, r.shrunk) for r in report.results]

    assert run() == run()


def test_claims_markdown_is_the_committed_catalogue(capsys):
    from pathlib import Path

    assert main(["claims", "--markdown"]) == 0
    committed = (Path(__file__).parent.parent / "docs" / "claims.md").read_text(encoding="utf-8")
    assert capsys.readouterr().out == committed
    assert main(["claims", "--markdown", "--claim", "softmax.*"]) == 2
    assert "leave out --claim" in capsys.readouterr().err


def _no_run(*args, **kwargs):
    raise AssertionError("the run started although its output cannot be written")


@pytest.mark.parametrize("where", ["missing directory", "directory", "under a file"])
def test_check_json_that_cannot_be_written_exits_2_before_the_run(tmp_path, capsys, monkeypatch,
                                                                  where):
    """These paths gave a traceback after the whole run."""
    monkeypatch.setattr("softmax_oracle.cli.run_check", _no_run)
    (tmp_path / "file").write_text("")
    path = {"missing directory": tmp_path / "no" / "such" / "r.json",
            "directory": tmp_path,
            "under a file": tmp_path / "file" / "r.json"}[where]
    assert main(["check", "numpy", "--json", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"softmax-oracle: error: --json {path}: ")
    fix = {"missing directory": f"the directory {path.parent} does not exist; create it first",
           "directory": f"is a directory; give a file name, e.g. --json {path / 'results.json'}",
           "under a file": f"{tmp_path / 'file'} is a file, not a directory"}[where]
    assert fix in err


def test_check_json_holds_an_infinite_error_in_ulps(tmp_path, capsys, monkeypatch):
    """``check --json`` raised "Out of range float values are not JSON compliant: inf" once a
    refuted claim's largest error in ulps was infinite."""
    from softmax_oracle.engine.results import CheckReport, ClaimResult

    bad = ClaimResult("softmax.matches_reference", "naive", "float32", "stable", "refuted",
                      examples=3, seed=1, max_ratio=math.inf, max_ulps=math.inf)
    report = CheckReport("naive", "", "stable", "default", 1, ("float32",), (bad,), 0.1)
    monkeypatch.setattr("softmax_oracle.cli.run_check", lambda *a, **k: report)
    out = tmp_path / "r.json"
    assert main(["check", "naive", "--json", str(out)]) == 1
    capsys.readouterr()
    (r,) = json.loads(out.read_text())["results"]
    assert r["max_ulps"] == "inf" and r["max_ratio"] == "inf"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left


def test_a_file_target_imports_the_modules_next_to_it(tmp_path, capsys, monkeypatch):
    impl = tmp_path / "impl"
    impl.mkdir()
    (impl / "kit_test_sibling_helper.py").write_text(
        "import numpy as np\n"
        "def stable_softmax(z, axis=-1):\n"
        "    e = np.exp(z - np.max(z, axis=axis, keepdims=True))\n"
        "    return e / np.sum(e, axis=axis, keepdims=True)\n")
    (impl / "mine.py").write_text("from kit_test_sibling_helper import stable_softmax as softmax\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path_before = list(sys.path)
    code = main(["check", str(impl / "mine.py"), "--dtype", "float64", "--profile", "ci",
                 "--claim", "softmax.sums_to_one"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert sys.path == path_before  # the directory is on the path only while the file loads


@pytest.mark.parametrize(("args", "message"), [
    (["--dtype", "float64,float64"], "float64 given more than once"),
    (["--timeout", "nan"], "--timeout nan: use a finite number"),
    (["--timeout", "0"], "--timeout 0.0: use a finite number"),
    (["--max-examples", "-5"], "--max-examples -5: use a whole number of 1 or more"),
    (["--jobs", "0"], "--jobs 0: use 1 or more"),
])
def test_bad_options_are_usage_errors_named_as_on_the_command_line(capsys, args, message):
    assert main(["check", "numpy", *args]) == 2
    assert message in capsys.readouterr().err
