"""Smoke tests of the benchmark scripts' cores: running their jobs through the kit's scheduler,
the detection measurement on two zoo members, the conventional baseline, the mutation driver on
three mutants, and the splicing of their parts of docs/benchmarks.md. Seconds, not minutes: few
examples, one dtype."""

from __future__ import annotations

import ast
import functools
import importlib.util
import os
import subprocess
import sys
import threading
import time
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
def shared() -> ModuleType:
    return _script("_shared")


@pytest.fixture(scope="module")
def detection() -> ModuleType:
    return _script("detection")


@pytest.fixture(scope="module")
def mutation() -> ModuleType:
    return _script("mutation")


@functools.cache
def _mutants(mutation: ModuleType) -> list:
    """Every mutant, made once (seconds of ``ast`` work)."""
    return mutation.mutants()


# --- jobs through the scheduler: the functions below run in the engine's worker processes -------


def _behave(item: tuple[str, float]) -> int | None:
    """A benchmark job that returns, raises, dies, hangs or returns None, as ``item`` says; the
    ones that return give their process id."""
    what, arg = item
    if what == "raise":
        raise ValueError(f"boom {arg}")
    if what == "exit":
        os._exit(int(arg))
    if what == "hang":
        Path(f"hang-{arg}.pid").write_text(str(os.getpid()))  # in the job's cwd: tmp_path
        time.sleep(600)
    if what == "wait":  # until the job named ``arg`` has written its file, then a little longer
        deadline = time.monotonic() + 60
        while not Path(f"{arg}.done").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
    if what == "none":
        return None
    Path(f"{arg}.done").write_text("")
    return os.getpid()


def _failed(item: tuple[str, float], why: str) -> tuple[str, str]:
    return ("failed", why)


def test_jobs_that_raise_die_or_hang_become_failures_in_job_order(shared):
    items = [("ok", 1), ("raise", 2), ("exit", 3), ("hang", 4), ("none", 5), ("ok", 6)]
    seen: list[tuple[tuple[str, float], object, str]] = []
    start = time.monotonic()
    results = shared.run_jobs(_behave, items, jobs=2, limit=3.0, failed=_failed,
                              done=lambda item, result: seen.append(
                                  (item, result, threading.current_thread().name)))
    ok, raised, died, hung, none, ok2 = results
    assert raised[0] == "failed" and raised[1].startswith("raised ValueError: boom 2")
    assert died[0] == "failed" and died[1].startswith("died: exited with status 3")
    assert hung[0] == "failed" and hung[1].startswith("timeout: did not return within 3 s")
    assert none is None
    # each job in a fresh process of its own, none of them this one
    assert isinstance(ok, int) and isinstance(ok2, int) and len({ok, ok2, os.getpid()}) == 3
    # the hanging job's process was killed, not left behind
    with pytest.raises(ProcessLookupError):
        os.kill(int(Path("hang-4.pid").read_text()), 0)
    assert time.monotonic() - start < 60
    # done: once per job, with its result, here in the calling thread
    assert sorted(seen, key=lambda s: items.index(s[0])) == [
        (item, result, threading.current_thread().name) for item, result in zip(items, results)]


def test_results_keep_job_order_when_jobs_finish_out_of_order(shared):
    items = [("wait", "c"), ("ok", "b"), ("ok", "c")]  # the first finishes after the third
    arrived: list[tuple[str, str]] = []
    results = shared.run_jobs(_behave, items, jobs=2, failed=_failed,
                              done=lambda item, result: arrived.append(item))
    assert arrived.index(("ok", "c")) < arrived.index(("wait", "c"))
    assert all(isinstance(r, int) for r in results) and len(set(results)) == 3


def test_an_error_in_the_progress_callback_stops_the_run_as_itself(shared):
    def done(item: object, result: object) -> None:
        raise RuntimeError("progress failed")

    with pytest.raises(RuntimeError, match="progress failed"):
        shared.run_jobs(_behave, [("ok", 1)], jobs=1, failed=_failed, done=done)


def test_a_benchmark_script_runs_its_jobs_in_workers_from_its_command_line(tmp_path):
    """Run as ``python benchmarks/detection.py``, its job functions live in ``__main__``; they
    must still reach the workers (the script runs main from its own module)."""
    out = tmp_path / "detection.md"
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "detection.py"), "--members", "lse_max_only",
         "--profile", "quick", "--max-examples", "5", "--jobs", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| lse_max_only | float64, stable | 1/1 |" in out.read_text(encoding="utf-8")


def test_headroom_jobs_run_in_workers(shared):
    headroom = _script("headroom")
    (run,) = shared.run_jobs(headroom._one, [("no-such-target", 1, "float64", "quick")], jobs=1,
                             failed=headroom._failed)
    assert run["target"] == "no-such-target" and "no-such-target" in run["skipped"]


def test_the_compiling_profile_times_a_target_in_a_worker(shared):
    compiling = _script("compiling")
    (got,) = shared.run_jobs(compiling.profile_claims,
                             [("numpy", "float32", "softmax.sums_to_one", 3)], jobs=1,
                             failed=lambda job, why: {"failed": why})
    assert "failed" not in got, got
    assert got["claims"] == 1 and got["calls"] >= got["signatures"] > 0
    assert 0 < got["inside"] < got["searching"] and got["compilations"] == 0


def test_the_compiling_benchmark_reads_memory_at_fractions_of_a_run(shared):
    compiling = _script("compiling")
    run = compiling.Run(wall=10.0, peak_mb=300.0, summary="",
                        samples=((0.0, 0.0), (2.0, 100.0), (5.0, 200.0), (9.9, 150.0)))
    assert (run.at(0.25), run.at(0.5), run.at(1.0), run.worker_peak) == (100, 200, 150, 200)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.5)
        assert compiling._children_rss(os.getpid()) > 1  # MB: a Python interpreter at least
    finally:
        child.kill()
        child.wait()


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
    mutants = _mutants(mutation)
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
    return next(m for m in _mutants(mutation)
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


def test_the_mutation_driver_counts_an_overlong_mutant_as_killed_and_its_own_failure_not(
        mutation):
    mutant = _find(mutation, "_log_softmax_last", "zs - _log1p_sum(s, e)", "zs + _log1p_sum(s, e)")
    kwargs = {"profile": "quick", "seed": 1, "max_examples": 5}
    # its check takes longer than a second: its worker is stopped, and that counts as a kill
    (slow,) = mutation.run_all([mutant], jobs=1, limit=0.5, dtypes=["float64"], **kwargs)
    assert slow["killed"] and slow["by"] == "timeout" and slow["problem"].startswith("timeout")
    # the driver itself fails (an unknown dtype): reported, never a kill
    (broken,) = mutation.run_all([mutant], jobs=1, limit=60, dtypes=["float7"], **kwargs)
    assert not broken["killed"] and broken["driver_error"]
    assert broken["problem"].startswith("raised") and "float7" in broken["problem"]
    assert "\n" not in broken["problem"]


def test_every_classified_survivor_is_still_a_mutant(mutation):
    """A classification whose mutant no longer exists (the module changed) is stale: re-run the
    driver and classify its survivors again."""
    keys = {m.key for m in _mutants(mutation)}
    assert [k for k in mutation.CLASSIFIED if k not in keys] == []
    assert {c for c, _ in mutation.CLASSIFIED.values()} <= {
        "equivalent", "within budget", "gap", "other dtypes"}


def test_a_rerun_of_some_mutants_completes_the_last_full_run(mutation):
    """``--only gap,within-budget`` reruns the mutants so classified; the section counts the full
    run's kills with the rerun's and lists the full run's other survivors, not rerun, with their
    classification (nothing unclassified)."""
    everything = _mutants(mutation)
    chosen = mutation._select(everything, "gap,within-budget")
    assert chosen and {mutation.CLASSIFIED[m.key][0] for m in chosen} == {"gap", "within budget"}
    assert [m.index for m in mutation._select(everything, "3,1,3")] == [1, 3]
    with pytest.raises(SystemExit, match="within-budget"):
        mutation._select(everything, "gaps")
    results = [{"index": m.index, "killed": mutation.CLASSIFIED[m.key][0] == "gap",
                "by": "logsumexp.matches_reference[float16]", "problem": "", "seconds": 1.0}
               for m in chosen]
    text = mutation.render(everything, results, {}, command="c", profile="thorough",
                           dtypes="float16", confirm="", wall=1.0, load=(0.0, 0.0),
                           control={"killed": False, "seconds": 1.0}, partial=True)
    last, gaps = mutation.LAST_FULL_RUN, sum(r["killed"] for r in results)
    equivalent = sum(c == "equivalent" for c, _ in mutation.CLASSIFIED.values())
    assert f"{last['killed'] + gaps} killed / {last['mutants'] - equivalent} non-equivalent" in text
    assert "not yet classified" not in text and "equivalent (not rerun)" in text
    assert text.count("| within budget |") == len(chosen) - gaps
