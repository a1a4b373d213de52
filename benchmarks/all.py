"""Every benchmark behind docs/benchmarks.md, one after the other (they would share the cores
otherwise), each rewriting its own part of the file:

    python benchmarks/all.py                  # about an hour on 2 cores
    python benchmarks/all.py --out other.md   # elsewhere

1. ``detection.py``: the zoo over 5 seeds, false alarms of numpy, scipy, torch and jax over
   many seeds, and the conventional baseline;
2. ``mutation.py``: mutation score of the claims on the numpy target;
3. ``speed.py``: reference throughput, vocabulary-sized rows, ``check`` per profile, parallel
   speed-ups;
4. ``overhead.py``: what running each claim in a supervised worker process costs, against
   running it in the caller's process, and the workers' start-up time;
5. ``compiling.py``: ``check`` on JAX against numpy (same claims, dtype and seed): where the
   time goes, the ratio, and the workers' memory over a long run.

Exit status: non-zero if any of them reported a problem (a zoo member escaped, a false alarm,
a mutant the driver could not run, claims whose verdicts changed in a worker process), after all
have run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

STEPS = {
    "detection": ["detection.py", "--seeds", "1-5",
                  "--alarm-targets", "numpy:30,scipy:20,torch:20,jax:10"],
    "mutation": ["mutation.py", "--profile", "ci", "--confirm-dtypes", "float16,bfloat16"],
    "speed": ["speed.py"],
    "overhead": ["overhead.py"],
    "compiling": ["compiling.py"],
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join("docs", "benchmarks.md"),
                   help="relative to the repository's root (default: docs/benchmarks.md)")
    p.add_argument("--only", default=",".join(STEPS), help=f"steps: {', '.join(STEPS)}")
    a = p.parse_args()
    status = 0
    for name in a.only.split(","):
        script, *args = STEPS[name]
        # Relative paths, from the root: the commands are quoted in the results.
        cmd = [sys.executable, os.path.join("benchmarks", script), *args, "--out", a.out]
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        rc = subprocess.run(cmd, cwd=ROOT).returncode
        print(f"== {name}: exit {rc} after {time.perf_counter() - start:.0f} s", flush=True)
        status = status or rc
    return status


if __name__ == "__main__":
    sys.exit(main())
