"""Supervising the worker processes the implementation under test runs in.

Nothing of the target runs in the kit's own process: it is imported and called only in a worker
(``engine.worker``), started with ``subprocess`` and watched from here. Whatever the target does,
death by a signal, ``os._exit``, ``abort``, a call that never returns (even one that swallows
every exception), unbounded memory, the request ends with an answer: the worker's reply, or a
``Death`` that says what happened, during which call, on which input, with the end of what the
process wrote to stderr. The deadline of each call and the memory limit are enforced here, from
outside, so no target code can swallow them.

Each thread that runs jobs keeps its own workers, one per target (``execute``), and reuses them
from job to job; a worker that died is replaced by a fresh one for the next job.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["COMPILE_CACHE_DIR", "Death", "Interrupted", "WorkerProcess", "compile_cache_env",
           "default_memory_limit", "kill_run", "thread_workers"]

#: How often the supervisor looks at a worker that has said nothing (seconds).
_TICK = 0.05
#: The "call" a worker reports while it imports the target, and how long that may take: a
#: framework's first import can take tens of seconds on a loaded machine.
LOADING = "(loading the target)"
LOAD_TIMEOUT = 300.0


class Interrupted(Exception):
    """The run was asked to stop (Ctrl-C, SIGTERM, or a cancelled job)."""


@dataclass(frozen=True)
class Death:
    """How a worker ended without answering."""

    what: str  # e.g. "died (signal 11, SIGSEGV)", "exited with status 3"
    call: str  # the protocol function it was in, or ""
    example: bytes  # the pickled input being checked, or b""
    stderr: str  # the end of what the process wrote to stderr

    def problem(self) -> str:
        where = (" while loading the target" if self.call == LOADING
                 else f" during a call of {self.call}" if self.call else "")
        return f"the target's process {self.what}{where}"

    def input(self) -> dict[str, Any] | None:
        if not self.example:
            return None
        try:
            return dict(pickle.loads(self.example))
        except Exception:
            return None


#: Where the workers keep JAX's persistent compilation cache, next to the kit's example database.
COMPILE_CACHE_DIR = os.path.join(".hypothesis", "softmax-oracle-jax")
#: Its size, beyond which JAX evicts the least recently used executables (a few kB each).
COMPILE_CACHE_BYTES = 256 * 2**20


def compile_cache_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a worker, with JAX's persistent compilation cache turned on: a compiling target
    spends most of a first check compiling one program per shape, and a rerun then loads them
    from disk (docs/benchmarks.md, "Compiling targets against numpy"). A loaded executable is
    the one compiled, so the results are the same bits. Only the kit's workers get it, not the
    caller's process. Left alone when the environment already configures the cache
    (``JAX_COMPILATION_CACHE_DIR``); off with ``SOFTMAX_ORACLE_COMPILE_CACHE=0``, elsewhere with
    ``SOFTMAX_ORACLE_COMPILE_CACHE=DIR``; off without ``filelock``, which JAX needs to bound the
    cache's size."""
    setting = env.get("SOFTMAX_ORACLE_COMPILE_CACHE", "").strip()
    if setting.lower() in ("0", "off", "no", "false") or "JAX_COMPILATION_CACHE_DIR" in env:
        return env
    if importlib.util.find_spec("filelock") is None:
        return env
    env["JAX_COMPILATION_CACHE_DIR"] = os.path.abspath(setting or COMPILE_CACHE_DIR)
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    env.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(COMPILE_CACHE_BYTES))
    return env


def default_memory_limit(slots: int = 1) -> int:
    """Bytes of resident memory one worker may use: three quarters of the machine's memory
    shared by the workers that run at once, at least 2 GiB. ``SOFTMAX_ORACLE_MEMORY_LIMIT``
    (in GiB) overrides it."""
    env = os.environ.get("SOFTMAX_ORACLE_MEMORY_LIMIT")
    if env:
        return int(float(env) * 2**30)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 16 * 2**30
    return max(2 * 2**30, int(0.75 * total / max(1, slots)))


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


_LIVE: set[WorkerProcess] = set()
_LIVE_LOCK = threading.Lock()


def kill_run(run_id: str) -> None:
    """Kill the workers of one run (on interrupt, and at its end)."""
    with _LIVE_LOCK:
        workers = [w for w in _LIVE if w.run_id == run_id]
    for w in workers:
        w.kill()


class WorkerProcess:
    """One worker process for one target, started on first use."""

    def __init__(self, memory_limit: int | None = None, run_id: str = "",
                 env: dict[str, str] | None = None) -> None:
        self.memory_limit = memory_limit or default_memory_limit()
        self.run_id = run_id
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self._to: Connection | None = None
        self._from: Connection | None = None
        self._stderr: Any = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _start(self) -> None:
        down_r, down_w = os.pipe()
        up_r, up_w = os.pipe()
        # kept open for the worker's life, closed in _close
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        env = compile_cache_env(dict(os.environ if self.env is None else self.env))
        env.setdefault("PYTHONFAULTHANDLER", "1")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "softmax_oracle.engine.worker", str(down_r), str(up_w)],
                pass_fds=(down_r, up_w), stdin=subprocess.DEVNULL, stdout=self._stderr,
                stderr=self._stderr, start_new_session=True, env=env, close_fds=True)
        finally:
            os.close(down_r)
            os.close(up_w)
        self._to = Connection(down_w, readable=False)
        self._from = Connection(up_r, writable=False)
        with _LIVE_LOCK:
            _LIVE.add(self)

    def kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)  # the worker and anything it started
            with contextlib.suppress(OSError):
                proc.kill()
        if proc is not None:
            with contextlib.suppress(Exception):
                proc.wait(timeout=5)
        self._close()

    def _close(self) -> None:
        for conn in (self._to, self._from):
            if conn is not None:
                with contextlib.suppress(OSError):
                    conn.close()
        self._to = self._from = None
        if self._stderr is not None:
            with contextlib.suppress(OSError):
                self._stderr.close()
            self._stderr = None
        with _LIVE_LOCK:
            _LIVE.discard(self)

    def _stderr_tail(self, limit: int = 20000) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - limit))
            text = self._stderr.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        return text if size <= limit else "..." + text

    def request(self, kind: str, payload: Any, *, timeout: float,
                should_stop: Callable[[], bool] = lambda: False) -> Any:
        """Send one request and wait for its reply; a ``Death`` if the worker does not give one.
        ``timeout`` bounds each call of the target (0: no bound)."""
        # Where the job runs travels first: the worker must set its sys.path before it can
        # unpickle a target object defined in a module found there.
        data = pickle.dumps((kind, payload.cwd, payload.sys_path,
                             pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)),
                            protocol=pickle.HIGHEST_PROTOCOL)
        if not self.alive:
            self._close()
            self._start()
        assert self._to is not None and self._from is not None and self.proc is not None
        example, call, call_start = b"", "", 0.0
        try:
            self._to.send_bytes(data)
        except OSError:
            return self._death("exited before it could take the request", "", b"")
        last_memory_check = 0.0
        while True:
            try:
                ready = self._from.poll(_TICK)
            except (OSError, EOFError):
                ready = True
            if ready:
                try:
                    msg = self._from.recv_bytes()
                except (EOFError, OSError):
                    return self._death(None, call, example)
                tag = msg[:1]
                if tag == b"E":
                    example = msg[1:]
                elif tag == b"C":
                    call, call_start = msg[1:].decode(), time.monotonic()
                elif tag == b"R":
                    call, call_start = "", 0.0
                elif tag == b"D":
                    return pickle.loads(msg[1:])
                continue
            now = time.monotonic()
            if self.proc.poll() is not None:
                return self._death(None, call, example)
            if should_stop():
                self.kill()
                raise Interrupted()
            limit = max(timeout, LOAD_TIMEOUT) if call == LOADING else timeout
            if limit > 0 and call_start and now - call_start > limit:
                self.kill()
                what = ("did not finish loading" if call == LOADING else "did not return")
                return self._death(f"{what} within {limit:g} s (killed: a hang?)", call,
                                   example)
            if now - last_memory_check > 0.25:
                last_memory_check = now
                rss = _rss(self.proc.pid)
                if rss > self.memory_limit:
                    self.kill()
                    return self._death(f"used {rss / 2**30:.1f} GiB of memory, more than the "
                                       f"limit of {self.memory_limit / 2**30:.1f} GiB (killed)",
                                       call, example)

    def _death(self, what: str | None, call: str, example: bytes) -> Death:
        if what is None:
            assert self.proc is not None
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            code = self.proc.returncode
            if code is None:
                self.kill()
                what = "stopped answering (killed)"
            elif code < 0:
                what = f"died ({_signal_name(-code)}, signal {-code})"
            else:
                what = f"exited with status {code}"
        tail = self._stderr_tail()
        self.kill()
        return Death(what, call, example, tail)


class Workers:
    """The workers of one thread: one per target, the least recently used closed beyond
    ``keep``."""

    def __init__(self, keep: int = 2) -> None:
        self.keep = keep
        self.by_key: OrderedDict[Any, WorkerProcess] = OrderedDict()

    def get(self, key: Any, memory_limit: int | None, run_id: str = "") -> WorkerProcess:
        if key in self.by_key:
            self.by_key.move_to_end(key)
            return self.by_key[key]
        while len(self.by_key) >= self.keep:
            _, old = self.by_key.popitem(last=False)
            old.kill()
        w = self.by_key[key] = WorkerProcess(memory_limit, run_id)
        return w


_THREAD = threading.local()


def thread_workers() -> Workers:
    """This thread's workers."""
    if not hasattr(_THREAD, "workers"):
        _THREAD.workers = Workers()
    return _THREAD.workers
