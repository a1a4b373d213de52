"""The messages between the kit and its workers: what to run, and what a target is.

Everything here pickles, so that a job can go to a worker process on this machine or to a Dask
worker elsewhere. A target travels as what it was given as (a built-in name, a module name, a
path) or as the pickled object.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

from softmax_oracle.engine.profiles import Profile
from softmax_oracle.targets import LossSupport

__all__ = ["CallFailed", "CallJob", "ClaimJob", "Describe", "TargetInfo", "estimate_cost", "here"]

#: Targets whose calls cost more than numpy's (dispatch, compilation).
_SLOW_TARGETS = ("torch", "jax", "optax")


def estimate_cost(claim: Any, target_name: str) -> float:
    """A rough estimate of a claim's run time, to start the longest jobs first: its examples,
    twelve times for the seed audit's mpmath searches, four times for a claim expected to be
    refuted (its shrinking), three times on a framework."""
    w = claim.examples * (12.0 if claim.kind == "mathematics" else 1.0)
    w *= 4.0 if claim.expect == "refuted" else 1.0
    slow = target_name in _SLOW_TARGETS or target_name.startswith("torch-")
    return w * (3.0 if slow else 1.0)


def here() -> dict[str, Any]:
    """The ``cwd`` and ``sys_path`` fields of a job made in this process."""
    return {"cwd": os.getcwd(), "sys_path": tuple(sys.path)}


@dataclass(frozen=True)
class _Where:
    """Where relative paths resolve (a target file, the example database) and what imports."""

    cwd: str
    sys_path: tuple[str, ...]


@dataclass(frozen=True)
class Describe(_Where):
    """Load the target; say what it provides and, for each dtype, whether its backend flushes
    subnormals to zero."""

    target: Any = None
    dtypes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClaimJob(_Where):
    """Search for a counterexample to one claim on one target and dtype."""

    target: Any = None
    target_name: str = ""
    claim_id: str = ""
    dtype: str = "float64"
    level: str = "stable"
    profile: Profile = field(default_factory=lambda: Profile("default", 60, 48, 6))
    seed: int = 0
    max_examples: int | None = None
    flushes: bool = False
    timeout: float = 30.0  # per call of the target, enforced by the supervisor
    cost: float = 1.0  # a rough estimate of its run time, to start the longest first


@dataclass(frozen=True)
class CallJob(_Where):
    """Any picklable ``function(argument)`` run in a supervised worker (the benchmarks' jobs):
    its return value, or a crash, hang or memory blow-up reported as such. ``key`` groups jobs
    that may share a worker process (None: a fresh process for each job)."""

    function: Any = None
    argument: Any = None
    timeout: float = 0.0  # the whole call's deadline (0: none)
    key: Any = None
    cost: float = 1.0

    @property
    def target(self) -> Any:
        return self.key


@dataclass(frozen=True)
class CallFailed:
    """A ``CallJob`` that did not return: it raised, or its process died or was killed."""

    why: str  # "raised ...", "died ...", "timeout: ..."


@dataclass(frozen=True)
class TargetInfo:
    """What the kit needs to know of a target without loading it in its own process."""

    name: str = ""
    version: str = ""
    functions: tuple[str, ...] = ()
    dtypes: tuple[str, ...] | None = None
    is_reference: bool = False
    flushes: dict[str, bool] = field(default_factory=dict)
    error: str = ""  # why the target could not be loaded
    loss: LossSupport = field(default_factory=LossSupport)

    @classmethod
    def of(cls, target: Any, flushes: dict[str, bool]) -> TargetInfo:
        return cls(name=target.name, version=target.version, functions=tuple(target.functions),
                   dtypes=target.dtypes, is_reference=target.is_reference, flushes=flushes,
                   loss=target.loss)

    @classmethod
    def failed(cls, error: str) -> TargetInfo:
        return cls(error=error)

    def has(self, *names: str) -> bool:
        return all(n in self.functions for n in names)

    def supports(self, dtype: str) -> bool:
        return self.dtypes is None or dtype in self.dtypes
