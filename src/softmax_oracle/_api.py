"""The Python API: ``check`` and ``assert_conforms``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

from softmax_oracle.engine.results import CheckReport, ClaimResult
from softmax_oracle.oracle.dtypes import DType

__all__ = ["ConformanceError", "assert_conforms", "check"]


def check(target: str | Any, *, dtypes: Sequence[str | DType] = ("float64", "float32"),
          level: str = "stable", claims: str | None = None, profile: str = "default",
          seed: int | None = None, max_examples: int | None = None, timeout: float = 30.0,
          on_result: Callable[[ClaimResult, int, int], None] | None = None, jobs: int = 1,
          executor: str | Executor | None = None,
          kinds: Sequence[str] | None = None) -> CheckReport:
    """Check a target against the specification and return the result records.

    ``target`` is a built-in name (``numpy``, ``naive``, ``seed``, ``reference``, ``scipy``,
    ``torch``, ``jax``, ``optax``), a ``package.module[:attribute]`` string, a path to a ``.py``
    file, or any object with some of the protocol functions. ``claims`` is a comma-separated list
    of claim ids or glob patterns (``softmax.*``); ``kinds`` keeps only claims of these kinds
    (numerical, contract, convention, mathematics). ``level="accurate"`` adds the
    condition-scaled claims. The target runs in supervised worker processes (``jobs`` of them at
    once; on a Dask cluster with ``executor="dask://HOST:PORT"``): a crash, exit or hang of the
    target is an "error" verdict for the claim it happened in, with the input. ``timeout`` is the
    deadline of each call of the target, in seconds. Raises ``TargetError`` if the target cannot
    be loaded, ``ValueError`` for a wrong argument.
    """
    from softmax_oracle.engine.check import run_check

    return run_check(target, dtypes=dtypes, level=level, claims=claims, profile=profile,
                     seed=seed, max_examples=max_examples, timeout=timeout, on_result=on_result,
                     jobs=jobs, executor=executor, kinds=kinds)


class ConformanceError(AssertionError):
    """Raised by ``assert_conforms``; its message lists every refuted claim."""


def assert_conforms(target: str | Any, **kwargs: Any) -> CheckReport:
    """One line for a user's test suite: raise ``ConformanceError`` unless every applicable claim
    holds. Accepts the keyword arguments of ``check``."""
    from softmax_oracle.report.text import format_refutation

    report = check(target, **kwargs)
    if not report.ok:
        bad = [r for r in report.results if not r.as_expected]
        body = "\n\n".join(format_refutation(r) for r in bad)
        raise ConformanceError(f"{len(bad)} claim(s) refuted for {report.target}:\n\n{body}")
    return report
