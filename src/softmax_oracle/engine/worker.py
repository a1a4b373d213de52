"""The worker process: where the implementation under test is imported and called.

The supervisor (``engine.supervisor``) starts ``python -m softmax_oracle.engine.worker IN OUT`` with
two pipe descriptors and sends it requests; the worker answers each with one reply and, while it
runs a claim, reports what it is doing, so that the supervisor can give a verdict with the input
if the target kills the process, and enforce the per-call deadline from outside:

    supervisor -> worker   ("describe", Describe) | ("claim", ClaimJob) | ("call", CallJob)
    worker -> supervisor   ("example", pickled input)   before each example is checked
                           ("call", function name)      a call of the target begins
                           ("return", None)             it ended
                           ("done", reply)              the request's answer

The target's own output cannot corrupt the channel: standard output is sent to standard error
(which the supervisor keeps in a file, to quote when the process dies), and standard input is
empty. The worker leaves its parent's process group and dies with its parent (Linux), so that
Ctrl-C reaches only the supervisor and nothing is left running when it goes.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import os
import pickle
import signal
import sys
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from softmax_oracle.engine.jobs import ClaimJob, Describe, TargetInfo
from softmax_oracle.engine.search import env_for, probe_flush, run_claim
from softmax_oracle.engine.supervisor import LOADING
from softmax_oracle.oracle.dtypes import get_dtype
from softmax_oracle.spec.claims import get_claim
from softmax_oracle.targets import TargetError, load_target

__all__ = ["main"]


class _Channel:
    """The worker's side: tell the supervisor what is happening (``targets.call.Monitor``)."""

    def __init__(self, out: Connection) -> None:
        self.out = out

    def example(self, snapshot: dict[str, Any]) -> None:
        self.out.send_bytes(b"E" + pickle.dumps(snapshot, protocol=pickle.HIGHEST_PROTOCOL))

    def call(self, fname: str) -> None:
        self.out.send_bytes(b"C" + fname.encode())

    def returned(self) -> None:
        self.out.send_bytes(b"R")

    def done(self, reply: Any) -> None:
        self.out.send_bytes(b"D" + pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))


class _Worker:
    def __init__(self, channel: _Channel) -> None:
        self.channel = channel
        self.targets: dict[bytes, Any] = {}  # pickled spec -> Target
        self.envs: dict[tuple[bytes, str], Any] = {}

    def target(self, spec: Any) -> Any:
        key = pickle.dumps(spec)
        if key not in self.targets:
            self.channel.call(LOADING)  # importing it is bounded too
            try:
                self.targets[key] = load_target(spec)
            finally:
                self.channel.returned()
        return self.targets[key]

    def describe(self, req: Describe) -> TargetInfo:
        try:
            tgt = self.target(req.target)
        except TargetError as e:
            return TargetInfo.failed(str(e))
        flushes = {}
        for name in req.dtypes:
            if tgt.supports(name):
                flushes[name] = probe_flush(tgt, get_dtype(name), monitor=self.channel)
        return TargetInfo.of(tgt, flushes)

    def claim(self, job: ClaimJob) -> Any:
        tgt = self.target(job.target)
        key = (pickle.dumps(job.target), job.dtype)
        if key not in self.envs:
            self.envs[key] = env_for(tgt, job.dtype, flushes=job.flushes, timeout=0.0)
        env = self.envs[key]
        env.monitor = self.channel
        env.rng_seed = job.seed
        return run_claim(get_claim(job.claim_id), env, target_name=job.target_name,
                         level=job.level, profile=job.profile, seed=job.seed,
                         max_examples=job.max_examples)


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the thread that started it ends (prctl
    PR_SET_PDEATHSIG), so that no worker outlives its supervisor, however that one ends."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when to stop
    inbox = Connection(int(argv[0]), writable=False)
    channel = _Channel(Connection(int(argv[1]), readable=False))
    # Nothing the target prints may reach the channel: fd 1 goes where fd 2 goes.
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    faulthandler.enable()  # a crash leaves the Python stack in the stderr file
    worker = _Worker(channel)
    while True:
        try:
            kind, cwd, path, blob = inbox.recv()
        except (EOFError, OSError):
            os._exit(0)
        start = time.perf_counter()
        reply: Any
        try:
            os.chdir(cwd)
            sys.path[:] = [p for p in path if p not in sys.path] + sys.path
            try:
                payload = pickle.loads(blob)
            except Exception as e:
                what = ("the job's function" if kind == "call" else "the target")
                hint = ("define it in an importable module" if kind == "call"
                        else "give it by module name or file path")
                raise TargetError(f"{what} could not be unpickled in the worker process "
                                  f"({type(e).__name__}: {e}); {hint}") from None
            if kind == "describe":
                reply = worker.describe(payload)
            elif kind == "call":
                channel.call(getattr(payload.function, "__name__", "the job"))
                reply = ("returned", payload.function(payload.argument))
            else:
                reply = worker.claim(payload)
        except TargetError as e:
            reply = TargetInfo.failed(str(e)) if kind == "describe" else (
                "failed", f"TargetError: {e}", "", time.perf_counter() - start)
        except BaseException as e:  # the kit's own bug, or a stray SystemExit
            tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
            reply = ("failed", f"{type(e).__name__}: {e}", tb, time.perf_counter() - start)
        try:
            channel.done(reply)
        except (BrokenPipeError, OSError):
            os._exit(0)


if __name__ == "__main__":
    main()
