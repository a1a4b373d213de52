"""The report (HTML, Markdown, JSON), its formulas and plots, the diff of two results files, and
the page as a reader sees it in a real headless browser.

Most tests share one small report: targets numpy, naive, seed and reference, float32, the
deterministic ``ci`` profile and a handful of claims, run in two worker processes.
The browser test drives Chromium over the DevTools protocol (``--remote-debugging-pipe``); it
skips when Chromium is missing, except under CI, where it fails.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import fcntl
import io
import json
import math
import os
import re
import select
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from softmax_oracle import CLAIMS
from softmax_oracle.cli import main
from softmax_oracle.engine.results import (
    SCHEMA_VERSION,
    CheckReport,
    ClaimResult,
    Counterexample,
    WiderBudget,
)
from softmax_oracle.report import markdown
from softmax_oracle.report.html import formula
from softmax_oracle.report.mathml import MathMLError, to_mathml
from softmax_oracle.report.run import run_report, save_report
from softmax_oracle.report.views import (
    ReportData,
    Skipped,
    accuracy,
    load_results,
    magnitude,
    status,
    summary_text,
)

IN_CI = bool(os.environ.get("CI"))
SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "results.schema.json"
TARGETS = ["numpy", "naive", "seed", "reference"]
CLAIM_SUBSET = ("softmax.sums_to_one,softmax.matches_reference,logsumexp.matches_reference,"
                "cross_entropy_grad.any_targets,seed.2_2_dC_da,seed.2_2_dC_dz_normalised")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[ReportData, Path]:
    out = tmp_path_factory.mktemp("report")
    cwd = os.getcwd()
    os.chdir(out)  # the ci profile writes no example database; stay out of the tree anyway
    try:
        data = run_report(TARGETS, dtypes=["float32"], profile="ci", claims=CLAIM_SUBSET,
                          jobs=2, progress=False)
    finally:
        os.chdir(cwd)
    save_report(data, out / "site")
    return data, out / "site"


# =============================================================================== the data


def test_every_target_and_claim_has_a_result_in_catalogue_order(report):
    data, _ = report
    assert [t.target for t in data.targets] == TARGETS
    order = {c.id: i for i, c in enumerate(CLAIMS)}
    for t in data.targets:
        ids = [r.claim_id for r in t.results]
        assert ids == sorted(ids, key=order.__getitem__), t.target
    ref = next(t for t in data.targets if t.target == "reference")
    assert {r.claim_id for r in ref.results} == set(CLAIM_SUBSET.split(","))
    naive = {r.claim_id: r for r in data.targets[1].results}
    assert status(naive["softmax.matches_reference"]) == "refuted"
    assert "seed.2_2_dC_da" not in naive  # the mathematics is checked on the reference only
    assert status(next(r for r in ref.results if r.claim_id == "seed.2_2_dC_da")) == \
        "expected_refuted"


def test_parallel_and_in_process_runs_agree():
    kw: dict[str, Any] = dict(dtypes=["float32"], profile="ci", progress=False,
                              claims="softmax.sums_to_one,logsumexp.matches_reference")
    one = run_report(["numpy", "naive"], jobs=1, **kw)
    two = run_report(["numpy", "naive"], jobs=2, **kw)
    key = [(r.target, r.dtype, r.claim_id, r.verdict) for r in one.results]
    assert key == [(r.target, r.dtype, r.claim_id, r.verdict) for r in two.results]


def test_a_target_that_does_not_load_is_listed_as_skipped():
    data = run_report(["numpy", "no_such_module_for_the_report"], dtypes=["float32"],
                      profile="ci", claims="softmax.sums_to_one", jobs=1, progress=False)
    assert [t.target for t in data.targets] == ["numpy"]
    (skipped,) = data.skipped
    assert skipped.target == "no_such_module_for_the_report"
    assert "no module named" in skipped.reason


def test_a_worker_that_dies_becomes_error_rows_and_the_report_goes_on(tmp_path):
    (tmp_path / "dies.py").write_text(
        "import os\nimport numpy as np\n"
        "__softmax_oracle__ = {'exp': np.exp}\n"
        "def softmax(z, axis=-1):\n    os._exit(3)\n"
        "def logsumexp(z, axis=-1):\n"
        "    a = np.max(z, axis=axis, keepdims=True)\n"
        "    a = np.where(np.isfinite(a), a, 0)\n"
        "    s = np.sum(np.exp(z - a), axis=axis, keepdims=True)\n"
        "    return np.squeeze(a + np.log(s), axis=axis)\n")
    target = str(tmp_path / "dies.py")
    data = run_report([target, "numpy"], dtypes=["float64"], profile="ci", jobs=2,
                      claims="softmax.sums_to_one,logsumexp.bounds", progress=False)
    dies, numpy_ = data.targets
    verdicts = {r.claim_id: r for r in dies.results}
    assert verdicts["softmax.sums_to_one"].verdict == "error"
    assert "exited with status 3 during a call of softmax" in verdicts["softmax.sums_to_one"].reason
    assert verdicts["logsumexp.bounds"].verdict == "verified"
    assert {r.verdict for r in numpy_.results} == {"verified"}


def test_a_hanging_call_is_stopped_and_reported(tmp_path):
    (tmp_path / "hangs.py").write_text(
        "import time\nimport numpy as np\n"
        "__softmax_oracle__ = {'exp': np.exp}\n"
        "def softmax(z, axis=-1):\n    time.sleep(600)\n"
        "def log_softmax(z, axis=-1):\n"
        "    m = np.max(z, axis=axis, keepdims=True)\n"
        "    return z - m - np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True))\n")
    start = time.monotonic()
    # The deadline bounds every call, the healthy job's too: 10 s leaves a loaded machine room
    # for log_softmax's calls (each well under a second) and still stops the hang early.
    data = run_report([str(tmp_path / "hangs.py")], dtypes=["float64"], profile="ci", jobs=2,
                      claims="softmax.sums_to_one,log_softmax.nonpositive", timeout=10,
                      progress=False)
    assert time.monotonic() - start < 120
    verdicts = {r.claim_id: r for r in data.targets[0].results}
    assert verdicts["softmax.sums_to_one"].verdict == "error"
    assert "did not return within 10 s" in verdicts["softmax.sums_to_one"].reason
    assert verdicts["log_softmax.nonpositive"].verdict == "verified"


def test_targets_with_nothing_to_check_are_left_out_and_the_command_is_recorded():
    data = run_report(["numpy", "reference"], dtypes=["float64"], profile="ci",
                      claims="seed.2_2_dC_dz_normalised", jobs=1, progress=False)
    assert [t.target for t in data.targets] == ["reference"] and not data.skipped
    assert data.command == ("softmax-oracle report numpy reference --dtype float64 --profile ci "
                            "--claim seed.2_2_dC_dz_normalised --seed 0")


def test_usage_errors_are_value_errors():
    with pytest.raises(ValueError, match="matches no claim"):
        run_report(["numpy"], claims="no_such_claim", progress=False)
    with pytest.raises(ValueError, match="profile"):
        run_report(["numpy"], profile="slow", progress=False)


# =============================================================================== progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _tiny(stream: io.StringIO, **kw: Any) -> None:
    run_report(["numpy"], dtypes=["float32"], profile="ci", claims="softmax.sums_to_one",
               jobs=1, stream=stream, **kw)


def test_progress_is_quiet_when_not_a_terminal(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    pipe = io.StringIO()
    _tiny(pipe)
    assert pipe.getvalue() == ""


def test_progress_is_one_updating_line_on_a_terminal(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    tty = _Terminal()
    _tiny(tty)
    text = tty.getvalue()
    assert "[report] 1/1 claims" in text and "\n" not in text and text.endswith("\r")


def test_progress_is_quiet_under_ci_even_on_a_terminal(monkeypatch):
    monkeypatch.setenv("CI", "true")
    tty = _Terminal()
    _tiny(tty)
    assert tty.getvalue() == ""


# =============================================================================== formulas


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_every_claim_formula_converts_to_mathml(claim):
    root = ET.fromstring(to_mathml(claim.latex))
    assert root.tag == "{http://www.w3.org/1998/Math/MathML}math"
    assert "<code>" not in formula(claim.id)


@pytest.mark.parametrize("latex, parts", [
    (r"\frac{a}{2h}", ["<mfrac><mi>a</mi><mrow><mn>2</mn><mi>h</mi></mrow></mfrac>"]),
    (r"x_b^\top", ["<msubsup><mi>x</mi><mi>b</mi><mi mathvariant=\"normal\">⊤</mi></msubsup>"]),
    (r"\sum_j n_j", ["<munder><mo largeop=\"true\" movablelimits=\"true\">∑</mo><mi>j</mi>"]),
    (r"\left|\hat a\right|", ['form="prefix">|</mo><mover accent="true"><mi>a</mi>']),
    (r"\mathbb{F}^n \mathbf{1}", ["𝔽", "𝟏"]),
    (r"\ln n", ["<mi>ln</mi><mo rspace=\"0.1667em\">\u2061</mo><mi>n</mi>"]),
    (r"\text{0 log 0}", ["<mtext>0 log 0</mtext>"]),
    (r"\sigma'(z)", ["<msup><mi>σ</mi><mo>′</mo></msup>"]),
])
def test_mathml_pieces(latex, parts):
    out = to_mathml(latex)
    for p in parts:
        assert p in out


@pytest.mark.parametrize("latex", [r"\unknowncommand x", r"\frac{a}", r"{a", r"x^1^2"])
def test_unsupported_latex_raises(latex):
    with pytest.raises(MathMLError):
        to_mathml(latex)


def test_magnitude_of_a_recorded_input_ignores_masks_and_dtype_names():
    assert magnitude({"z": "np.array([1.5, -np.inf, -3e+30], dtype=float32)"}) == 3e30
    assert magnitude({"v": "np.array([1.0], dtype=float64)"}) is None


# =============================================================================== the files


def _html(report: tuple[ReportData, Path]) -> str:
    return (report[1] / "index.html").read_text(encoding="utf-8")


def test_html_has_every_section_and_works_offline(report):
    page = _html(report)
    for section in ("summary", "seed-audit", "accuracy", "plots", "refutations", "run",
                    "claims"):
        assert f"<section id='{section}'>" in page, section
    assert page.count("<svg") >= 2 and "<math" in page
    # nothing to fetch: no external scripts, stylesheets, images or fonts
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "@import" not in page and "url(" not in page and "<link" not in page


def test_html_summary_links_refutations_to_their_details(report):
    data, _ = report
    page = _html(report)
    naive = next(r for r in data.results
                 if r.target == "naive" and r.claim_id == "softmax.matches_reference")
    assert "class='s-refuted" in page
    anchor_id = re.search(r"<td class='s-refuted[^']*' title='[^']*'><a href='#([^']+)'>",
                          page).group(1)
    assert f"<details class='ref' id='{anchor_id}'>" in page
    assert "class='s-expected_refuted" in page  # seed.2_2_dC_da on the reference
    assert naive.reproduce in page
    assert "Correct statement" in page or "correct statement" in page


def test_accuracy_table_has_ulps_ratios_and_worst_inputs(report):
    data, _ = report
    cells = {(a.function, a.target): a for a in accuracy(data)}
    assert cells[("softmax", "numpy")].verdict == "verified"
    assert cells[("softmax", "naive")].verdict == "refuted"
    assert cells[("softmax", "numpy")].worst is not None
    assert cells[("logsumexp", "seed")].verdict == "not_applicable"
    page = _html(report)
    assert "largest error in ulps" in page and "× budget" in page


def test_markdown_has_tables_formulas_and_no_html(report):
    md = (report[1] / "report.md").read_text(encoding="utf-8")
    for heading in ("## Summary", "## Seed audit", "## Accuracy", "## Plots",
                    "## Refutations", "## What was run", "## Claims"):
        assert heading in md
    assert "| claim | numpy f32 | naive f32 | seed f32 | reference f32 |" in md
    assert "$\\partial C/\\partial a_i = a_i - n_i$" in md
    assert "![" in md and "(plots/accuracy.svg)" in md
    assert (report[1] / "plots" / "accuracy.svg").read_text().startswith("<svg")
    prose = re.sub(r"```.*?```", "", md, flags=re.DOTALL)
    prose = re.sub(r"`[^`\n]*`", "", prose)
    assert not re.search(r"</?[a-zA-Z][a-zA-Z0-9]*(\s[^<>]*)?>", prose)
    for line in md.splitlines():  # a formula with a raw pipe would break its table row
        if line.startswith("|"):
            assert not re.search(r"\$[^$]*(?<!\\)\|[^$]*\$", line), line


def test_results_json_validates_against_the_schema_and_round_trips(report):
    site = report[1]
    doc = json.loads((site / "results.json").read_text())
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
    assert doc["skipped"] == [] and doc["profile"] == "ci" and doc["seed"] == 0
    assert {t["target"] for t in doc["targets"]} == set(TARGETS)
    again = load_results(site / "results.json")
    assert again.to_json() == doc


def test_schema_rejects_a_malformed_record(report):
    doc = json.loads((report[1] / "results.json").read_text())
    doc["targets"][0]["results"][0]["verdict"] = "probably fine"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, json.loads(SCHEMA.read_text()),
                            cls=jsonschema.Draft202012Validator)


def _saved(*results: ClaimResult, complete: bool = True, skipped: tuple[Skipped, ...] = (),
           target: str = "numpy") -> ReportData:
    """A report made by hand (no run): one target, float32."""
    report = CheckReport(target, "1.0", "stable", "default", 7, ("float32",), results, 2.0,
                         {"numpy": "2"}, (), complete)
    return ReportData("0.1.0", "2025-01-01T00:00:00+00:00", "default", "stable", 7, 2.0,
                      {"numpy": "2"}, (report,), skipped, ("float32",), complete=complete)


def _refuted(claim_id: str, target: str = "numpy", problem: str = "out[0] = nan",
             ulps: float = math.inf) -> ClaimResult:
    cex = Counterexample({"z": "np.array([89.0, 0.0], dtype=float32)"}, problem, math.inf,
                         ("overflow",))
    return ClaimResult(claim_id, target, "float32", "stable", "refuted", examples=5, seed=7,
                       max_ratio=math.inf, max_ulps=ulps, shrunk=cex, worst=cex,
                       reproduce=f"softmax-oracle check {target} --claim {claim_id} --seed 7")


def test_non_finite_numbers_and_an_interrupted_run_validate_and_read_back(tmp_path):
    data = _saved(_refuted("softmax.sums_to_one", ulps=math.inf),
                  _refuted("softmax.matches_reference", ulps=math.nan), complete=False)
    paths = save_report(data, tmp_path / "site")
    doc = json.loads(paths["json"].read_text())
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()),
                        cls=jsonschema.Draft202012Validator)
    assert doc["complete"] is False and doc["targets"][0]["complete"] is False
    assert [r["max_ulps"] for r in doc["targets"][0]["results"]] == ["inf", "nan"]
    again = load_results(paths["json"])
    assert again.to_json() == doc
    assert not again.complete and not again.targets[0].complete


def test_saved_results_with_a_claim_this_version_does_not_know_still_render(tmp_path):
    """Re-rendering results from another version raised KeyError on the unknown claim id."""
    old = _saved(_refuted("softmax.retired_claim"),
                 _refuted("softmax.sums_to_one"))
    save_report(old, tmp_path / "old")
    data = load_results(tmp_path / "old" / "results.json")
    paths = save_report(data, tmp_path / "again")
    page = paths["html"].read_text(encoding="utf-8")
    md = paths["markdown"].read_text(encoding="utf-8")
    for text in (page, md):
        assert "softmax.retired_claim" in text
        assert "not in this version&#x27;s specification" in text or \
            "not in this version's specification" in text
    assert "id='c-softmax.retired_claim'" in page  # the summary's link has a target
    assert "- **`softmax.retired_claim`**: not in this version's specification" in md
    assert "Statement: not in this version's specification" in md


def test_uninformative_unjudged_and_conventions_are_counted_apart(tmp_path):
    """Counted apart from verified and refuted in the terminal summary, report.md, index.html
    and results.json, with what each rests on. Uninformative results were once "verified", the
    NaN convention "refuted", and an exception one refutation per claim."""
    cex = Counterexample({"z": "np.array([0.0, -np.inf], dtype=np.float32)",
                          "n": "np.array([1.0, 0.0], dtype=np.float32)"}, "out = nan", math.inf)
    results = (
        ClaimResult("softmax.matches_reference", "numpy", "float32", "stable", "uninformative",
                    examples=20, seed=7, max_ratio=0.1, uninformative=20,
                    wider=WiderBudget("float32", 20, 6.0, cex)),
        ClaimResult("softmax.sums_to_one", "numpy", "float32", "stable", "verified", examples=20,
                    seed=7, uninformative=3),
        ClaimResult("logsumexp.matches_reference", "numpy", "float32", "stable", "unjudged",
                    examples=20, seed=7, skipped=20, reason="20 of 20 examples skipped: "
                    "logsumexp raised TypeError: no (judged under "
                    "logsumexp.returns_on_valid_input)"),
        _refuted("logsumexp.returns_on_valid_input", problem="logsumexp raised TypeError: no"),
        ClaimResult("cross_entropy.masked_logits", "numpy", "float32", "stable", "differs",
                    examples=9, seed=7, shrunk=cex, reproduce="softmax-oracle check numpy"),
        ClaimResult("cross_entropy.masked_logits", "numpy", "float64", "stable", "follows",
                    examples=9, seed=7))
    data = _saved(*results)
    paths = save_report(data, tmp_path / "site")
    md, page = paths["markdown"].read_text(), paths["html"].read_text()
    head = ("6 claim results: **1** verified, **1** uninformative (every budget at least its "
            "quantity), **1** refuted, **1** unjudged (the target raised on every example), "
            "**1** conventions followed, **1** conventions not followed (another convention).")
    assert head in md
    assert "| numpy | float32 | 1 | 1 | 1 | 0 | 1 | 0 / 1 | 0 | 0 |" in md
    assert "uninformative: on all 20 examples judged, every budget was at least" in md
    assert "6× that budget at worst on 20 of these examples (over it" in md
    assert "3 of the 20 examples judged were uninformative" in md
    assert "≠ differs: follows 0 * (-inf) = NaN" in md
    assert "**Examples skipped** (numpy, float32): logsumexp raised TypeError: no" in md
    assert "| ○ |" in md and "| ⊘ |" in md  # the matrix
    for text in ("<b class='ok'>1</b> verified", "1 uninformative", "1 unjudged",
                 "id='rests-on'", "follows another convention", "⊘", "○"):
        assert text in page, text
    assert [r.claim_id for r in data.results if r.verdict == "refuted"] == [
        "logsumexp.returns_on_valid_input"]
    assert "1 verified, 1 uninformative (every budget at least its quantity), 1 refuted, " \
           "1 unjudged" in summary_text(data)
    again = load_results(paths["json"])
    assert again.to_json() == json.loads(paths["json"].read_text())
    assert [r.verdict for r in again.results] == [r.verdict for r in results]
    acc = {(a.function, a.dtype): a for a in accuracy(data)}
    assert acc[("softmax", "float32")].verdict == "uninformative"
    assert acc[("logsumexp", "float32")].verdict == "unjudged"


def test_markdown_escapes_what_targets_and_messages_write(tmp_path):
    """report.md wrote target names and messages as they came: raw HTML, and pipes that split
    table rows."""
    script = "<script>alert(1)</script>"
    data = _saved(_refuted("softmax.sums_to_one", target=script,
                           problem="a | b <img src=x onerror=alert(2)> ```"),
                  target=script, skipped=(Skipped("x|<b>y</b>", "reason | with <i>tags</i>"),))
    md = markdown.render(data, ["accuracy"])
    # outside code (where HTML is shown as text), no tag is left
    prose = re.sub(r"^(`{3,}).*?^\1$", "", md, flags=re.DOTALL | re.MULTILINE)
    assert not re.search(r"</?[a-zA-Z]", prose)
    assert "### &lt;script&gt;alert(1)&lt;/script&gt;" in prose
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert rows
    for line in rows:  # every row of a table has as many cells as its header
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
        assert len(cells) in _table_widths(md), line
    # the message with a code fence inside stays inside its block
    block = re.search(r"^(`{4,})\n(.*?)^\1$", md, flags=re.DOTALL | re.MULTILINE)
    assert block is not None and "```" in block.group(2) and script in block.group(2)


def _table_widths(md: str) -> set[int]:
    """The number of cells of each table's header row (the row above a |---| line)."""
    lines = md.splitlines()
    return {len(re.split(r"(?<!\\)\|", lines[i - 1].strip())[1:-1])
            for i, line in enumerate(lines) if re.match(r"^\| *:?-{3}", line)}


# =============================================================================== the CLI


def test_cli_report_writes_the_three_files(tmp_path, capsys):
    code = main(["report", "numpy", "naive", "--dtype", "float32", "--profile", "ci",
                 "--claim", "softmax.sums_to_one", "--jobs", "1", "--out",
                 str(tmp_path / "r")])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert {p.name for p in (tmp_path / "r").iterdir()} >= {"index.html", "report.md",
                                                            "results.json", "plots"}
    assert "naive" in out.out and "index.html" in out.out
    assert out.err == ""  # not a terminal: no progress


def test_cli_report_usage_errors_exit_2(capsys):
    assert main(["report", "numpy", "--dtype", "float128"]) == 2
    assert "float128" in capsys.readouterr().err
    assert main(["report", "numpy", "--claim", "nothing.matches"]) == 2
    assert "matches no claim" in capsys.readouterr().err
    assert main(["report", "no_such_module_x", "--jobs", "1"]) == 2
    assert "no_such_module_x" in capsys.readouterr().err


def _no_run(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("the run started although its output cannot be written")


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_cli_report_out_that_cannot_be_written_exits_2_before_the_run(tmp_path, capsys,
                                                                       monkeypatch, where):
    monkeypatch.setattr("softmax_oracle.cli.run_report", _no_run)
    (tmp_path / "taken").write_text("not a directory")
    out = tmp_path / "taken" if where == "a file" else tmp_path / "taken" / "report"
    assert main(["report", "numpy", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--out {out}" in err and "is a file" in err and "Traceback" not in err


def test_cli_report_out_in_a_read_only_directory_exits_2_before_the_run(tmp_path, capsys,
                                                                          monkeypatch):
    monkeypatch.setattr("softmax_oracle.cli.run_report", _no_run)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("this user may write in a read-only directory (root)")
        assert main(["report", "numpy", "--out", str(locked / "report")]) == 2
        err = capsys.readouterr().err
        assert f"--out {locked / 'report'}" in err and "cannot create files in" in err
    finally:
        locked.chmod(0o755)


# =============================================================================== the diff


def _result(claim: str, verdict: str, ratio: float | str = 0.0, target: str = "numpy",
            expected: str = "holds") -> dict[str, Any]:
    return {"claim_id": claim, "target": target, "dtype": "float32", "level": "stable",
            "verdict": verdict, "expected": expected, "examples": 60, "seed": 0,
            "seconds": 0.1, "reason": "", "max_ratio": ratio, "max_ulps": 1.0, "shrunk": None,
            "worst": None, "reproduce": "", "uninformative": 0, "skipped": 0, "wider": None}


def _doc(*results: dict[str, Any]) -> dict[str, Any]:
    by_target: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_target.setdefault(r["target"], []).append(r)
    return {"schema_version": SCHEMA_VERSION, "kit_version": "0.1.0",
            "generated": "2025-01-01T00:00:00",
            "profile": "ci", "level": "stable", "seed": 0, "seconds": 1.0, "versions": {},
            "skipped": [],
            "targets": [{"schema_version": SCHEMA_VERSION, "target": t, "target_version": "1",
                         "level": "stable", "profile": "ci", "seed": 0, "dtypes": ["float32"],
                         "seconds": 1.0, "versions": {}, "notes": [], "results": rs}
                        for t, rs in by_target.items()]}


def _diff(tmp_path: Path, old: dict[str, Any], new: dict[str, Any], *args: str) -> int:
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    return main(["diff", str(tmp_path / "old.json"), str(tmp_path / "new.json"), *args])


def test_diff_schema_matches_the_report_schema():
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(_doc(_result("softmax.sums_to_one", "verified")), schema,
                        cls=jsonschema.Draft202012Validator)


def test_diff_a_claim_that_became_refuted_is_a_regression(tmp_path, capsys):
    old = _doc(_result("softmax.sums_to_one", "verified", 0.1),
               _result("softmax.matches_reference", "verified", 0.2))
    new = copy.deepcopy(old)
    bad = new["targets"][0]["results"][0]
    bad.update(verdict="refuted", max_ratio="inf",
               shrunk={"inputs": {"z": "np.array([89.0], dtype=float32)"},
                       "problem": "row 0: softmax sums to nan", "ratio": "inf", "regime": []})
    assert _diff(tmp_path, old, new) == 1
    out = capsys.readouterr().out
    assert "Regressions (1)" in out
    assert "now refuted" in out and "softmax.sums_to_one [numpy, float32]" in out
    assert "softmax sums to nan" in out


def test_diff_an_improvement_exits_0(tmp_path, capsys):
    old = _doc(_result("softmax.sums_to_one", "refuted", "inf"),
               _result("softmax.matches_reference", "verified", 0.8))
    new = _doc(_result("softmax.sums_to_one", "verified", 0.1),
               _result("softmax.matches_reference", "verified", 0.05))
    assert _diff(tmp_path, old, new) == 0
    out = capsys.readouterr().out
    assert "Improvements (2)" in out and "now verified" in out and "more accurate" in out
    assert "No regressions." in out


def test_diff_accuracy_worse_by_more_than_the_factor(tmp_path, capsys):
    old = _doc(_result("softmax.matches_reference", "verified", 0.05))
    new = _doc(_result("softmax.matches_reference", "verified", 0.5))
    assert _diff(tmp_path, old, new) == 1
    assert "less accurate" in capsys.readouterr().out
    assert _diff(tmp_path, old, new, "--factor", "20") == 0


def test_diff_seed_statement_no_longer_refuted_is_a_regression(tmp_path, capsys):
    old = _doc(_result("seed.2_2_dC_da", "refuted", "inf", "reference", "refuted"))
    new = _doc(_result("seed.2_2_dC_da", "verified", 0.0, "reference", "refuted"))
    assert _diff(tmp_path, old, new) == 1
    assert "no longer refuted" in capsys.readouterr().out


def test_diff_reports_new_and_removed_targets_and_claims(tmp_path, capsys):
    old = _doc(_result("softmax.sums_to_one", "verified"),
               _result("softmax.sums_to_one", "verified", target="jax"))
    new = _doc(_result("softmax.sums_to_one", "verified"),
               _result("logsumexp.bounds", "verified"),
               _result("softmax.sums_to_one", "verified", target="torch"))
    assert _diff(tmp_path, old, new) == 0
    out = capsys.readouterr().out
    assert "Targets added (1): torch" in out and "Targets removed (1): jax" in out
    assert "Claims added (1): logsumexp.bounds" in out


def test_diff_unreadable_or_mismatched_files_exit_2(tmp_path, capsys):
    good = _doc(_result("softmax.sums_to_one", "verified"))
    (tmp_path / "good.json").write_text(json.dumps(good))
    (tmp_path / "broken.json").write_text("{not json")
    assert main(["diff", str(tmp_path / "good.json"), str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["diff", str(tmp_path / "broken.json"), str(tmp_path / "good.json")]) == 2
    assert "not JSON" in capsys.readouterr().err
    assert _diff(tmp_path, good, {**good, "schema_version": SCHEMA_VERSION + 1}) == 2
    assert "schema_version differs" in capsys.readouterr().err


def test_diff_of_a_real_report_with_itself_has_no_changes(report, capsys):
    site = report[1]
    assert main(["diff", str(site / "results.json"), str(site / "results.json")]) == 0
    assert "No changes in verdicts or accuracy." in capsys.readouterr().out


# =============================================================================== the browser


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if IN_CI:
            pytest.fail("chromium is not installed: apt-get install -y chromium")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return exe


class _DevTools:
    """Chromium driven over the DevTools protocol on a pipe: fd 3 in, fd 4 out, messages
    separated by NUL bytes."""

    def __init__(self, exe: str, profile_dir: Path) -> None:
        to_browser, self._out = os.pipe()
        self._in, from_browser = os.pipe()

        def wire() -> None:  # in the child, before exec: put the pipe ends on fds 3 and 4
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser, from_browser)]
            for fd, target in zip(high, (3, 4)):
                os.dup2(fd, target)
                os.set_inheritable(target, True)

        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-extensions", "--hide-scrollbars",
             f"--user-data-dir={profile_dir}", "--window-size=1366,900",
             "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire, close_fds=False)
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._id = 0
        self.session = ""
        self.events: list[dict[str, Any]] = []

    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the browser did not answer")
            if select.select([self._in], [], [], left)[0]:
                chunk = os.read(self._in, 1 << 20)
                if not chunk:
                    raise EOFError("the browser closed the pipe")
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def send(self, method: str, params: dict[str, Any] | None = None,
             timeout: float = 60.0) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._message(deadline)
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def wait_for(self, method: str, timeout: float = 60.0) -> None:
        if any(e.get("method") == method for e in self.events):
            return
        deadline = time.monotonic() + timeout
        while True:
            event = self._message(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": 1366, "height": 900, "deviceScaleFactor": 1, "mobile": False})
        self.send("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True})
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        with contextlib.suppress(OSError, EOFError, TimeoutError, RuntimeError):
            self.send("Browser.close", timeout=10)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._out)
        os.close(self._in)


def test_the_page_in_a_real_browser(report, tmp_path):
    exe = _chromium()
    page = (report[1] / "index.html").resolve()
    browser = _DevTools(exe, tmp_path / "profile")
    try:
        browser.open(page.as_uri())
        seen = browser.evaluate("""(() => {
          const q = (s) => document.querySelector(s);
          const math = [...document.querySelectorAll('#claims math')];
          return {
            summaryRows: document.querySelectorAll('#summary table.matrix tbody tr').length,
            refutedCells: document.querySelectorAll('#summary td.s-refuted').length,
            seedAudit: q('#seed-audit table') ? q('#seed-audit table').innerText : '',
            accuracy: q('#accuracy table') ? q('#accuracy table').innerText : '',
            svgs: [...document.querySelectorAll('#plots svg')].map(
              (s) => s.getBoundingClientRect().width),
            maths: math.length,
            mathsDrawn: math.filter((m) => m.getBoundingClientRect().width > 5
                                          && m.getBoundingClientRect().height > 5).length,
            text: document.body.innerText,
            width: document.documentElement.scrollWidth,
          };
        })()""")
        browser.screenshot(tmp_path / "report.png")
        target = browser.evaluate("(() => { const a = document.querySelector("
                                  "'#summary td.s-refuted a'); a.click(); "
                                  "return a.hash.slice(1); })()")
        opened = browser.evaluate(f"(() => {{ const d = document.getElementById('{target}'); "
                                  "return d.open && d.innerText.includes('Reproduce:'); })()")
    finally:
        browser.close()
    assert seen["summaryRows"] >= 8 and seen["refutedCells"] >= 4
    assert "seed.2_2_dC_da" in seen["seedAudit"] and "counterexample" in seen["seedAudit"]
    assert "softmax" in seen["accuracy"] and "numpy" in seen["accuracy"]
    assert len(seen["svgs"]) >= 2 and min(seen["svgs"]) > 600
    assert seen["maths"] >= 6 and seen["mathsDrawn"] == seen["maths"]
    for words in ("Seed audit", "What was run", "Refutations", "softmax-oracle report"):
        assert words in seen["text"]
    assert seen["width"] <= 1366, "the page scrolls sideways at 1366 px"
    assert opened, "a refuted cell's link opens its details"
    png = (tmp_path / "report.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    # no script errors, no console errors, and nothing fetched but the page itself
    problems = [e for e in browser.events
                if e.get("method") == "Runtime.exceptionThrown"
                or (e.get("method") == "Runtime.consoleAPICalled"
                    and e["params"]["type"] in ("error", "assert"))
                or (e.get("method") == "Log.entryAdded"
                    and e["params"]["entry"]["level"] == "error")]
    assert problems == []
    fetched = {e["params"]["request"]["url"] for e in browser.events
               if e.get("method") == "Network.requestWillBeSent"}
    assert fetched <= {page.as_uri()}, fetched
