"""The supervised engine: nothing a target does can crash, hang or fool the kit.

Each case runs the real engine on a small target file in tests/targets/: worker processes are
started, killed and replaced for real. A target's crash, exit, abort, hang, swallowed deadline or
memory blow-up is an "error" verdict for the claims it happens in, with the input, and every
other claim's verdict is what a run without it gives.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from softmax_oracle import TargetError, check
from softmax_oracle.engine.check import run_check
from softmax_oracle.report import run_report

TARGETS = Path(__file__).resolve().parent / "targets"
CRASHING = str(TARGETS / "crashing.py")
CLAIMS = "softmax.sums_to_one,log_softmax.matches_reference"
IN_CI = bool(os.environ.get("CI"))


def _by_claim(results):
    return {r.claim_id: r for r in results}


def _crash_check(how: str, **kw):
    kw.setdefault("claims", CLAIMS)
    kw.setdefault("timeout", 2)
    return run_check(f"{CRASHING}:{how}", dtypes=["float64"], profile="ci", **kw)


@pytest.mark.parametrize(("how", "what"), [
    ("segfault", "died (SIGSEGV, signal 11)"),
    ("abort", "died (SIGABRT, signal 6)"),
    ("os_exit", "exited with status 3"),
    ("hang", "did not return within 2 s"),
    ("retry", "did not return within 2 s"),
])
def test_a_dying_or_hanging_target_is_an_error_verdict_with_its_input(how, what):
    start = time.monotonic()
    report = _crash_check(how)
    verdicts = _by_claim(report.results)
    bad = verdicts["log_softmax.matches_reference"]
    assert bad.verdict == "error" and not report.ok
    assert bad.shrunk is not None and what in bad.shrunk.problem
    assert "during a call of log_softmax" in bad.shrunk.problem
    assert bad.shrunk.inputs["z"].startswith("np.array(")
    assert bad.reproduce.startswith("softmax-oracle check ")
    # the claim that never calls log_softmax is judged as without the crash
    assert verdicts["softmax.sums_to_one"].verdict == "verified"
    # a hang costs one deadline, not one per shrink step
    assert time.monotonic() - start < 60


def test_a_segfault_names_the_target_frame():
    report = _crash_check("segfault", claims="log_softmax.matches_reference")
    (r,) = report.results
    assert "crashing.py" in r.reason and "in log_softmax" in r.reason
    assert "/hypothesis/" not in r.reason  # the kit's machinery is left out of the excerpt


def test_unbounded_memory_is_killed_at_the_limit():
    report = _crash_check("memory", memory_limit=2**30, timeout=60,
                          claims="log_softmax.matches_reference")
    (r,) = report.results
    assert r.verdict == "error" and "more than the limit of 1.0 GiB" in r.shrunk.problem


def test_sys_exit_in_a_call_is_a_refutation_not_the_end_of_the_run():
    report = _crash_check("sys_exit")
    verdicts = _by_claim(report.results)
    assert verdicts["log_softmax.matches_reference"].verdict == "refuted"
    assert "called sys.exit(0)" in verdicts["log_softmax.matches_reference"].shrunk.problem
    assert verdicts["softmax.sums_to_one"].verdict == "verified"


def test_two_jobs_a_crash_in_one_leaves_the_others_alone():
    report = _crash_check("segfault", jobs=2,
                          claims=CLAIMS + ",softmax.matches_reference,softmax.shift_invariant")
    verdicts = _by_claim(report.results)
    assert verdicts["log_softmax.matches_reference"].verdict == "error"
    assert {r.verdict for cid, r in verdicts.items() if cid.startswith("softmax.")} == \
        {"verified"}


@pytest.mark.parametrize("name", ["exit_at_import.py", "os_exit_at_import.py"])
def test_a_target_that_exits_while_loading_is_a_target_error(name):
    with pytest.raises(TargetError, match=r"sys.exit|SystemExit|exited with status 3"):
        check(str(TARGETS / name), dtypes=["float64"], profile="ci")


@pytest.mark.parametrize("rng", ["numpy", "random", "torch"])
def test_a_target_that_depends_on_a_global_generator_is_caught(monkeypatch, rng):
    if rng == "torch":
        if IN_CI:
            import torch  # noqa: F401 -- CI has every framework
        else:
            pytest.importorskip("torch")
    monkeypatch.setenv("SOFTMAX_ORACLE_TEST_RNG", rng)
    report = check(str(TARGETS / "global_rng.py"), dtypes=["float64"], profile="ci",
                   claims="softmax.deterministic,softmax.matches_reference")
    verdicts = _by_claim(report.results)
    assert verdicts["softmax.deterministic"].verdict == "refuted"
    assert verdicts["softmax.matches_reference"].verdict == "refuted"


def test_check_from_a_thread_still_has_a_deadline():
    out = {}

    def run():
        out["report"] = run_check(f"{CRASHING}:hang", dtypes=["float64"], profile="ci", timeout=1,
                                  claims="log_softmax.matches_reference")

    t = threading.Thread(target=run)
    t.start()
    t.join(90)
    assert not t.is_alive()
    (r,) = out["report"].results
    assert r.verdict == "error" and "did not return within 1 s" in r.shrunk.problem


def test_report_a_crash_is_an_error_row_only_where_it_happens():
    data = run_report([f"{CRASHING}:abort", "numpy"], dtypes=["float64"], profile="ci", jobs=2,
                      claims="softmax.sums_to_one,log_softmax.matches_reference,"
                             "logsumexp.matches_reference", progress=False)
    crashing, numpy_ = data.targets
    verdicts = {r.claim_id: r.verdict for r in crashing.results}
    assert verdicts == {"softmax.sums_to_one": "verified",
                        "log_softmax.matches_reference": "error",
                        "logsumexp.matches_reference": "not_applicable"}
    assert {r.verdict for r in numpy_.results} == {"verified"}


def test_plugin_session_survives_a_segfault(pytester_subprocess):
    result = pytester_subprocess(
        "--softmax-oracle", f"{CRASHING}:segfault", "--softmax-oracle-dtype", "float64",
        "--softmax-oracle-claim", CLAIMS, "-p", "no:cacheprovider")
    assert result.returncode == 1, result.stdout
    assert "1 failed, 1 passed" in result.stdout
    assert "died (SIGSEGV, signal 11)" in result.stdout


@pytest.fixture
def pytester_subprocess(tmp_path):
    def run(*args, env=None):
        return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300,
                              env={**os.environ, **(env or {})})
    return run


# ------------------------------------------------------------------------ interrupts


def _descendants(pid: int) -> set[int]:
    """Every process whose ancestry leads to pid (read from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(("command", "sig"), [
    ("check", signal.SIGTERM), ("check", signal.SIGINT), ("report", signal.SIGTERM)])
def test_an_interrupt_stops_the_run_and_leaves_no_process(tmp_path, command, sig):
    args = [sys.executable, "-m", "softmax_oracle.cli", command, f"{CRASHING}:hang",
            "--dtype", "float64",
            "--profile", "ci", "--timeout", "600", "--jobs", "2", "--claim", CLAIMS]
    if command == "check":
        args += ["--json", str(tmp_path / "partial.json")]
    else:
        args += ["--out", str(tmp_path / "site"), "-q"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    workers: set[int] = set()
    while time.monotonic() < deadline and len(workers) < 2:  # both jobs running
        time.sleep(0.2)
        workers = _descendants(proc.pid)
    assert workers, "no worker process started"
    time.sleep(1.0)
    workers = _descendants(proc.pid)
    start = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    stopped = time.monotonic() - start
    assert stopped < 5, f"took {stopped:.1f} s to stop"
    while time.monotonic() - start < 5 and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not [p for p in workers if _alive(p)], "processes left behind"
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in err
    if command == "check":  # what finished is written, marked incomplete
        import json

        data = json.loads((tmp_path / "partial.json").read_text())
        assert data["complete"] is False
        assert {r["claim_id"] for r in data["results"]} <= {"softmax.sums_to_one"}


# ------------------------------------------------------------------------ Dask


@pytest.fixture(scope="module")
def dask_cluster():
    if IN_CI:
        import distributed
    else:
        distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                                       dashboard_address=None, silence_logs=40)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def test_dask_executor_gives_the_local_verdicts(dask_cluster):
    address = "dask://" + dask_cluster.split("://", 1)[1]
    local = _crash_check("segfault", jobs=2)
    remote = _crash_check("segfault", jobs=2, executor=address)
    assert [(r.claim_id, r.verdict) for r in remote.results] == \
        [(r.claim_id, r.verdict) for r in local.results]
    bad = _by_claim(remote.results)["log_softmax.matches_reference"]
    assert "died (SIGSEGV, signal 11)" in bad.shrunk.problem


def test_dask_executor_enforces_the_deadline(monkeypatch, dask_cluster):
    monkeypatch.setenv("SOFTMAX_ORACLE_EXECUTOR", "dask://" + dask_cluster.split("://", 1)[1])
    report = _crash_check("retry", claims="log_softmax.matches_reference")
    (r,) = report.results
    assert r.verdict == "error" and "did not return within 2 s" in r.shrunk.problem
    assert math.isinf(r.max_ratio)


def test_an_unreachable_executor_is_a_usage_error():
    with pytest.raises(ValueError, match=r"cannot reach the Dask scheduler|needs Dask"):
        check("numpy", dtypes=["float64"], executor="dask://127.0.0.1:9")
    with pytest.raises(ValueError, match="use 'local' or 'dask://HOST:PORT'"):
        check("numpy", dtypes=["float64"], executor="ray://x")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_dask_an_interrupt_kills_the_jobs_on_the_cluster(tmp_path, dask_cluster):
    """SIGTERM to `check --executor dask://...`: it stops within 5 s, and the worker processes
    the Dask worker started for its jobs are gone within 5 s too."""
    address = "dask://" + dask_cluster.split("://", 1)[1]
    before = _engine_workers(_descendants(os.getpid()))
    proc = subprocess.Popen(
        [sys.executable, "-m", "softmax_oracle.cli", "check", f"{CRASHING}:hang", "--dtype",
         "float64", "--profile", "ci", "--timeout", "600", "--claim",
         "log_softmax.matches_reference", "--executor", address],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    remote: set[int] = set()
    while time.monotonic() < deadline and not remote:
        time.sleep(0.2)
        remote = _engine_workers(_descendants(os.getpid()) - _descendants(proc.pid)) - before
    assert remote, "no worker process started on the cluster"
    time.sleep(1.0)
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert time.monotonic() - start < 5 and proc.returncode == 130
    while time.monotonic() - start < 5 and any(_alive(p) for p in remote):
        time.sleep(0.1)
    assert not [p for p in remote if _alive(p)], "worker processes left on the cluster"


def _engine_workers(pids: set[int]) -> set[int]:
    out = set()
    for p in pids:
        try:
            if b"softmax_oracle.engine.worker" in Path(f"/proc/{p}/cmdline").read_bytes():
                out.add(p)
        except OSError:
            pass
    return out
