"""Wall time of `softmax-oracle check TARGET` per profile (median over repeats, one process per
run so that imports and caches count as a user sees them).

    python benchmarks/bench_check.py --target numpy --dtype float64 --profiles quick,default,ci \
        --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", default="numpy")
    p.add_argument("--dtype", default="float64")
    p.add_argument("--level", default="stable")
    p.add_argument("--profiles", default="quick,default,ci")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}")
    for profile in a.profiles.split(","):
        times = []
        for i in range(a.repeats):
            with tempfile.TemporaryDirectory() as tmp:  # no example database carried over
                cmd = [sys.executable, "-m", "softmax_oracle.cli", "check", a.target, "--dtype",
                       a.dtype, "--level", a.level, "--profile", profile, "--seed", str(i + 1),
                       "-q"]
                start = time.perf_counter()
                proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
                times.append(time.perf_counter() - start)
                if proc.returncode not in (0, 1):
                    print(proc.stdout + proc.stderr, file=sys.stderr)
                    return 2
        print(f"check {a.target} --dtype {a.dtype} --level {a.level} --profile {profile}: "
              f"median {statistics.median(times):.1f} s over {a.repeats} runs "
              f"({', '.join(f'{t:.1f}' for t in times)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
