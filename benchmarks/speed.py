"""Speed: the oracle's throughput, vocabulary-sized rows, `check numpy` per profile, and what
parallel runs gain on this machine. Each measurement runs in a fresh process, one at a time.

    python benchmarks/speed.py --out docs/benchmarks.md
    python benchmarks/speed.py --only reference,profiles     # some parts, printed

Parts (``--only``): ``reference`` (elements per second of the oracle before and after the fast
references, with mpmath's gmpy2 backend and without it), ``vocab`` (seconds per example of the
reference claims on rows of 32,768 and 262,144 logits), ``profiles`` (wall time of
``softmax-oracle check numpy`` per profile, median over seeds), ``parallel`` (``check --jobs 1``
against ``--jobs 2``, ``report --jobs 1`` against ``--jobs 2``, and the test suite without and
with ``pytest -n auto``; the two runs of each pair one after the other, so that their ratio is
measured under the same conditions). ``--out FILE`` rewrites only the part of FILE between
``<!-- speed:begin -->`` and ``<!-- speed:end -->``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from _shared import produced_by, provenance, splice, versions  # noqa: E402

PARTS = ("reference", "vocab", "profiles", "parallel")
CLI = [sys.executable, "-m", "softmax_oracle.cli"]
#: The claims that meet vocabulary-sized rows under the thorough profile.
VOCAB_CLAIMS = ("softmax.matches_reference,log_softmax.matches_reference,"
                "logsumexp.matches_reference,cross_entropy.matches_reference,"
                "cross_entropy_grad.any_targets")


def _run(cmd: Sequence[str], *, cwd: str | None = None, env: dict[str, str] | None = None,
         ok: Sequence[int] = (0,)) -> float:
    """Wall seconds of one command, in a fresh directory unless ``cwd`` is given."""
    with tempfile.TemporaryDirectory(prefix="softmax-oracle-speed-") as tmp:
        start = time.perf_counter()
        proc = subprocess.run(list(cmd), cwd=cwd or tmp, capture_output=True, text=True,
                              env={**os.environ, **(env or {})})
        seconds = time.perf_counter() - start
    if proc.returncode not in ok:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{tail}")
    print(f"  {seconds:7.1f} s  {' '.join(cmd[2:] if cmd[:2] == CLI[:2] else cmd)}",
          file=sys.stderr, flush=True)
    return seconds


def _bench_reference(args: Sequence[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "out.json")
        _run([sys.executable, os.path.join(HERE, "bench_reference.py"), *args, "--json", path],
             env=env)
        with open(path, encoding="utf-8") as f:
            return json.load(f)


def part_reference() -> list[str]:
    args = ["--sizes", "8,64,512,4096", "--dtypes", "float64,float32", "--rows", "4"]
    gmpy = _bench_reference(args)
    plain = _bench_reference(args, env={"MPMATH_NOGMPY": "1"})
    lines = [
        "### Reference throughput",
        "",
        "Elements per second of what a reference claim does per example (the reference of a "
        "row, the budgets of softmax, log-softmax, log-sum-exp and the cross-entropy gradient, "
        "and the comparison), `before` being the all-mpmath oracle (kept in "
        "`benchmarks/bench_reference.py`) and `after` the current one, timed in the same process "
        f"(`python benchmarks/bench_reference.py {' '.join(args)}`). mpmath's backend was "
        f"{gmpy['backend']} (gmpy2), then {plain['backend']} (`MPMATH_NOGMPY=1`), in a second "
        "process right after.",
        "",
        "| dtype | row length | before el/s | after el/s | after / before | before, no gmpy2 "
        "| after, no gmpy2 | gmpy2 speed-up of before | worst error/budget |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for g, p in zip(gmpy["rows"], plain["rows"]):
        lines.append(
            f"| {g['dtype']} | {g['n']} | {g['before']:,.0f} | {g['after']:,.0f} | "
            f"{g['after'] / g['before']:.1f} | {p['before']:,.0f} | {p['after']:,.0f} | "
            f"{g['before'] / p['before']:.2f} | {g['worst_after']:.3g} |")
    return lines


def part_vocab() -> list[str]:
    args = ["--vocab", "32768,262144", "--dtypes", "float64,float32,bfloat16", "--rows", "3",
            "--exact-up-to", "32768"]
    got = _bench_reference(args)
    lines = [
        "### Vocabulary-sized rows",
        "",
        "Seconds per example of each reference claim's check on one row of the numpy target "
        "(references, budgets and comparison; nothing cached between claims), median of 3 rows "
        "(N(0, 3) logits with boosted tokens; 30% masked; one value but 32), one-hot targets "
        f"(`python benchmarks/bench_reference.py {' '.join(args)}`). *mpmath only*: the same "
        "checks with the enclosures switched off (`exact_only()`), as every element was "
        "evaluated before the claims used them; timed for the shorter rows only. The `thorough` "
        "profile draws such rows (32,000 to 262,144 logits) for these claims in about one "
        "example in 16.",
        "",
        "| dtype | row length | claim | s/example (median) | largest | mpmath only | "
        "worst error/budget |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in got["rows"]:
        exact = r.get("exact_seconds")
        shown = "" if exact is None or exact != exact else f"{exact:.3g}"
        lines.append(f"| {r['dtype']} | {r['n']:,} | `{r['claim']}` | "
                     f"{r['median_seconds']:.3g} | {r['max_seconds']:.3g} | {shown} | "
                     f"{r['worst_ratio']:.2g} |")
    return lines


def part_profiles(repeats: int) -> list[str]:
    lines = [
        "### `check numpy` per profile",
        "",
        f"Wall time of one `softmax-oracle check numpy` process (imports included, a fresh "
        f"directory each time so no example database is replayed), median over seeds "
        f"1..{repeats} (one run, seed 1, for `thorough`).",
        "",
        "| command | median s | runs (s) |",
        "|---|---|---|",
    ]
    cases = [(p, "float64", None) for p in ("quick", "default", "ci")]
    cases += [("default", "float64,float32,float16,bfloat16", None),
              ("thorough", "float64", None), ("thorough", "float32", VOCAB_CLAIMS)]
    for profile, dtypes, claims in cases:
        n = 1 if profile == "thorough" else repeats
        times = []
        for seed in range(1, n + 1):
            cmd = [*CLI, "check", "numpy", "--dtype", dtypes, "--profile", profile, "--seed",
                   str(seed), "-q"] + (["--claim", claims] if claims else [])
            times.append(_run(cmd))
        shown = (f"check numpy --dtype {dtypes} --profile {profile}"
                 + (" --claim <the five reference claims>" if claims else ""))
        lines.append(f"| `{shown}` | {statistics.median(times):.1f} | "
                     f"{', '.join(f'{t:.1f}' for t in times)} |")
    return lines


def part_parallel(repeats: int) -> list[str]:
    cores = os.cpu_count() or 1
    lines = [
        "### Parallel runs",
        "",
        f"Each pair ran back to back on the {cores} cores; the speed-up is the ratio of the two "
        f"medians over {repeats} alternating runs (one run each for the report and the suite).",
        "",
        "| what | 1 process (s) | parallel (s) | speed-up |",
        "|---|---|---|---|",
    ]
    check = [*CLI, "check", "numpy", "--dtype", "float64,float32,float16,bfloat16",
             "--profile", "default", "--seed", "1", "-q"]
    one, two = [], []
    for _ in range(repeats):
        one.append(_run([*check, "--jobs", "1"]))
        two.append(_run([*check, "--jobs", "2"]))
    lines.append(f"| `check numpy --dtype float64,float32,float16,bfloat16 --jobs 1` vs "
                 f"`--jobs 2` | {statistics.median(one):.1f} | {statistics.median(two):.1f} | "
                 f"{statistics.median(one) / statistics.median(two):.2f} |")
    report = [*CLI, "report", "numpy", "scipy", "torch", "--profile", "quick", "--seed", "1",
              "-q", "--out", "r"]
    r1, r2 = _run([*report, "--jobs", "1"]), _run([*report, "--jobs", "2"])
    lines.append(f"| `report numpy scipy torch --profile quick --jobs 1` vs `--jobs 2` | "
                 f"{r1:.1f} | {r2:.1f} | {r1 / r2:.2f} |")
    suite = [sys.executable, "-m", "pytest", "-q", "-x"]
    s1 = _run([*suite, "-p", "no:xdist"], cwd=ROOT)
    s2 = _run([*suite, "-n", "auto"], cwd=ROOT)
    lines.append(f"| the test suite: `python -m pytest` vs `python -m pytest -n auto` | "
                 f"{s1:.1f} | {s2:.1f} | {s1 / s2:.2f} |")
    return lines


def _versions() -> str:
    return versions(("numpy", "hypothesis", "mpmath", "gmpy2", "scipy", "torch"))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(PARTS), help=f"parts: {', '.join(PARTS)}")
    p.add_argument("--repeats", type=int, default=3, help="seeds or runs per timed command")
    p.add_argument("--out", default="-", help="Markdown file whose speed part is rewritten")
    a = p.parse_args(argv)
    parts = [s.strip() for s in a.only.split(",") if s.strip()]
    unknown = [s for s in parts if s not in PARTS]
    if unknown:
        p.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    args = list(sys.argv[1:] if argv is None else argv)
    command = "python benchmarks/speed.py " + " ".join(args)
    provenance()
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    body: list[str] = []
    for part in parts:
        print(f"{part} ...", file=sys.stderr, flush=True)
        body += ["", *(part_reference() if part == "reference" else part_vocab()
                       if part == "vocab" else part_profiles(a.repeats) if part == "profiles"
                       else part_parallel(a.repeats))]
    head = produced_by(command, time.perf_counter() - start, _versions(),
                       (load_start, os.getloadavg()[0]),
                       "so absolute times are inflated; the ratios of pairs run back to back "
                       "much less so")
    text = "\n".join([head, *body]) + "\n"
    if a.out == "-":
        sys.stdout.write(text)
    else:
        splice(a.out, "speed", text, "Speed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
