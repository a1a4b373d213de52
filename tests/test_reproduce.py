"""A reproduction reproduces: the printed input runs as printed and gives the very bits the search
failed on, the whole input is saved where ``softmax-oracle replay`` finds it, and the numbers of a
refutation show by how much a budget is exceeded."""

from __future__ import annotations

import re

import ml_dtypes
import mpmath
import numpy as np
import pytest

from softmax_oracle import check
from softmax_oracle.cli import main
from softmax_oracle.engine.results import ClaimResult, Counterexample, format_value
from softmax_oracle.engine.saved import INPUTS_DIR, KEEP, load_saved, save_example, with_saved
from softmax_oracle.oracle.compare import Refuted, assess, distinct
from softmax_oracle.oracle.dtypes import get_dtype
from softmax_oracle.report.text import format_refutation
from softmax_oracle.spec.checks.common import at_most
from softmax_oracle.zoo import ZOO, as_target

NO_MAX_SHIFT = next(m for m in ZOO if m.name == "no_max_shift_softmax")


def _block(text: str, label: str) -> str:
    """The Python printed after ``label`` (the 19-column indented lines that follow it)."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"  {label}"))
    code = [lines[start][19:]]
    for ln in lines[start + 1:]:
        if not ln.startswith(" " * 19):
            break
        code.append(ln[19:])
    return "\n".join(code)


def _same_bits(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return a == b


def _runs_as_printed(text: str, label: str, saved: str) -> None:
    """Execute the printed input in a namespace of its own: it must give the saved input."""
    namespace: dict[str, object] = {}
    exec(_block(text, label), namespace)  # what the user would paste
    example = load_saved(saved).example
    for k, v in example.items():
        if k != "regime":
            assert _same_bits(namespace[k], v), (k, namespace[k], v)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_the_printed_input_runs_and_is_the_saved_input_bit_for_bit(dtype, tmp_path,
                                                                    monkeypatch):
    """It printed ``dtype=float32`` (a NameError) and bfloat16 without ``import ml_dtypes``."""
    monkeypatch.chdir(tmp_path)
    report = check(as_target(NO_MAX_SHIFT), dtypes=[dtype], claims="softmax.matches_reference",
                   profile="ci")
    (r,) = report.results
    assert r.verdict == "refuted" and r.shrunk is not None
    assert r.shrunk.saved.startswith(INPUTS_DIR) and (tmp_path / r.shrunk.saved).is_file()
    text = format_refutation(r)
    _runs_as_printed(text, "Input (shrunk):", r.shrunk.saved)
    assert f"softmax-oracle replay {r.shrunk.saved}" in text
    if dtype == "bfloat16":
        assert "import ml_dtypes" in text and "dtype=ml_dtypes.bfloat16" in text
    saved = load_saved(r.shrunk.saved)
    assert (saved.claim_id, saved.dtype, saved.level) == ("softmax.matches_reference", dtype,
                                                          "stable")


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_every_value_round_trips_in_its_dtype_in_few_digits(dtype):
    dt = get_dtype(dtype).np
    rng = np.random.default_rng(7)
    with np.errstate(all="ignore"):
        z = np.concatenate([rng.standard_normal(50) * 10.0 ** rng.integers(-8, 8, 50),
                            [-np.inf, np.inf, -0.0, 0.1, 1 / 3]]).astype(dt)
    z[:3] = [get_dtype(dtype).rmin_sub, get_dtype(dtype).rmax, -get_dtype(dtype).rmin]
    text = format_value(z.reshape(5, 11))
    back = eval(text, {"np": np, "ml_dtypes": ml_dtypes})
    assert _same_bits(back, z.reshape(5, 11))
    assert "0.1," in text  # the shortest decimal of the dtype, not 0.10000000149011612
    assert format_value(np.array([2, 0, 1])) == "np.array([2, 0, 1], dtype=np.int64)"
    empty = eval(format_value(np.zeros((0, 3), dt)), {"np": np, "ml_dtypes": ml_dtypes})
    assert empty.shape == (0, 3) and empty.dtype == dt


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_long_input_is_loaded_from_its_file_not_truncated(dtype, tmp_path, monkeypatch):
    """Inputs over 400 characters were printed "... (truncated)", with no way to get them."""
    monkeypatch.chdir(tmp_path)
    z = np.linspace(-50.0, 50.0, 3000).astype(get_dtype(dtype).np)
    ex = {"z": z, "axis": -1, "regime": ("vocab",)}
    cex = with_saved(Counterexample.from_example(ex, "softmax: out[0] = nan", float("inf")), ex,
                     claim_id="softmax.matches_reference", target="t.py", dtype=dtype,
                     level="stable", seed=1)
    r = ClaimResult("softmax.matches_reference", "t.py", dtype, "stable", "refuted",
                    shrunk=cex, reproduce="softmax-oracle check t.py --seed 1")
    text = format_refutation(r)
    assert "truncated" not in text and "3,000 values" in text
    assert len(_block(text, "Input (shrunk):")) < 300
    _runs_as_printed(text, "Input (shrunk):", cex.saved)


def test_the_files_of_one_claim_are_capped(tmp_path):
    for i in range(KEEP + 3):
        assert save_example({"z": np.array([float(i)]), "axis": -1}, claim_id="softmax.x",
                            target="t", dtype="float64", level="stable", seed=i, root=tmp_path)
    assert len(list((tmp_path / INPUTS_DIR).glob("softmax.x-*.npz"))) == KEEP
    assert save_example({"z": np.array([None], dtype=object)}, claim_id="softmax.x", target="t",
                        dtype="float64", level="stable", seed=0, root=tmp_path) == ""


BAD = ("import numpy as np\n"
       "def softmax(z, axis=-1):\n"
       "    e = np.exp(z)\n"
       "    return e / np.sum(e, axis=axis, keepdims=True)\n")
GOOD = "from softmax_oracle.targets.builtin_numpy import softmax\n"


def test_replay_checks_the_claim_again_on_the_saved_input(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.py").write_text(BAD)
    (tmp_path / "good.py").write_text(GOOD)
    assert main(["check", "bad.py", "--dtype", "float32", "--claim",
                 "softmax.finite_for_huge_logits", "--profile", "ci", "-q"]) == 1
    text = capsys.readouterr().out
    (path,) = re.findall(r"softmax-oracle replay (\S+)", text)
    problem = _block(text, "Problem:")[:40]
    assert main(["replay", path]) == 1
    again = capsys.readouterr().out
    assert "Claim refuted: softmax.finite_for_huge_logits   [bad.py, float32" in again
    assert problem in again and "softmax-oracle check bad.py" in again
    assert main(["replay", path, "--target", "good.py"]) == 0
    assert "Claim holds on the saved input: softmax.finite_for_huge_logits" in \
        capsys.readouterr().out
    assert main(["replay", "no_such_file.npz"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_replay_of_a_target_that_crashes_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.py").write_text(BAD)
    path = save_example({"z": np.array([0.0, 100.0], dtype=np.float32), "axis": -1},
                        claim_id="softmax.finite_for_huge_logits", target="bad.py",
                        dtype="float32", level="stable", seed=0)
    (tmp_path / "bad.py").write_text("import os\ndef softmax(z, axis=-1):\n    os._exit(3)\n")
    assert main(["replay", path]) == 1
    out = capsys.readouterr().out
    assert "Claim error" in out and "exited with status 3" in out


# ------------------------------------------------------------------------- the numbers


def test_distinct_prints_as_many_digits_as_tell_two_numbers_apart():
    assert distinct(9.0300001e-6, 9.03e-6, 3) == ("9.0300001e-06", "9.03e-06")
    assert distinct(9.03e-6, 9.03e-6, 3) == ("9.03e-06", "9.03e-06")
    ctx = mpmath.MPContext()
    ctx.prec = 200
    tol = ctx.mpf("9.03e-6")
    a, b = distinct(tol + ctx.mpf(2) ** -90, tol, 3)  # equal as float64s
    assert a != b and ctx.mpf(a) > ctx.mpf(b)


def test_an_excess_just_over_its_budget_shows_in_the_message():
    """It said "fails by 9.03e-06 (allowed 9.03e-06)"."""
    ctx = mpmath.MPContext()
    ctx.prec = 200
    tol = ctx.mpf("9.03e-6")
    with pytest.raises(Refuted) as info:
        at_most(1 + tol * (1 + ctx.mpf("1e-7")), ctx.mpf(1), tol, "sum", "<=")
    by, allowed = re.search(r"fails by (\S+) \(allowed (\S+)\)", info.value.problem).groups()
    assert by != allowed and float(by) > float(allowed)


def test_an_error_just_over_its_budget_shows_in_the_comparison():
    ctx = mpmath.MPContext()
    ctx.prec = 200
    c = 1 + 2.0**-52  # one ulp above the reference 1
    tol = ctx.mpf(2) ** -52 * (1 - ctx.mpf("1e-6"))
    a = assess(np.array([c]), [ctx.mpf(1)], [tol], get_dtype("float64"), lambda i: f"out[{i}]")
    error, allowed, ratio = re.search(r"\|error\| (\S+), .* allowed (\S+): (\S+)x the budget",
                                      a.problem or "").groups()
    assert error != allowed and float(error) > float(allowed)
    assert ratio != "1" and float(ratio) > 1


def test_the_report_reads_the_magnitude_of_a_literal_that_names_its_dtype_as_python():
    from softmax_oracle.report.views import magnitude

    assert magnitude({"z": "np.array([0.5, -np.inf], dtype=np.float32)"}) == 0.5
    assert magnitude({"z": "np.array([0.5], dtype=ml_dtypes.bfloat16)"}) == 0.5
