"""Compiling targets against numpy: `softmax-oracle check` on a framework that compiles per shape
(jax by default) and on numpy, with the same claims, dtypes and seed, in one run; where the time
goes, and the memory of the worker processes over a long run.

    python benchmarks/compiling.py --out docs/benchmarks.md
    python benchmarks/compiling.py --only profile,short      # some parts, printed

Parts (``--only``):

* ``profile``: the short case's claims run by ``run_claim`` in a fresh supervised worker per
  target (the kit's scheduler), timing the target's calls and counting their distinct
  signatures (function, shapes, dtypes, axis) and, for JAX, its compilations and their seconds
  by stage (tracing, lowering, XLA's compiler; from ``jax.monitoring``);
* ``padding``: how often the jax target's softmax gives other bits for a row padded with -inf
  to a power of two, per dtype and row length; the first call on a new shape, jitted and eager;
* ``short``: ``softmax-oracle check T --dtype float32 --claim 'softmax.*' --seed 3 --jobs 1`` for
  numpy and the target, back to back, ``--rounds`` times in alternating order; for a JAX target
  also a first run and a rerun in one directory (the kit's compilation cache filled, then used);
* ``long``: every stable claim in ``--long-dtypes``, numpy then the target, once.

Each ``check`` runs as its own process in a fresh directory (no example database to replay).
The resident memory of its worker processes is sampled four times a second; the peak of the
largest process of the run comes from the kernel (``wait4``). ``--out FILE`` rewrites only the
part of FILE between ``<!-- compiling:begin -->`` and ``<!-- compiling:end -->``.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _shared import produced_by, provenance, run_jobs, splice, versions  # noqa: E402

PARTS = ("profile", "padding", "short", "long")
CLI = [sys.executable, "-m", "softmax_oracle.cli"]
SHORT = ("float32", "softmax.*", 3)  # dtypes, claims, seed: the command the issue timed
#: JAX's compilation stages, as ``jax.monitoring`` names their durations.
STAGES = {"/jax/core/compile/jaxpr_trace_duration": "tracing",
          "/jax/core/compile/jaxpr_to_mlir_module_duration": "lowering",
          "/jax/core/compile/backend_compile_duration": "XLA"}


# ------------------------------------------------------------------------------ where it goes


def profile_claims(job: tuple[str, str, str, int]) -> dict[str, Any]:
    """Run in a worker: the claims of one target, timed. (target, dtype, claims, seed)."""
    from softmax_oracle.engine.profiles import get_profile
    from softmax_oracle.engine.search import applicable, make_env, run_claim
    from softmax_oracle.oracle.dtypes import get_dtype
    from softmax_oracle.spec.claims import select
    from softmax_oracle.targets import load_target

    target, dtype, claims, seed = job
    start = time.perf_counter()
    tgt = load_target(target)
    stages: collections.Counter[str] = collections.Counter()
    counts: collections.Counter[str] = collections.Counter()
    if "jax" in sys.modules:
        import jax

        def listener(event: str, seconds: float, **kwargs: Any) -> None:
            if event in STAGES:
                stages[STAGES[event]] += seconds
                counts[STAGES[event]] += 1

        jax.monitoring.register_event_duration_secs_listener(listener)
    inside = [0.0]
    signatures: set[tuple[Any, ...]] = set()

    def timed(name: str, fn: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            axis = kwargs.get("axis")
            signatures.add((name, tuple((a.shape, a.dtype.str) for a in args),
                            None if axis is None else axis % args[0].ndim))
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                inside[0] += time.perf_counter() - t
        return call

    tgt = dataclasses.replace(tgt, functions={k: timed(k, f) for k, f in tgt.functions.items()})
    env, _ = make_env(tgt, get_dtype(dtype))
    loaded = time.perf_counter() - start
    chosen = [c for c in select(claims, level="stable", kinds=("numerical", "contract"))
              if not applicable(c, tgt)]
    stages.clear()
    counts.clear()
    calls = 0
    with tempfile.TemporaryDirectory(prefix="softmax-oracle-compiling-") as tmp:
        os.chdir(tmp)  # a fresh directory: no example database to replay
        start = time.perf_counter()
        for claim in chosen:
            env.rng_seed = seed
            run_claim(claim, env, target_name=target, level="stable",
                      profile=get_profile("default"), seed=seed)
        searching = time.perf_counter() - start
        calls = env.calls
    return {"target": target, "claims": len(chosen), "loaded": loaded, "searching": searching,
            "inside": inside[0], "calls": calls, "signatures": len(signatures),
            "compilations": counts["XLA"], "stages": dict(stages),
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def part_profile(target: str) -> list[str]:
    dtype, claims, seed = SHORT
    jobs = [(t, dtype, claims, seed) for t in ("numpy", target)]
    got = run_jobs(profile_claims, jobs, jobs=1,
                   failed=lambda job, why: {"target": job[0], "failed": why})
    for g in got:
        if "failed" in g:
            raise RuntimeError(f"profiling {g['target']} failed: {g['failed']}")
    base = got[0]
    lines = [
        "### Where the time goes",
        "",
        f"The {base['claims']} claims `{claims}` in {dtype}, seed {seed}, default profile, run "
        f"by `run_claim` in one fresh worker process per target (loading the target and "
        f"probing it not counted). *In the target* is the time inside the target's functions "
        f"(conversion, dispatch, compilation, computing); a *signature* is a distinct "
        f"(function, shapes, dtypes, axis). JAX's compilation stages are its own measurements "
        f"(`jax.monitoring`).",
        "",
        "| target | claims s | in the target s | calls | signatures | compilations "
        "| compiling s (tracing + lowering + XLA) | outside the target s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for g in got:
        st = g["stages"]
        compiling = (f"{sum(st.values()):.2f} ({st.get('tracing', 0):.2f} + "
                     f"{st.get('lowering', 0):.2f} + {st.get('XLA', 0):.2f})"
                     if st else "–")
        lines.append(f"| {g['target']} | {g['searching']:.2f} | {g['inside']:.2f} | {g['calls']} "
                     f"| {g['signatures']} | {g['compilations'] or '–'} | {compiling} "
                     f"| {g['searching'] - g['inside']:.2f} | {g['peak_mb']:.0f} |")
    other = got[1]
    if other["compilations"]:
        compiling = sum(other["stages"].values())
        rest = other["inside"] - compiling
        lines += ["", f"{other['target']}: {compiling:.2f} s of its {other['inside']:.2f} s in "
                  f"the target went to {other['compilations']} compilations "
                  f"({compiling / other['compilations'] * 1000:.0f} ms each); the other "
                  f"{rest:.2f} s to {other['calls']} calls "
                  f"({rest / max(1, other['calls']) * 1e6:.0f} µs each: conversion, dispatch, "
                  f"computing)."]
    return lines


# ------------------------------------------------------------------------------ padding, eager


#: Row lengths of the padding part: up to 32 one block of XLA's reductions, beyond it several.
PAD_LENGTHS = (5, 17, 31, 33, 37, 100, 200)
PAD_ROWS = 20


def padding_effect(job: None) -> dict[str, Any]:
    """Run in a worker: for each dtype and row length n, how many of PAD_ROWS random rows get
    other bits from the jax target's softmax when padded with -inf to the next power of two
    (the padded entries cut off again); and the first call on a new shape, jitted (the target)
    and eager (``jax.nn.softmax`` on a JAX array, op by op)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from softmax_oracle.oracle.dtypes import DTYPES
    from softmax_oracle.targets import fw_jax

    rng = np.random.default_rng(1)
    differ: dict[str, dict[int, int]] = {}
    for dt in DTYPES.values():
        differ[dt.name] = {}
        for n in PAD_LENGTHS:
            z = (rng.standard_normal((PAD_ROWS, n)) * 3).astype(dt.np)
            width = 1 << n.bit_length()
            padded = np.full((PAD_ROWS, width), -np.inf, dt.np)
            padded[:, :n] = z
            same = fw_jax.softmax(z) == fw_jax.softmax(padded)[:, :n]
            differ[dt.name][n] = int(np.sum(~same.all(axis=1)))
    first: dict[str, float] = {}
    for name, call in (("jit", lambda z: fw_jax.softmax(z)),
                       ("eager", lambda z: np.asarray(jax.nn.softmax(jnp.asarray(z))))):
        start = time.perf_counter()
        for k in range(10):
            call(rng.standard_normal((3, 40 + k + (0 if name == "jit" else 20))))
        first[name] = (time.perf_counter() - start) / 10
    return {"differ": differ, "first": first}


def part_padding() -> list[str]:
    (got,) = run_jobs(padding_effect, [None], jobs=1, failed=lambda job, why: {"failed": why})
    if "failed" in got:
        raise RuntimeError(f"the padding part failed: {got['failed']}")
    lines = [
        "### Padding rows to bucket lengths changes the result",
        "",
        f"{PAD_ROWS} rows of N(0, 3) logits of each length n through the jax target's softmax, "
        f"then padded with `-inf` to the next power of two, the padded entries cut off again: "
        f"how many rows got other bits. In exact arithmetic nothing changes (exp(-inf) = 0), "
        f"but XLA reduces a row of up to 32 entries in one block and a longer one in blocks of "
        f"32 placed by the row's length, so padding changes the order of summation.",
        "",
        "| dtype | " + " | ".join(f"n = {n}" for n in PAD_LENGTHS) + " |",
        "|---|" + "---|" * len(PAD_LENGTHS),
    ]
    for name, row in got["differ"].items():
        lines.append(f"| {name} | " + " | ".join(str(row[n]) for n in PAD_LENGTHS) + " |")
    first = got["first"]
    lines += ["", f"The first call on a new shape (softmax of 3 rows, mean of 10 shapes): "
              f"{first['jit'] * 1000:.0f} ms jitted (the target), {first['eager'] * 1000:.0f} ms "
              f"eager (`jax.nn.softmax` op by op, each primitive compiled on its own)."]
    return lines


# ------------------------------------------------------------------------------ whole checks


@dataclasses.dataclass(frozen=True)
class Run:
    """One ``check`` process: wall seconds, the kernel's peak RSS of its largest process, and
    the sampled RSS of its worker processes (seconds since start, MB)."""

    wall: float
    peak_mb: float
    samples: tuple[tuple[float, float], ...]
    summary: str

    @property
    def worker_peak(self) -> float:
        return max((mb for _, mb in self.samples), default=0.0)

    def at(self, fraction: float) -> float:
        """Worker RSS (MB) at that fraction of the run (the last sample before it; at 1.0 the
        last one while workers ran)."""
        before = [mb for t, mb in self.samples if t <= fraction * self.wall]
        return before[-1] if before else 0.0


def _children_rss(pid: int) -> float:
    """Resident MB of the processes whose parent is ``pid`` (the check's workers)."""
    total = 0
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
            if ppid != pid:
                continue
            with open(f"/proc/{entry}/statm", "rb") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue
    return total / 2**20


#: The environment a user gets: the kit's own compilation cache, none configured by hand.
_OWN_CACHE = ("JAX_COMPILATION_CACHE_DIR", "SOFTMAX_ORACLE_COMPILE_CACHE",
              "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "JAX_COMPILATION_CACHE_MAX_SIZE")


def run_check(target: str, dtypes: str, claims: str | None, seed: int,
              cwd: str | None = None) -> Run:
    """One ``check`` in ``cwd``, by default a fresh directory: no example database and, for a
    JAX target, an empty compilation cache (the kit keeps it in ``.hypothesis/`` there)."""
    cmd = [*CLI, "check", target, "--dtype", dtypes, "--seed", str(seed), "--jobs", "1", "-q"]
    cmd += ["--claim", claims] if claims else []
    env = {k: v for k, v in os.environ.items() if k not in _OWN_CACHE}
    with tempfile.TemporaryDirectory(prefix="softmax-oracle-compiling-") as tmp, \
            tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd or tmp, stdout=out, stderr=subprocess.STDOUT,
                                env=env)
        samples = []
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            workers = _children_rss(proc.pid)
            if workers:  # none before the first worker starts and after the last is stopped
                samples.append((time.perf_counter() - start, workers))
            time.sleep(0.25)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    shown = " ".join(cmd[3:])
    if proc.returncode not in (0, 1):
        tail = "\n".join(text.splitlines()[-15:])
        raise RuntimeError(f"{shown} exited with {proc.returncode}:\n{tail}")
    print(f"  {wall:7.1f} s  {usage.ru_maxrss / 1024:6.0f} MB  {shown}", file=sys.stderr,
          flush=True)
    summary = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "")
    return Run(wall, usage.ru_maxrss / 1024, tuple(samples), summary)


def _command(target: str, dtypes: str, claims: str | None, seed: int) -> str:
    return (f"check {target} --dtype {dtypes}" + (f" --claim '{claims}'" if claims else "")
            + f" --seed {seed} --jobs 1")


def part_short(target: str, rounds: int) -> list[str]:
    dtypes, claims, seed = SHORT
    cached = target in ("jax", "optax")  # JAX's persistent compilation cache applies
    rows = []
    for i in range(rounds):
        order = ("numpy", target) if i % 2 == 0 else (target, "numpy")
        runs = {t: run_check(t, dtypes, claims, seed) for t in order}
        if cached:  # a first run and a rerun in one directory
            with tempfile.TemporaryDirectory(prefix="softmax-oracle-rerun-") as here:
                runs["cold"] = run_check(target, dtypes, claims, seed, here)
                runs["warm"] = run_check(target, dtypes, claims, seed, here)
        rows.append(runs)
    ratios = [r[target].wall / r["numpy"].wall for r in rows]
    lines = [
        f"### `{_command(target, dtypes, claims, seed)}` against numpy",
        "",
        ("One round" if rounds == 1 else f"{rounds} rounds") + f", the runs of a round back "
        f"to back (numpy and {target} in alternating order); each ratio is of two runs of one "
        f"round. Peak: the largest process of the run (the kernel's count)."
        + (f" Every run is a first run, in a fresh directory. Then {target} twice more in one "
           f"directory: the first run fills the compilation cache the kit's workers keep "
           f"(`.hypothesis/softmax-oracle-jax`, JAX's persistent cache), the second, a rerun of "
           f"the same command, loads every executable from it."
           if cached else ""),
        "",
        f"| round | numpy s | {target} s | ratio | numpy peak MB | {target} peak MB"
        + (" | first run s | rerun s | rerun ratio |" if cached else " |"),
        "|---|---|---|---|---|---|" + ("---|---|---|" if cached else ""),
    ]
    for i, r in enumerate(rows, 1):
        a, b = r["numpy"], r[target]
        lines.append(f"| {i} | {a.wall:.1f} | {b.wall:.1f} | {b.wall / a.wall:.2f} "
                     f"| {a.peak_mb:.0f} | {b.peak_mb:.0f} |"
                     + (f" {r['cold'].wall:.1f} | {r['warm'].wall:.1f} "
                        f"| {r['warm'].wall / a.wall:.2f} |" if cached else ""))
    lines += ["", f"Median ratio {statistics.median(ratios):.2f}. Last lines of the runs: "
              f"numpy *{rows[-1]['numpy'].summary}*; {target} *{rows[-1][target].summary}*."]
    return lines


def part_long(target: str, dtypes: str, seed: int) -> list[str]:
    cached = target in ("jax", "optax")
    with tempfile.TemporaryDirectory(prefix="softmax-oracle-rerun-") as here:
        runs = {"numpy": run_check("numpy", dtypes, None, seed),
                target: run_check(target, dtypes, None, seed, here)}
        if cached:
            runs[f"{target}, rerun"] = run_check(target, dtypes, None, seed, here)
    a, b = runs["numpy"], runs[target]
    quarters = (0.25, 0.5, 0.75, 1.0)
    lines = [
        f"### `{_command(target, dtypes, None, seed)}` against numpy",
        "",
        "Every stable claim, numpy then the target"
        + (", then the target again in the same directory (a rerun: its compiled programs "
           "loaded from the kit's compilation cache)" if cached else "")
        + ". The worker processes' resident memory at each quarter of the run (sampled four "
        "times a second) shows whether it grows with the run.",
        "",
        "| target | wall s | ratio | peak MB | workers at 25% / 50% / 75% / end, MB |",
        "|---|---|---|---|---|",
    ]
    for name, r in runs.items():
        lines.append(f"| {name} | {r.wall:.0f} | {r.wall / a.wall:.2f} | {r.peak_mb:.0f} | "
                     + " / ".join(f"{r.at(q):.0f}" for q in quarters) + " |")
    lines += ["", f"Last lines of the runs: numpy *{a.summary}*; {target} *{b.summary}*."]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", default="jax", help="the compiling target set against numpy")
    p.add_argument("--only", default=",".join(PARTS), help=f"parts: {', '.join(PARTS)}")
    p.add_argument("--rounds", type=int, default=1, help="rounds of the short case")
    p.add_argument("--long-dtypes", default="float32", help="dtypes of the long case")
    p.add_argument("--long-seed", type=int, default=1)
    p.add_argument("--out", default="-", help="Markdown file whose compiling part is rewritten")
    a = p.parse_args(argv)
    parts = [s.strip() for s in a.only.split(",") if s.strip()]
    unknown = [s for s in parts if s not in PARTS]
    if unknown:
        p.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    command = "python benchmarks/compiling.py " + " ".join(
        sys.argv[1:] if argv is None else list(argv))
    provenance()  # the state of the checkout when the run starts
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    body: list[str] = []
    for part in parts:
        print(f"{part} ...", file=sys.stderr, flush=True)
        body += ["", *(part_profile(a.target) if part == "profile"
                       else part_padding() if part == "padding"
                       else part_short(a.target, a.rounds) if part == "short"
                       else part_long(a.target, a.long_dtypes, a.long_seed))]
    head = produced_by(command, time.perf_counter() - start,
                       versions(("numpy", "hypothesis", "mpmath", a.target)),
                       (load_start, os.getloadavg()[0]),
                       "so absolute times are inflated; the ratios of runs back to back much "
                       "less so")
    text = "\n".join([head, *body]) + "\n"
    if a.out == "-":
        sys.stdout.write(text)
    else:
        splice(a.out, "compiling", text, "Compiling targets against numpy")
    return 0


if __name__ == "__main__":
    import compiling  # main from the module, so that its jobs pickle as compiling.profile_claims

    sys.exit(compiling.main())
