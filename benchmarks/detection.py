"""Detection power: does the default profile refute every zoo member, and how soon?

For each member of the bug zoo and each seed, the claims that name its bug (``refuted_by``) run
one by one at the member's dtype and level, each in a fresh working directory (no example
database to replay). A wrapper around each claim's check counts the examples and notes the
count and the time of the first refutation: the examples and seconds *until the first
counterexample*, before any shrinking (``ClaimResult.examples`` counts the shrinking too).

It also measures the false-alarm rate, checking correct targets (numpy; scipy, torch and jax if
installed) at the stable level over many seeds, and compares with a conventional test: each
function of a member on fixed random inputs, against the kit's careful numpy implementation with
``numpy.testing.assert_allclose``.

    python benchmarks/detection.py --seeds 1,2,3,4,5 --out docs/benchmarks.md
    python benchmarks/detection.py                 # one seed, zoo only, printed

``--out FILE`` rewrites only the part of FILE between ``<!-- detection:begin -->`` and
``<!-- detection:end -->``. Each (member, seed) and (target, seed) runs in a fresh supervised
worker process of the kit's scheduler; two at a time by default.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from softmax_oracle import check
from softmax_oracle.engine.profiles import PROFILES
from softmax_oracle.engine.search import make_env, run_claim
from softmax_oracle.oracle.compare import Refuted
from softmax_oracle.oracle.dtypes import get_dtype
from softmax_oracle.spec.claims import get_claim
from softmax_oracle.targets import TargetError, builtin_numpy, load_target
from softmax_oracle.zoo import ZOO, ZooMember, as_target

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _shared import produced_by, provenance, run_jobs, splice, versions

__all__ = ["conventional_test", "false_alarms", "first_counterexample"]

_BY_NAME = {m.name: m for m in ZOO}


@contextlib.contextmanager
def fresh_directory() -> Iterator[str]:
    """Work in an empty temporary directory, so that no ``.hypothesis/`` database is replayed."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="softmax-oracle-detection-") as tmp:
        os.chdir(tmp)
        try:
            yield tmp
        finally:
            os.chdir(old)


@dataclasses.dataclass
class _FirstFailure:
    """What the counting wrapper saw: calls so far, and the call and time of the first failure."""

    start: float
    calls: int = 0
    example: int | None = None
    seconds: float | None = None


def _counting(check_fn: Callable[..., float], seen: _FirstFailure) -> Callable[..., float]:
    def counted(env: Any, ex: dict[str, Any]) -> float:
        seen.calls += 1
        try:
            return check_fn(env, ex)
        except Refuted:
            if seen.example is None:
                seen.example = seen.calls
                seen.seconds = time.perf_counter() - seen.start
            raise

    return counted


def first_counterexample(member: ZooMember, seed: int, profile: str = "default",
                         max_examples: int | None = None) -> dict[str, Any]:
    """Run each claim of ``member.refuted_by`` on the member; per claim, its verdict and the
    number of examples and seconds until its first counterexample (None when there was none)."""
    prof = PROFILES[profile]
    target = load_target(as_target(member))
    claims = []
    with fresh_directory():
        env, _ = make_env(target, get_dtype(member.dtype))
        for cid in member.refuted_by:
            claim = get_claim(cid)
            missing = [f for f in claim.needs if not target.has(f)]
            if missing or (claim.level == "accurate" and member.level == "stable"):
                claims.append({"claim": cid, "verdict": "not_applicable", "first_example": None,
                               "first_seconds": None, "examples": 0, "seconds": 0.0,
                               "problem": f"needs {', '.join(missing) or 'the accurate level'}"})
                continue
            seen = _FirstFailure(start=time.perf_counter())
            counted = dataclasses.replace(claim, check=_counting(claim.check, seen))
            res = run_claim(counted, env, target_name=target.name, level=member.level,
                            profile=prof, seed=seed, max_examples=max_examples)
            problem = res.shrunk.problem.splitlines()[0] if res.shrunk else res.reason[:200]
            claims.append({"claim": cid, "verdict": res.verdict, "first_example": seen.example,
                           "first_seconds": seen.seconds, "examples": res.examples,
                           "seconds": res.seconds, "problem": problem})
    return {"member": member.name, "seed": seed, "claims": claims}


def false_alarms(target: str, seed: int, dtypes: Sequence[str], profile: str = "default",
                 max_examples: int | None = None) -> dict[str, Any]:
    """Check a correct target at the stable level: claim runs, and the refuted or erroring ones
    (each is a false alarm, or a bug of the target)."""
    try:
        with fresh_directory():
            report = check(target, dtypes=list(dtypes), level="stable", profile=profile,
                           seed=seed, max_examples=max_examples)
    except TargetError as e:
        return {"target": target, "seed": seed, "skipped": str(e).splitlines()[0]}
    ran = [r for r in report.results if r.verdict != "not_applicable"]
    bad = [{"claim": r.claim_id, "dtype": r.dtype, "verdict": r.verdict,
            "problem": (r.shrunk.problem if r.shrunk else r.reason).splitlines()[0]}
           for r in ran if r.verdict in ("refuted", "error")]
    return {"target": target, "seed": seed, "runs": len(ran), "bad": bad,
            "examples": sum(r.examples for r in ran), "seconds": report.seconds}


# --- the conventional test -----------------------------------------------------------------------


#: Functions returning a tuple of arrays.
_TUPLES = ("dense_grads", "linear_cross_entropy")


def _fixed_inputs(fname: str, dtype: np.dtype[Any]) -> tuple[np.ndarray, ...]:
    """The inputs a hand-written test would use: standard normal logits of shape (8, 10), soft
    targets that sum to one, normal cotangents, a dense layer with 10 outputs, 5 inputs and a batch
    of 8, and for the loss API random class indices with the default options. Made afresh for each
    function, as separate tests would."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((8, 10))
    n = rng.random((8, 10))
    n /= n.sum(axis=-1, keepdims=True)
    v = rng.standard_normal((8, 10))
    W, b, x = rng.standard_normal((10, 5)), rng.standard_normal(10), rng.standard_normal((8, 5))
    y = rng.integers(0, 10, 8)
    arrays = {"softmax": (z,), "log_softmax": (z,), "logsumexp": (z,), "softmax_vjp": (z, v),
              "cross_entropy": (z, n), "cross_entropy_grad": (z, n), "dense_grads": (W, b, x, n),
              "cross_entropy_loss": (z, y), "cross_entropy_loss_grad": (z, y),
              "linear_cross_entropy": (x, W, b, y)}
    return tuple(a if a.dtype.kind == "i" else a.astype(dtype) for a in arrays[fname])


#: assert_allclose's relative tolerance per dtype: 1e-6 and 1e-4 as a hand-written test would
#: use for float64 and float32; torch.testing's defaults for the 16-bit formats.
_RTOL = {"float64": 1e-6, "float32": 1e-4, "float16": 1e-3, "bfloat16": 1.6e-2}


def conventional_test(member: ZooMember) -> str:
    """Test each of the member's functions the usual way: ``expected`` from the careful numpy
    implementation, then ``assert_allclose(f(*inputs), expected)`` with rtol 1e-6 (float64),
    1e-4 (float32), 1e-3 (float16) or 1.6e-2 (bfloat16) and atol 0. Returns why the test
    failed, or "" if it passed."""
    dtype = get_dtype(member.dtype).np
    rtol = _RTOL[member.dtype]
    for fname, fn in member.functions.items():
        args = _fixed_inputs(fname, dtype)
        expected = getattr(builtin_numpy, fname)(*args)
        try:
            with np.errstate(all="ignore"):
                got = fn(*args)
            pairs = zip(got, expected) if fname in _TUPLES else [(got, expected)]
            for g, e in pairs:
                np.testing.assert_allclose(np.asarray(g, dtype=np.float64),
                                           np.asarray(e, dtype=np.float64), rtol=rtol, atol=0)
        except Exception as e:  # an assertion, or the function raised
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            why = next((ln for ln in lines if ln.startswith(("Mismatched", "(shapes"))),
                       lines[0] if lines else "")
            return f"{fname}: {type(e).__name__}: {why}"[:160]
    return ""


# --- running and reporting -----------------------------------------------------------------------


def _job(job: tuple[str, Any, str, int | None]) -> dict[str, Any]:
    kind, what, profile, max_examples = job
    if kind == "zoo":
        name, seed = what
        return first_counterexample(_BY_NAME[name], seed, profile, max_examples)
    target, seed, dtypes = what
    return false_alarms(target, seed, dtypes, profile, max_examples)


def _failed(job: tuple[str, Any, str, int | None], why: str) -> dict[str, Any]:
    """The record of a job whose process raised or died: an error, never a verdict."""
    kind, what = job[0], job[1]
    why = why.splitlines()[0]  # the traceback or the end of stderr that follows: not for a table
    if kind == "zoo":
        member = _BY_NAME[what[0]]
        return {"member": member.name, "seed": what[1], "claims": [
            {"claim": c, "verdict": "error", "first_example": None, "first_seconds": None,
             "examples": 0, "seconds": 0.0, "problem": f"the run {why}"}
            for c in member.refuted_by]}
    return {"target": what[0], "seed": what[1], "crashed": why}


def _job_key(job: tuple[str, Any, str, int | None]) -> str:
    return json.dumps(job)


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def summarise_member(member: ZooMember, runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per member over seeds: refuted seeds, refutation counts per claim, and medians of the
    examples and seconds to the first counterexample (first refuting claim in ``refuted_by``
    order; and the fewest examples of any claim)."""
    refuted_seeds, first_ex, first_s, fewest = [], [], [], []
    by_claim: dict[str, int] = {c: 0 for c in member.refuted_by}
    problems: list[str] = []
    for run in runs:
        hits = [c for c in run["claims"] if c["verdict"] == "refuted"]
        for c in hits:
            by_claim[c["claim"]] += 1
        errors = [c for c in run["claims"] if c["verdict"] == "error"]
        problems += [f"seed {run['seed']}: {c['claim']} error: {c['problem']}" for c in errors]
        if not hits:
            continue
        refuted_seeds.append(run["seed"])
        first = hits[0]
        if first["first_example"] is not None:
            first_ex.append(first["first_example"])
            first_s.append(first["first_seconds"])
        counted = [c["first_example"] for c in hits if c["first_example"] is not None]
        if counted:
            fewest.append(min(counted))
    return {"member": member.name, "seeds": [r["seed"] for r in runs],
            "refuted_seeds": refuted_seeds, "by_claim": by_claim,
            "first_examples": _median(first_ex), "first_seconds": _median(first_s),
            "fewest_examples": _median(fewest), "problems": problems}


def _versions() -> str:
    return versions(("numpy", "hypothesis", "mpmath", "gmpy2", "scipy", "torch", "jax"))


def _fmt(x: float | None, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def render(members: Sequence[ZooMember], summaries: Sequence[dict[str, Any]],
           baseline: dict[str, str], alarms: Sequence[dict[str, Any]], *, command: str,
           profile: str, seeds: Sequence[int], wall: float, load: tuple[float, float],
           reused: int = 0) -> str:
    n_seeds = len(seeds)
    always = [s for s in summaries if len(s["refuted_seeds"]) == len(s["seeds"])]
    escaped = [s for s in summaries if len(s["refuted_seeds"]) < len(s["seeds"])]
    caught = [m for m in members if baseline.get(m.name)]
    kit_only = [m for m in members if not baseline.get(m.name)
                and any(s["member"] == m.name and s["refuted_seeds"] for s in summaries)]
    firsts = [s["first_examples"] for s in summaries if s["first_examples"] is not None]
    secs = [s["first_seconds"] for s in summaries if s["first_seconds"] is not None]
    lines = [
        produced_by(command, wall, _versions(), load, "so the seconds are inflated",
                    f" (and {reused} jobs reused from an interrupted run)" if reused else ""),
        "",
        f"**Zoo:** {len(always)} of {len(summaries)} members refuted on every seed "
        f"({', '.join(map(str, seeds))}) within the `{profile}` profile, by a claim that names "
        f"their bug; median over members of the median examples to the first counterexample: "
        f"{_fmt(_median(firsts), '.0f')} (largest {_fmt(max(firsts, default=None), '.0f')}); "
        f"median seconds: {_fmt(_median(secs), '.2f')} "
        f"(largest {_fmt(max(secs, default=None), '.2f')}).",
        "",
        f"**Conventional test:** {len(caught)} of {len(members)} members fail it; caught only "
        f"by the kit: {len(kit_only)}.",
        "",
    ]
    if escaped:
        missed = [(s["member"], [x for x in s["seeds"] if x not in s["refuted_seeds"]])
                  for s in escaped]
        lines.append("**Escapes:** " + "; ".join(
            f"{name} on seed(s) {', '.join(map(str, xs))}" for name, xs in missed) + ".")
        lines.append("")
    lines += [
        "Examples and seconds are counted up to the first refuting example, before shrinking, "
        "for the first claim in the member's `refuted_by` list that refuted it (median over the "
        "seeds that refuted it); *fewest* is the median of the smallest count among all the "
        "claims that refuted it. *Refuted by* counts, for each claim of `refuted_by`, the seeds "
        "on which it refuted the member. *Conventional* is the fixed-input `assert_allclose` "
        "test: *caught* with the reason, or *passes*.",
        "",
        "| member | dtype, level | refuted | examples to 1st | fewest | seconds to 1st "
        "| refuted by (seeds) | conventional |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m, s in zip(members, summaries):
        claims = ", ".join(f"`{c}` {k}" for c, k in s["by_claim"].items() if k) or "none"
        base = baseline.get(m.name, "")
        lines.append(
            f"| {m.name} | {m.dtype}, {m.level} | {len(s['refuted_seeds'])}/{n_seeds} "
            f"| {_fmt(s['first_examples'], '.0f')} | {_fmt(s['fewest_examples'], '.0f')} "
            f"| {_fmt(s['first_seconds'], '.2f')} | {claims} "
            f"| {'caught: ' + base.replace('|', '/') if base else 'passes'} |")
    problems = [p for s in summaries for p in s["problems"]]
    if problems:
        lines += ["", "Errors while checking zoo members:", ""] + [f"- {p}" for p in problems]
    if alarms:
        lines += ["", f"**False alarms** on correct targets at the stable level, `{profile}` "
                  "profile (a refuted or erroring claim on a correct target is a false alarm, "
                  "or a bug of the framework):", "",
                  "| target | seeds | dtypes | claim runs | refuted or error | examples |",
                  "|---|---|---|---|---|---|"]
        by_target: dict[str, list[dict[str, Any]]] = {}
        for run in alarms:
            by_target.setdefault(run["target"], []).append(run)
        details = []
        for target, runs in by_target.items():
            done = [r for r in runs if "skipped" not in r and "crashed" not in r]
            details += [f"- {target} seed {r['seed']}: the run {r['crashed']} (no verdicts)"
                        for r in runs if "crashed" in r]
            if not done:
                why = runs[0].get("skipped") or "every run failed"
                lines.append(f"| {target} | skipped: {why} | | | | |")
                continue
            bad = [(r["seed"], b) for r in done for b in r["bad"]]
            lines.append(f"| {target} | {','.join(str(r['seed']) for r in done)} "
                         f"| {runs[0].get('dtypes', '')} | {sum(r['runs'] for r in done)} "
                         f"| {len(bad)} | {sum(r['examples'] for r in done)} |")
            details += [f"- {target} seed {seed} {b['dtype']} `{b['claim']}` {b['verdict']}: "
                        f"{b['problem']}" for seed, b in bad]
        if details:
            lines += ["", *details]
    return "\n".join(lines) + "\n"


def _parse_seeds(spec: str) -> list[int]:
    seeds: list[int] = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        low, _, high = item.partition("-")
        seeds += range(int(low), int(high or low) + 1)
    return seeds


def _parse_alarm_targets(spec: str) -> list[tuple[str, int]]:
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, count = item.partition(":")
        out.append((name, int(count or 1)))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="1", help="seeds for the zoo runs, e.g. 1,2,3 or 1-20")
    p.add_argument("--members", default="", help="comma-separated zoo members (default: all)")
    p.add_argument("--profile", default="default")
    p.add_argument("--max-examples", type=int, default=None,
                   help="override the profile's examples per claim (smoke runs)")
    p.add_argument("--alarm-targets", default="",
                   help="correct targets and seed counts for the false-alarm runs, e.g. "
                        "numpy:10,scipy:3,torch:3,jax:3 (seeds 1..count; default: none)")
    p.add_argument("--alarm-dtypes", default="float64,float32,float16,bfloat16")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--out", default="-", help="Markdown file whose detection part is rewritten")
    p.add_argument("--raw", help="append each job's result to this JSON-lines file")
    p.add_argument("--resume", action="store_true",
                   help="reuse the results already in --raw (after an interrupted run)")
    a = p.parse_args(argv)
    seeds = _parse_seeds(a.seeds)
    members = [_BY_NAME[n] for n in a.members.split(",")] if a.members else list(ZOO)
    alarm_targets = _parse_alarm_targets(a.alarm_targets)
    args = list(sys.argv[1:] if argv is None else argv)
    for flag, takes_value in (("--raw", True), ("--resume", False)):  # not part of the result
        if flag in args:
            i = args.index(flag)
            del args[i:i + 1 + takes_value]
    command = "python benchmarks/detection.py " + " ".join(args)
    jobs = [("zoo", (m.name, s), a.profile, a.max_examples) for m in members for s in seeds]
    jobs += [("alarm", (t, s, a.alarm_dtypes.split(",")), a.profile, a.max_examples)
             for t, count in alarm_targets for s in range(1, count + 1)]
    saved: dict[str, dict[str, Any]] = {}
    if a.raw and a.resume and os.path.exists(a.raw):
        with open(a.raw, encoding="utf-8") as f:
            for line in f:
                entry = json.loads(line)
                saved[entry["job"]] = entry["result"]
    todo = [job for job in jobs if _job_key(job) not in saved]

    def keep(job: tuple[str, Any, str, int | None], result: dict[str, Any]) -> None:
        saved[_job_key(job)] = result
        done = len(saved) - (len(jobs) - len(todo))
        what = f"{job[1][0]} seed {job[1][1]}"
        print(f"[{done}/{len(todo)}] {job[0]} {what} ({time.perf_counter() - start:.0f} s)",
              file=sys.stderr, flush=True)
        if a.raw:
            with open(a.raw, "a", encoding="utf-8") as f:
                f.write(json.dumps({"job": _job_key(job), "result": result}) + "\n")

    provenance()  # the state of the checkout when the run starts
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    run_jobs(_job, todo, jobs=a.jobs, failed=_failed, done=keep)
    wall = time.perf_counter() - start
    results = [saved[_job_key(job)] for job in jobs]
    load_end = os.getloadavg()[0]
    zoo_runs = [r for r in results if "member" in r]
    alarms = [{**r, "dtypes": a.alarm_dtypes} for r in results if "target" in r]
    summaries = [summarise_member(m, [r for r in zoo_runs if r["member"] == m.name])
                 for m in members]
    baseline = {m.name: conventional_test(m) for m in members}
    text = render(members, summaries, baseline, alarms, command=command.strip(),
                  profile=a.profile, seeds=seeds, wall=wall, load=(load_start, load_end),
                  reused=len(jobs) - len(todo))
    if a.out == "-":
        sys.stdout.write(text)
    else:
        splice(a.out, "detection", text, "Detection power")
    missed = any(len(s["refuted_seeds"]) < len(seeds) for s in summaries)
    alarmed = any(r.get("bad") or r.get("crashed") for r in alarms)
    return 1 if missed or alarmed else 0


if __name__ == "__main__":
    import detection  # main from the module, so that its jobs pickle as detection._job

    sys.exit(detection.main())
