"""The command line: exit codes, readable output, JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from softmax_oracle.cli import main


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
    assert data["schema_version"] == 1 and data["target"] == "numpy"
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
