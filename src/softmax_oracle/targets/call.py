"""Calling the implementation under test safely, and the environment a claim's check runs in.

Every call goes through ``Env.call``: inputs are copied first and compared afterwards (mutation),
outputs are converted to numpy at the boundary and checked for shape, and an exception the target
raises becomes ``TargetRaised``, naming the target's own frame. Comparisons then happen in the
kit's own code, never in the library being judged.

An exception on a valid input is judged once per function, by the contract claim
``<function>.returns_on_valid_input``; every other claim skips such an example, so that one input
a framework refuses does not hide its numerics (``engine.search.run_claim`` counts the skips).
Hangs, crashes, ``sys.exit``, mutated inputs and wrong shapes stay refutations (or errors) of
whichever claim meets them.

A check also tells the ``Env`` whether its budgets said anything (``Env.note``): a budget at least
as large as the quantity it bounds (|sum - 1| <= 1.08 for a bfloat16 row of 64 equal logits) passes
any value of the right sign, and an example on which every budget was such is *uninformative*
(docs/tolerances.md, "Uninformative budgets").

Before each call the global random generators (``random``, numpy's legacy ``np.random`` and, when
imported, torch's) are seeded from the run's seed and a call counter: every call sees another
state, as it would in a user's program, so that a target which depends on them is caught by the
determinism and accuracy claims, yet a run is reproducible from its seed. (Hypothesis resets them
before every example, which would otherwise hide such a target.) JAX has no global generator.

In a worker process (the usual case) ``Env.monitor`` tells the supervisor when each call begins
and ends; the supervisor enforces the per-call deadline from outside. Run in-process, a call has
a deadline by SIGALRM in the main thread only (``TargetTimeout`` derives from BaseException, so
that a target's ``except Exception`` cannot swallow it).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import re
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import numpy as np

from softmax_oracle.oracle.compare import Refuted
from softmax_oracle.oracle.dtypes import DTYPES, DType
from softmax_oracle.oracle.reference import RowRef, row_refs
from softmax_oracle.oracle.tolerance import Model
from softmax_oracle.targets import PROTOCOL, Target

__all__ = ["Env", "Monitor", "TargetRaised", "TargetTimeout", "returns_claim",
           "seed_global_generators"]


class TargetTimeout(BaseException):
    """The target did not return within the per-call deadline (in-process runs only)."""


def returns_claim(fname: str) -> str:
    """The id of the claim that judges exceptions of a protocol function on valid inputs."""
    return f"{fname}.returns_on_valid_input"


class TargetRaised(Refuted):
    """The target raised an exception on a valid input (``problem`` says which, where).

    Judged by ``returns_claim(fname)`` alone: the other claims skip the example."""

    def __init__(self, fname: str, problem: str) -> None:
        super().__init__(problem)
        self.fname = fname

    def __reduce__(self) -> tuple[Any, ...]:
        return (TargetRaised, (self.fname, self.problem))


class Monitor(Protocol):
    """Who hears of each example and call (the worker's channel to its supervisor)."""

    def example(self, snapshot: dict[str, Any]) -> None: ...

    def call(self, fname: str) -> None: ...

    def returned(self) -> None: ...


def seed_global_generators(seed: int) -> None:
    """Seed the global generators a target may draw from (see the module docstring)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 -- the legacy global generator is the point
    torch = sys.modules.get("torch")
    if torch is not None:
        with contextlib.suppress(Exception):
            torch.manual_seed(seed)


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise TargetTimeout in the main thread after ``seconds`` (SIGALRM); no-op elsewhere."""
    if (seconds <= 0 or not hasattr(signal, "setitimer")
            or threading.current_thread() is not threading.main_thread()):
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise TargetTimeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _where(exc: BaseException) -> str:
    """The innermost frame of the target's code (the last one outside this module)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
    if not frames:
        return ""
    fr = frames[-1]
    return f" (at {fr.filename}:{fr.lineno}, in {fr.name})"


#: How frameworks say that they have no kernel for a dtype (PyTorch: '"softmax_lastdim_kernel_impl"
#: not implemented for 'Half''; numpy: "ufunc 'exp' not supported for the input types"; others:
#: "kernel ... is not registered", "does not support the dtype 'float16'").
_NO_KERNEL = re.compile(r"not implemented for|not supported|unsupported|not registered|"
                        r"does not support|no kernel|not available for")
#: The names a framework may give a dtype in such a message.
_DTYPE_WORDS = {"float64": r"float64|double|f64", "float32": r"float32|f32",
                "float16": r"(?<!b)float16|half|f16", "bfloat16": r"bfloat16|bf16"}


def _dtype_hint(exc: BaseException, env: Env) -> str:
    """Where an exception says the target has no kernel for the dtype under test: how to declare
    the dtypes it does support, so that the others are "not applicable" rather than refuted."""
    text = str(exc).lower()
    named = {d for d, words in _DTYPE_WORDS.items() if re.search(rf"\b(?:{words})\b", text)}
    this = env.dtype.name in named
    about_dtypes = this or (not named and re.search(r"\b(?:d?type|types)\b", text) is not None)
    if not ((_NO_KERNEL.search(text) and about_dtypes)
            or (isinstance(exc, (TypeError, NotImplementedError)) and this)):
        return ""
    declared = env.target.dtypes if env.target is not None else None
    others = [d for d in DTYPES if d != env.dtype.name and (declared is None or d in declared)]
    return (f"\n  Hint: if the target has no {env.dtype.name} kernels, declare the dtypes it "
            f"supports, e.g. __softmax_oracle__ = {{\"dtypes\": {json.dumps(others)}}} in its "
            f"module: the claims of the other dtypes are then not applicable, not refuted")


def _arg_names(fname: str) -> list[str]:
    sig = PROTOCOL[fname]
    inner = sig[sig.index("(") + 1: sig.index(")")]
    return [a.strip() for a in inner.split(",") if "=" not in a and a.strip() != "*"]


@dataclass
class Env:
    """What a claim's check may use: the target's functions (safely), the dtype, the tolerance
    models, and cached references."""

    target: Target | None
    dtype: DType
    stable: Model
    accurate: Model
    timeout: float = 30.0
    max_ulps: float = 0.0  # largest error in ulps seen in the current example (for reports)
    # In the current example: did some budget fall below the quantity it bounds (informative),
    # and was some budget at least the quantity it bounds (vacuous)? See ``note``.
    informative: bool = False
    vacuous: bool = False
    monitor: Monitor | None = None
    rng_seed: int = 0
    calls: int = 0
    _row_cache: dict[tuple[Any, ...], list[RowRef]] = field(default_factory=dict)

    @property
    def prec(self) -> int:
        return self.dtype.prec

    def start_example(self) -> None:
        """Forget what the previous example's checks noted."""
        self.max_ulps = 0.0
        self.informative = self.vacuous = False

    def note(self, informs: bool | None) -> None:
        """What one comparison's budgets said (``oracle.compare.informs``): True, some budget
        was below the magnitude of the quantity it bounds; False, none was but some was at
        least that magnitude (there any value between 0 and twice the quantity passes); None,
        nothing either way."""
        self.informative |= informs is True
        self.vacuous |= informs is False

    def bound(self, quantity: Any, budget: Any) -> None:
        """``note`` for one budget and the nonzero, finite quantity it bounds."""
        self.note(bool(budget < abs(quantity)))

    @property
    def uninformative(self) -> bool:
        """Every budget the current example's check noted was at least the quantity it bounds:
        the check could not have told a right value from one off by 100% or more."""
        return self.vacuous and not self.informative

    def rows(self, z: np.ndarray, axis: int) -> list[RowRef]:
        """References for every row of z along axis (cached for the current example)."""
        key = (id(z), z.shape, axis, z.tobytes())
        if key not in self._row_cache:
            self._row_cache.clear()
            self._row_cache[key] = row_refs(z, axis, self.prec)
        return self._row_cache[key]

    def call_raw(self, fname: str, *args: np.ndarray, **kwargs: Any) -> Any:
        """Call a protocol function with mutation, deadline and exception checks; raw output."""
        assert self.target is not None
        fn = self.target.functions[fname]
        saved = [np.array(a, copy=True) for a in args]
        self.calls += 1
        seed_global_generators(hash((self.rng_seed, self.calls)) % 2**63)
        if self.monitor is not None:
            self.monitor.call(fname)
        try:
            with _deadline(self.timeout if self.monitor is None else 0.0):
                out = fn(*args, **kwargs)
        except TargetTimeout:
            raise Refuted(f"{fname} did not return within {self.timeout:g} s (hang?)") from None
        except Refuted:
            raise
        except KeyboardInterrupt:
            raise
        except SystemExit as e:
            raise Refuted(f"{fname} called sys.exit({e.code!r}){_where(e)}") from None
        except BaseException as e:
            raise TargetRaised(fname, f"{fname} raised {type(e).__name__}: {e}{_where(e)}"
                                      f"{_dtype_hint(e, self)}") from None
        finally:
            if self.monitor is not None:
                self.monitor.returned()
        for name, before, after in zip(_arg_names(fname), saved, args):
            if not _same(before, after):
                changed = int(np.sum(~_equal_mask(before, after)))
                raise Refuted(f"{fname} mutated its input {name}: {changed} of {before.size} "
                              f"elements changed (inputs must be left as they were)")
        return out

    def call_loss(self, fname: str, *args: np.ndarray, options: dict[str, Any]) -> Any:
        """Call a loss-API function (``cross_entropy_loss``, ``cross_entropy_loss_grad``,
        ``linear_cross_entropy``) with keyword options; outputs as float64 arrays."""
        return _loss_outputs(self, fname, args, options)

    def call(self, fname: str, *args: np.ndarray, axis: int | None = None) -> Any:
        """Call and convert: an ndarray of float64 (exact widening), shape checked; for
        dense_grads a tuple of three."""
        kwargs = {} if axis is None else {"axis": axis}
        out = self.call_raw(fname, *args, **kwargs)
        if fname == "dense_grads":
            if not isinstance(out, (tuple, list)) or len(out) != 3:
                raise Refuted(f"dense_grads returned {type(out).__name__}, expected a tuple "
                              f"(dW, db, dx)")
            W, b, x = args[0], args[1], args[2]
            return tuple(_as_float(f"dense_grads()[{i}] ({nm})", o, shape)
                         for i, (nm, o, shape) in enumerate(zip(("dW", "db", "dx"), out,
                                                                (W.shape, b.shape, x.shape))))
        z = args[0]
        if fname in ("logsumexp", "cross_entropy"):
            expected = tuple(s for i, s in enumerate(z.shape) if i != cast(int, axis) % z.ndim)
        else:
            expected = z.shape
        return _as_float(f"{fname}(axis={axis})", out, expected)


def _loss_outputs(env: Env, fname: str, args: tuple[np.ndarray, ...],
                  options: dict[str, Any]) -> Any:
    """Call a loss-API function with its keyword options; check the weight was left alone and
    the shapes: the loss () or (B,) for reduction 'none', the gradient like z, and for
    ``linear_cross_entropy`` the tuple (loss, dx, dW, db)."""
    weight = options.get("weight")
    saved = None if weight is None else np.array(weight, copy=True)
    out = env.call_raw(fname, *args, **options)
    if saved is not None and weight is not None and not _same(saved, weight):
        changed = int(np.sum(~_equal_mask(saved, weight)))
        raise Refuted(f"{fname} mutated its input weight: {changed} of {saved.size} elements "
                      f"changed (inputs must be left as they were)")
    reduction = options.get("reduction", "mean")
    loss_shape = (args[0].shape[0],) if reduction == "none" else ()
    call = f"{fname}(reduction={reduction!r})"
    if fname == "cross_entropy_loss":
        return _as_float(call, out, loss_shape)
    if fname == "cross_entropy_loss_grad":
        return _as_float(call, out, args[0].shape)
    if not isinstance(out, (tuple, list)) or len(out) != 4:
        raise Refuted(f"{fname} returned {type(out).__name__}, expected a tuple "
                      f"(loss, dx, dW, db)")
    x, W, b = args[0], args[1], args[2]
    return tuple(_as_float(f"{call}[{i}] ({name})", o, shape) for i, (name, o, shape) in
                 enumerate(zip(("loss", "dx", "dW", "db"), out,
                               (loss_shape, x.shape, W.shape, b.shape))))


def _as_float(what: str, out: Any, shape: tuple[int, ...]) -> np.ndarray:
    if out is None:
        raise Refuted(f"{what} returned None, expected an array of shape {tuple(shape)} (is a "
                      f"return statement missing?)")
    try:
        arr = np.asarray(_to_numpy(out))
    except Exception as e:
        raise Refuted(f"{what} returned {type(out).__name__}, which is not an array "
                      f"({type(e).__name__}: {e})") from None
    if arr.dtype.kind not in "fiu" and arr.dtype.name != "bfloat16":
        raise Refuted(f"{what} returned an array of {arr.dtype}, not of numbers")
    if arr.shape != tuple(shape):
        raise Refuted(f"{what} returned shape {arr.shape}, expected {tuple(shape)}")
    return arr.astype(np.float64)


def _to_numpy(out: Any) -> Any:
    """Accept framework tensors too (anything with .numpy() / __array__)."""
    if hasattr(out, "detach"):
        out = out.detach()
    if hasattr(out, "cpu"):
        out = out.cpu()
    if hasattr(out, "numpy") and not isinstance(out, np.ndarray):
        with contextlib.suppress(Exception):
            return out.numpy()
    return out


def _equal_mask(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64 = np.asarray(a).astype(np.float64)
    b64 = np.asarray(b).astype(np.float64)
    return (a64 == b64) | (np.isnan(a64) & np.isnan(b64))


def _same(a: np.ndarray, b: Any) -> bool:
    b = np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return bool(np.all(_equal_mask(a, b)))


def finite_or_masked(z: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(z) | (z == -math.inf)))
