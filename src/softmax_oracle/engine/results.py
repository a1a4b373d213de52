"""Result records: frozen dataclasses with a documented JSON schema (docs/results.schema.json)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["SCHEMA_VERSION", "CheckReport", "ClaimResult", "Counterexample", "format_value"]

#: Bumped on any incompatible change of the JSON layout.
SCHEMA_VERSION = 1

VERDICTS = ("verified", "refuted", "not_applicable", "error")


def format_value(v: Any) -> str:
    """A Python literal that reproduces an input exactly (floats by repr, dtype named)."""
    if isinstance(v, np.ndarray):
        vals = np.asarray(v, dtype=np.float64)
        body = _nested(vals.tolist())
        return f"np.array({body}, dtype={v.dtype.name})"
    if isinstance(v, float):
        return _float(v)
    if isinstance(v, (list, tuple)) and all(isinstance(t, (int, float)) for t in v):
        return "[" + ", ".join(_float(float(t)) if isinstance(t, float) else str(t)
                               for t in v) + "]"
    return repr(v)


def _float(x: float) -> str:
    if math.isinf(x):
        return "-np.inf" if x < 0 else "np.inf"
    if math.isnan(x):
        return "np.nan"
    return repr(x)


def _nested(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_nested(t) for t in v) + "]"
    return _float(float(v))


@dataclass(frozen=True)
class Counterexample:
    """An input on which a claim failed (or the worst input seen), and what went wrong."""

    inputs: dict[str, str]  # argument name -> Python literal
    problem: str  # empty for a worst-seen example that did not fail
    ratio: float  # |error| / budget (inf for NaN, exceptions, wrong shapes)
    regime: tuple[str, ...] = ()

    @classmethod
    def from_example(cls, ex: dict[str, Any], problem: str, ratio: float) -> Counterexample:
        inputs = {k: format_value(v) for k, v in ex.items() if k != "regime"}
        return cls(inputs, problem, ratio, tuple(ex.get("regime", ())))


@dataclass(frozen=True)
class ClaimResult:
    """The verdict of one claim on one target and dtype.

    "verified" means: no counterexample in ``examples`` examples (seed ``seed``), nothing more.
    """

    claim_id: str
    target: str
    dtype: str
    level: str
    verdict: str  # one of VERDICTS
    expected: str = "holds"  # "refuted" for seed statements the audit expects to fail
    examples: int = 0
    seed: int | None = None
    seconds: float = 0.0
    reason: str = ""  # why not applicable, or the internal error
    max_ratio: float = 0.0  # worst |error| / budget seen (accuracy headroom)
    max_ulps: float = 0.0
    shrunk: Counterexample | None = None
    worst: Counterexample | None = None
    reproduce: str = ""

    @property
    def as_expected(self) -> bool:
        """Holds when expected to hold, is refuted when expected to be refuted."""
        if self.verdict in ("not_applicable",):
            return True
        if self.verdict == "error":
            return False
        return (self.verdict == "verified") == (self.expected == "holds")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["max_ratio"] = _finite(self.max_ratio)
        for key in ("shrunk", "worst"):
            if d[key] is not None:
                d[key]["ratio"] = _finite(d[key]["ratio"])
                d[key]["regime"] = list(d[key]["regime"])
        return d


def _finite(x: float) -> float | str:
    """JSON has no infinity: write it as the string "inf"."""
    return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")


@dataclass(frozen=True)
class CheckReport:
    """Everything one ``check`` run produced."""

    target: str
    target_version: str
    level: str
    profile: str
    seed: int
    dtypes: tuple[str, ...]
    results: tuple[ClaimResult, ...]
    seconds: float
    versions: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # e.g. "jax flushes subnormals in float32: floor = r_min"

    @property
    def refuted(self) -> list[ClaimResult]:
        return [r for r in self.results if r.verdict == "refuted"]

    @property
    def errors(self) -> list[ClaimResult]:
        return [r for r in self.results if r.verdict == "error"]

    @property
    def ok(self) -> bool:
        """Every applicable claim went as the specification expects."""
        return all(r.as_expected for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "target": self.target,
            "target_version": self.target_version,
            "level": self.level,
            "profile": self.profile,
            "seed": self.seed,
            "dtypes": list(self.dtypes),
            "seconds": round(self.seconds, 3),
            "versions": dict(self.versions),
            "notes": list(self.notes),
            "results": [r.to_json() for r in self.results],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, allow_nan=False)
