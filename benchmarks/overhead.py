"""Pool overhead per claim: what running claims in supervised worker processes costs, against the
old way of running them in the caller's process.

The same small claims (by default every stable-level claim of the numpy target in float64, with
the ``quick`` profile and seed 1) run three ways in one process, each in a fresh directory (no
example database to replay):

* in-process: ``engine.search.run_claim`` called here on an environment from
  ``engine.search.make_env``, unsupervised (how the kit ran claims before its engine);
* ``check(..., jobs=1)``: through the scheduler, in one supervised worker process that loads the
  target and runs the claims one after the other;
* ``check(..., jobs=2)``: the same with two workers.

The three take turns, ``--rounds`` times in a rotating order, and the fastest round of each counts
(on a shared machine the least disturbed one; every round is listed). Wall time, and CPU time of
this process and of its worker processes (collected when they are stopped). Worker start-up is
timed apart: a fresh worker answering a trivial call (``CallJob``), and a fresh worker loading
the target and probing it (the ``Describe`` that begins every check); median of ``--startups``.

    python benchmarks/overhead.py --out docs/benchmarks.md
    python benchmarks/overhead.py --rounds 1              # printed

``--out FILE`` rewrites only the part of FILE between ``<!-- overhead:begin -->`` and
``<!-- overhead:end -->``. Exit status 1 if the three ways did not run the same claims to the
same verdicts with the same number of examples.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from softmax_oracle import check
from softmax_oracle.engine.jobs import CallJob, Describe, here
from softmax_oracle.engine.profiles import get_profile
from softmax_oracle.engine.scheduler import Scheduler
from softmax_oracle.engine.search import applicable, make_env, run_claim
from softmax_oracle.oracle.dtypes import get_dtype
from softmax_oracle.spec.claims import select
from softmax_oracle.targets import load_target

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _shared import produced_by, provenance, splice, versions

__all__ = ["Timing", "in_process", "startup", "supervised"]


@dataclass(frozen=True)
class Timing:
    """One run of the claims: wall and CPU seconds (this process and its reaped children), the
    seconds the claims' searches took by their own clocks, and what each claim came to."""

    wall: float
    cpu: float
    searching: float
    outcomes: tuple[tuple[str, str, int], ...]  # (claim, verdict, examples), in claim order


@contextlib.contextmanager
def _measured() -> Iterator[dict[str, float]]:
    """Wall and CPU seconds of the block, the CPU of the child processes it reaped included."""
    got: dict[str, float] = {}
    t0, c0 = time.perf_counter(), os.times()
    with tempfile.TemporaryDirectory(prefix="softmax-oracle-overhead-") as tmp:
        old = os.getcwd()
        os.chdir(tmp)  # a fresh directory: no example database to replay
        try:
            yield got
        finally:
            os.chdir(old)
            c1 = os.times()
            got["wall"] = time.perf_counter() - t0
            got["cpu"] = sum(getattr(c1, f) - getattr(c0, f) for f in
                             ("user", "system", "children_user", "children_system"))


def in_process(target: str, dtype: str, profile: str, seed: int) -> Timing:
    """The claims run here by ``run_claim``, as the kit ran them before its engine."""
    prof, dt = get_profile(profile), get_dtype(dtype)
    with _measured() as got:
        tgt = load_target(target)
        env, _ = make_env(tgt, dt)
        claims = [c for c in select(None, level="stable", kinds=("numerical", "contract"))
                  if not applicable(c, tgt)]
        results = []
        for claim in claims:
            env.rng_seed = seed
            results.append(run_claim(claim, env, target_name=target, level="stable",
                                     profile=prof, seed=seed))
    return Timing(got["wall"], got["cpu"], sum(r.seconds for r in results),
                  tuple((r.claim_id, r.verdict, r.examples) for r in results))


def supervised(target: str, dtype: str, profile: str, seed: int, jobs: int) -> Timing:
    """The same claims through ``check``: the scheduler and ``jobs`` supervised workers."""
    with _measured() as got:
        report = check(target, dtypes=[dtype], level="stable", profile=profile, seed=seed,
                       jobs=jobs)
    ran = [r for r in report.results if r.verdict != "not_applicable"]
    return Timing(got["wall"], got["cpu"], sum(r.seconds for r in ran),
                  tuple((r.claim_id, r.verdict, r.examples) for r in ran))


def startup(job: CallJob | Describe, times: int) -> list[float]:
    """Wall seconds of ``job`` on a fresh worker process, ``times`` times (each a new run)."""
    seconds = []
    for _ in range(times):
        with Scheduler("local", jobs=1) as scheduler:
            start = time.perf_counter()
            (answer,) = scheduler.run([job])
            seconds.append(time.perf_counter() - start)
        if getattr(answer, "error", "") or getattr(answer, "why", ""):
            raise RuntimeError(f"the start-up probe failed: {answer}")
    return seconds


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def render(best: dict[str, Timing], rounds: dict[str, list[Timing]], calls: Sequence[float],
           loads: Sequence[float], *, command: str, wall: float, load: tuple[float, float],
           target: str, dtype: str, profile: str, seed: int, same: bool) -> str:
    base = best["in-process"]
    n = len(base.outcomes)
    examples = sum(e for _, _, e in base.outcomes)
    names = {"in-process": "in-process (`run_claim`, unsupervised)",
             "jobs=1": "`check(jobs=1)`: one worker", "jobs=2": "`check(jobs=2)`: two workers"}
    lines = [
        produced_by(command, wall, versions(("numpy", "hypothesis", "mpmath", "gmpy2")), load,
                    "so the times are inflated"),
        "",
        f"The same {n} claims ({target} target, {dtype}, stable level, `{profile}` profile, seed "
        f"{seed}: {examples} examples"
        + (", the same verdicts and example counts each way" if same
           else "; **the three ways did not agree on the verdicts or examples**")
        + f"), fastest of {len(rounds['in-process'])} rounds. Overhead is the difference from "
        f"in-process, divided by the {n} claims.",
        "",
        "| run | wall s | CPU s | wall per claim ms | overhead per claim, wall ms "
        "| overhead per claim, CPU ms | wall ratio | CPU ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, t in best.items():
        lines.append(
            f"| {names[key]} | {t.wall:.2f} | {t.cpu:.2f} | {_ms(t.wall / n)} "
            + ("| – | – " if key == "in-process" else
               f"| {(t.wall - base.wall) * 1000 / n:+.0f} | {(t.cpu - base.cpu) * 1000 / n:+.0f} ")
            + f"| {t.wall / base.wall:.2f} | {t.cpu / base.cpu:.2f} |")
    one = best["jobs=1"]
    describe = statistics.median(loads)
    outside = one.wall - one.searching
    lines += [
        "",
        f"**Worker start-up:** a fresh worker process answering a trivial call and stopped: "
        f"{_ms(statistics.median(calls))} ms (median of {len(calls)}: "
        f"{', '.join(_ms(s) for s in calls)}); a fresh worker loading the {target} target and "
        f"probing it for flushed subnormals, as every check begins: {_ms(describe)} ms (median "
        f"of {len(loads)}: {', '.join(_ms(s) for s in loads)}).",
        "",
        f"**Where `check(jobs=1)`'s extra time goes:** by the claims' own clocks their searches "
        f"took {one.searching:.2f} s in the worker and {base.searching:.2f} s in-process (in the "
        f"worker each call of the target also reports to the supervisor). The rest of its wall "
        f"time, {outside:.2f} s, went to starting the worker, loading the target, the messages "
        f"and the results: {outside * 1000 / n:.0f} ms per claim.",
        "",
        "Every round (wall s, in the order run): "
        + "; ".join(f"{key} {', '.join(f'{t.wall:.2f}' for t in ts)}"
                    for key, ts in rounds.items()) + ".",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", default="numpy")
    p.add_argument("--dtype", default="float64")
    p.add_argument("--profile", default="quick")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2, help="runs of each way (the fastest counts)")
    p.add_argument("--startups", type=int, default=5, help="timed worker start-ups of each kind")
    p.add_argument("--out", default="-", help="Markdown file whose overhead part is rewritten")
    a = p.parse_args(argv)
    command = "python benchmarks/overhead.py " + " ".join(
        sys.argv[1:] if argv is None else list(argv))
    provenance()  # the state of the checkout when the run starts
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    calls = startup(CallJob(**here(), function=abs, argument=0), a.startups)
    loads = startup(Describe(**here(), target=a.target, dtypes=(a.dtype,)), a.startups)
    ways: dict[str, Callable[[], Timing]] = {
        "in-process": lambda: in_process(a.target, a.dtype, a.profile, a.seed),
        "jobs=1": lambda: supervised(a.target, a.dtype, a.profile, a.seed, 1),
        "jobs=2": lambda: supervised(a.target, a.dtype, a.profile, a.seed, 2),
    }
    rounds: dict[str, list[Timing]] = {key: [] for key in ways}
    keys = list(ways)
    for r in range(max(1, a.rounds)):
        for key in keys[r % 3:] + keys[:r % 3]:
            rounds[key].append(ways[key]())
            print(f"round {r + 1}: {key} {rounds[key][-1].wall:.2f} s", file=sys.stderr,
                  flush=True)
    best = {key: min(ts, key=lambda t: t.wall) for key, ts in rounds.items()}
    same = len({t.outcomes for ts in rounds.values() for t in ts}) == 1
    text = render(best, rounds, calls, loads, command=command.strip(),
                  wall=time.perf_counter() - start, load=(load_start, os.getloadavg()[0]),
                  target=a.target, dtype=a.dtype, profile=a.profile, seed=a.seed, same=same)
    if a.out == "-":
        sys.stdout.write(text)
    else:
        splice(a.out, "overhead", text, "Pool overhead per claim")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
