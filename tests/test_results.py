"""The result records: their JSON (valid JSON whatever the numbers, read back as written) and the
literals that reproduce an input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from softmax_oracle.engine.results import (
    SCHEMA_VERSION,
    VERDICTS,
    CheckReport,
    ClaimResult,
    Counterexample,
    WiderBudget,
    format_value,
    json_number,
    json_safe,
)

SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "results.schema.json"


def _check_report_schema() -> dict:
    schema = json.loads(SCHEMA.read_text())
    return {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": "#/$defs/checkReport"}


def _refuted(claim_id: str = "softmax.sums_to_one", **kw) -> ClaimResult:
    cex = Counterexample({"z": "np.array([89.0, 0.0], dtype=float32)"},
                         "out[0] = nan, but should be 1.0", math.inf, ("overflow",))
    fields = dict(verdict="refuted", examples=12, seed=3, seconds=0.25, max_ratio=math.inf,
                  max_ulps=math.inf, shrunk=cex, worst=cex, reproduce="softmax-oracle check ...")
    return ClaimResult(claim_id, "naive", "float32", "stable", **{**fields, **kw})


def _report(*results: ClaimResult, complete: bool = True) -> CheckReport:
    return CheckReport("naive", "", "stable", "default", 3, ("float32",), results, 1.5,
                       {"numpy": "2"}, ("a note",), complete)


def test_an_infinite_max_ulps_is_written_as_the_string_inf():
    """``check --json`` once raised "Out of range float values are not JSON compliant" here."""
    report = _report(_refuted(max_ulps=math.inf, max_ratio=1e300),
                     _refuted(max_ulps=-math.inf, max_ratio=math.nan, worst=None))
    doc = json.loads(report.dumps())
    first, second = doc["results"]
    assert first["max_ulps"] == "inf" and first["max_ratio"] == 1e300
    assert first["shrunk"]["ratio"] == "inf" and first["shrunk"]["regime"] == ["overflow"]
    assert second["max_ulps"] == "-inf" and second["max_ratio"] == "nan"
    jsonschema.validate(doc, _check_report_schema(), cls=jsonschema.Draft202012Validator)


def test_a_check_report_reads_back_as_written():
    report = _report(_refuted(), _refuted(verdict="verified", max_ratio=0.5, max_ulps=2.0,
                                          shrunk=None, reproduce=""), complete=False)
    again = CheckReport.from_json(json.loads(report.dumps()))
    assert again == report
    assert again.complete is False  # an interrupted run stays marked as one


def test_complete_is_in_the_schema_and_older_files_without_it_read_as_complete():
    doc = json.loads(_report(_refuted(), complete=False).dumps())
    assert doc["complete"] is False
    jsonschema.validate(doc, _check_report_schema(), cls=jsonschema.Draft202012Validator)
    del doc["complete"]
    jsonschema.validate(doc, _check_report_schema(), cls=jsonschema.Draft202012Validator)
    assert CheckReport.from_json(doc).complete is True


def test_the_verdicts_that_say_less_validate_and_read_back():
    """uninformative, unjudged, follows and differs, with the counts they rest on (schema 2)."""
    worst = Counterexample({"z": "np.array([0.0, 0.0], dtype=ml_dtypes.bfloat16)"}, "", 6.0)
    report = _report(
        _refuted(verdict="uninformative", uninformative=12, shrunk=None, reproduce="",
                 max_ratio=0.5, wider=WiderBudget("float32", 12, 6.0, worst)),
        _refuted(verdict="unjudged", skipped=12, examples=12, shrunk=None, worst=None,
                 reproduce="", reason="12 of 12 examples skipped: softmax raised TypeError"),
        _refuted(verdict="verified", skipped=3, uninformative=2, shrunk=None, reproduce=""),
        _refuted(verdict="follows", shrunk=None, reproduce=""),
        _refuted(claim_id="cross_entropy.masked_logits", verdict="differs"),
        _refuted(verdict="uninformative", expected="refuted", shrunk=None))
    doc = json.loads(report.dumps())
    assert doc["schema_version"] == SCHEMA_VERSION == 2
    wider = doc["results"][0]["wider"]
    assert (wider["dtype"], wider["examples"], wider["max_ratio"]) == ("float32", 12, 6.0)
    assert wider["worst"]["inputs"] == worst.inputs
    assert [r["uninformative"] for r in doc["results"]] == [12, 0, 2, 0, 0, 0]
    assert [r["skipped"] for r in doc["results"]] == [0, 12, 3, 0, 0, 0]
    jsonschema.validate(doc, _check_report_schema(), cls=jsonschema.Draft202012Validator)
    assert CheckReport.from_json(doc) == report
    assert set(VERDICTS) == set(json.loads(SCHEMA.read_text())["$defs"]["verdict"]["enum"])
    # none of them is a failure, except a statement expected to be refuted that was not
    assert [r.as_expected for r in report.results] == [True] * 5 + [False]


@given(st.floats())
def test_json_number_reads_back_what_json_safe_writes(x):
    text = json.dumps(json_safe({"x": [x, (x,)]}), allow_nan=False)
    for back in (json_number(v) for v in (json.loads(text)["x"][0], json.loads(text)["x"][1][0])):
        assert back == x or (math.isnan(back) and math.isnan(x))
        assert math.copysign(1, back) == math.copysign(1, x) or math.isnan(x)


def test_json_number_names_what_it_accepts():
    assert json_number(3) == 3.0 and json_number("-inf") == -math.inf
    with pytest.raises(ValueError, match='"inf", "-inf", "nan"'):
        json_number("Infinity")


def test_format_value_writes_none_as_none_not_as_nan():
    """An object array holding None was written as ``np.array([1.0, nan], dtype=object)``."""
    assert format_value(None) == "None"
    assert format_value(np.array([1.0, None], dtype=object)) == \
        "np.array([1.0, None], dtype=object)"
    assert format_value(np.asarray(None)) == "np.array(None, dtype=object)"
    assert format_value(np.array([True, False])) == "np.array([True, False], dtype=bool)"


def test_format_value_reproduces_floats_exactly():
    z = np.array([0.1, -np.inf, np.nan, 5e-324], dtype=np.float64)
    text = format_value(z)
    assert text == "np.array([0.1, -np.inf, np.nan, 5e-324], dtype=np.float64)"
    back = eval(text, {"np": np})
    assert np.array_equal(back, z, equal_nan=True)
    # the fewest digits that give back the same float32 (tests/test_reproduce.py: every dtype)
    assert format_value(np.array([1 / 3], dtype=np.float32)) == \
        "np.array([0.33333334], dtype=np.float32)"
