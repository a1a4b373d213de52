"""What a zoo member is, and the helpers its code shares."""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np


@dataclass(frozen=True)
class ZooMember:
    """One known-bad implementation and the claims that must catch it.

    ``refuted_by`` lists claim ids of which at least one must refute the member when it is checked
    in ``dtype`` at ``level`` ("stable" or "accurate"); ``functions`` maps protocol names to the
    member's implementations. A member of ``zoo.CONVENTIONS`` is no bug: it follows the other
    legitimate convention, and each convention claim in ``differs_by`` must say so ("differs")
    without refuting it.
    """

    name: str
    bug_class: str
    description: str
    functions: Mapping[str, Callable[..., Any]] = field(compare=False, hash=False)
    refuted_by: tuple[str, ...]
    dtype: str = "float64"
    level: str = "stable"
    differs_by: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "functions", types.MappingProxyType(dict(self.functions)))


def as_target(member: ZooMember) -> types.SimpleNamespace:
    """A plain object exposing the member's functions, loadable by ``targets.load_target``."""
    return types.SimpleNamespace(
        **member.functions, __softmax_oracle__={"name": "zoo:" + member.name}
    )


F = TypeVar("F", bound=Callable[..., Any])


def _quiet(fn: F) -> F:
    """Silence numpy's floating-point warnings, so that a bug shows up as inf/NaN in the output."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _rowsum(x: np.ndarray, axis: int) -> np.ndarray:
    return np.sum(x, axis=axis, keepdims=True)


def _shift(z: np.ndarray, axis: int) -> np.ndarray:
    """The row maximum, 0 for rows that are entirely -inf."""
    a = np.max(z, axis=axis, keepdims=True)
    return np.where(np.isneginf(a), np.zeros((), z.dtype), a)
