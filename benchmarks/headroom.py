"""Measure the headroom of the tolerance model: the worst |error| / budget seen per target,
function and dtype over several seeds, on correct implementations (stable level), and list
every refutation (which at the stable level would be a false alarm or a framework bug).

    python benchmarks/headroom.py --targets numpy,scipy,torch,jax,optax --seeds 1,2,3 \
        --dtypes float64,float32,float16,bfloat16 --out docs/headroom.md

Each (target, seed) runs in a fresh supervised worker process of the kit's scheduler, as many at
a time as there are cores by default.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _shared import run_jobs


def _one(args: tuple[str, int, str, str]) -> dict:
    target, seed, dtypes, profile = args
    from softmax_oracle import check
    from softmax_oracle.targets import TargetError

    try:
        report = check(target, dtypes=dtypes.split(","), level="stable", profile=profile,
                       seed=seed)
    except TargetError as e:
        return {"target": target, "seed": seed, "skipped": str(e)}
    return {"target": target, "seed": seed, "seconds": report.seconds,
            "results": [r.to_json() for r in report.results]}


def _failed(args: tuple[str, int, str, str], why: str) -> dict:
    """The record of a run whose process raised or died: no maxima, listed as a failure."""
    return {"target": args[0], "seed": args[1], "failed": why.splitlines()[0]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", default="numpy,scipy,torch,jax,optax")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--dtypes", default="float64,float32,float16,bfloat16")
    p.add_argument("--profile", default="default")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", default="-")
    p.add_argument("--raw", help="also write the raw per-claim maxima as JSON")
    a = p.parse_args()
    jobs = [(t, int(s), a.dtypes, a.profile) for t in a.targets.split(",")
            for s in a.seeds.split(",")]
    start = time.perf_counter()
    runs = run_jobs(_one, jobs, jobs=a.jobs, failed=_failed)
    wall = time.perf_counter() - start
    worst: dict[tuple[str, str, str], tuple[float, str]] = defaultdict(lambda: (0.0, ""))
    refuted, skipped, failures, examples = [], [], [], 0
    for run in runs:
        if "failed" in run:
            failures.append(f"{run['target']} seed {run['seed']}: {run['failed']}")
            continue
        if "skipped" in run:
            skipped.append(f"{run['target']}: {run['skipped']}")
            continue
        for r in run["results"]:
            examples += r["examples"]
            if r["verdict"] == "refuted":
                refuted.append((run["target"], run["seed"], r["dtype"], r["claim_id"],
                                (r["shrunk"] or {}).get("problem", "")))
            if r["verdict"] != "verified":
                continue
            fn = r["claim_id"].split(".")[0]
            key = (fn, run["target"], r["dtype"])
            ratio = float(r["max_ratio"])
            if ratio >= worst[key][0]:
                worst[key] = (ratio, r["claim_id"])
    targets = a.targets.split(",")
    dtypes = a.dtypes.split(",")
    fns = sorted({k[0] for k in worst})
    from softmax_oracle.engine.search import versions

    vers = ", ".join(f"{k} {v}" for k, v in versions().items())
    command = "python benchmarks/headroom.py " + " ".join(sys.argv[1:])
    header = ["# Headroom of the tolerance model on real libraries", "", "Produced by", "",
              "```sh", command, "```", "",
              f"with {vers}; {os.cpu_count()} cores (load average at the end "
              f"{os.getloadavg()[0]:.1f}: other work may have shared the machine, so the wall "
              f"time is not a benchmark). Every claim of the stable level ran on every target, "
              f"dtype and seed; the cells give the worst |error| / budget among the claims of "
              f"each function.", ""]
    lines = [*header, f"Worst |error| / budget over seeds {a.seeds}, profile `{a.profile}`, "
             f"stable level "
             f"({examples} examples, {wall:.0f} s wall on {os.cpu_count()} cores). "
             f"<= 1 means within budget; each cell names the claim that produced it.", ""]
    for dt in dtypes:
        lines += [f"**{dt}**", "", "| function | " + " | ".join(targets) + " |",
                  "|---|" + "---|" * len(targets)]
        for fn in fns:
            cells = []
            for t in targets:
                ratio, cid = worst.get((fn, t, dt), (None, ""))
                cells.append("n/a" if ratio is None else f"{ratio:.2g} ({cid.split('.', 1)[1]})")
            lines.append(f"| {fn} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append(f"Refutations at the stable level: {len(refuted)}")
    for t, s, dt, cid, prob in refuted:
        lines.append(f"- {t} seed {s} {dt} {cid}: {prob.splitlines()[0] if prob else ''}")
    for s in skipped:
        lines.append(f"- skipped {s}")
    for s in failures:
        lines.append(f"- failed {s}")
    text = "\n".join(lines) + "\n"
    if a.out == "-":
        sys.stdout.write(text)
    else:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(text)
    if a.raw:
        with open(a.raw, "w", encoding="utf-8") as f:
            json.dump(runs, f)
    return 1 if refuted or failures else 0


if __name__ == "__main__":
    import headroom  # main from the module, so that its jobs pickle as headroom._one

    sys.exit(headroom.main())
