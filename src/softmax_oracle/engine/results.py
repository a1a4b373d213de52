"""Result records: frozen dataclasses with a documented JSON schema (docs/results.schema.json)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["SCHEMA_VERSION", "VERDICTS", "CheckReport", "ClaimResult", "Counterexample",
           "WiderBudget", "format_value", "json_number", "json_safe"]

#: Bumped on any incompatible change of the JSON layout (2: the verdicts uninformative, unjudged,
#: follows and differs; the fields uninformative, skipped and wider).
SCHEMA_VERSION = 2

#: verified       no counterexample in ``examples`` examples, and some budget said something;
#: uninformative  no counterexample, but on every example judged each budget was at least the
#:                quantity it bounds (docs/tolerances.md, "Uninformative budgets");
#: refuted        a counterexample (``shrunk``);
#: unjudged       every example was skipped: the target raised (judged under
#:                ``<function>.returns_on_valid_input``);
#: follows        a convention claim: the target follows the stated convention;
#: differs        a convention claim: the target follows the claim's alternative (``shrunk``);
#: not_applicable the target lacks a function, or the dtype;
#: error          the kit could not judge (a crash, a hang, an internal error).
VERDICTS = ("verified", "uninformative", "refuted", "unjudged", "follows", "differs",
            "not_applicable", "error")


def format_value(v: Any) -> str:
    """A Python literal that reproduces an input exactly and runs as printed, given
    ``import numpy as np`` (and ``import ml_dtypes`` for bfloat16): floats in the fewest digits
    that give back the same number of the array's dtype, -inf and NaN as ``-np.inf`` and
    ``np.nan``, the dtype named as ``np.float32`` or ``ml_dtypes.bfloat16``."""
    if isinstance(v, np.ndarray) and v.size == 0 and v.ndim > 1:  # [] would lose the shape
        return f"np.zeros({v.shape!r}, dtype={dtype_expression(v.dtype)})"
    if isinstance(v, np.ndarray) and v.dtype.kind in "biu":
        return f"np.array({v.tolist()!r}, dtype={dtype_expression(v.dtype)})"
    if isinstance(v, np.ndarray) and v.dtype.kind in "OcUSMm":  # not real numbers: by repr
        return f"np.array({v.tolist()!r}, dtype={dtype_expression(v.dtype)})"
    if isinstance(v, np.ndarray):
        body = _nested(_shortest(v), v.shape)
        return f"np.array({body}, dtype={dtype_expression(v.dtype)})"
    if isinstance(v, float):
        return _float(v)
    if isinstance(v, (list, tuple)) and all(isinstance(t, (int, float)) for t in v):
        return "[" + ", ".join(_float(float(t)) if isinstance(t, float) else str(t)
                               for t in v) + "]"
    return repr(v)


def dtype_expression(dtype: Any) -> str:
    """How a literal names a dtype so that it runs: ``np.float32``, ``ml_dtypes.bfloat16``,
    ``bool``, ``object``."""
    dt = np.dtype(dtype)
    if dt.kind in "bO":
        return {"b": "bool", "O": "object"}[dt.kind]
    if dt.type.__module__.split(".")[0] == "ml_dtypes":
        return f"ml_dtypes.{dt.name}"
    return f"np.{dt.name}"


#: Arrays up to this size are written in the fewest digits of their own dtype (float32's 0.1 as
#: 0.1); larger ones (written out only in results files) by the float64 repr, also exact.
SHORTEST_MAX_SIZE = 256


def _shortest(v: np.ndarray) -> list[str]:
    """Each element of a float array as the shortest decimal that ``np.array([...], dtype=...)``
    turns back into the same bits (checked, not assumed: a decimal goes through float64 first)."""
    wide = v.astype(np.float64).reshape(-1).tolist()
    if v.dtype == np.float64 or v.size > SHORTEST_MAX_SIZE:
        return [_float(x) for x in wide]
    flat = v.reshape(-1)
    out = []
    with np.errstate(all="ignore"):
        for i, x in enumerate(wide):
            if not math.isfinite(x):
                out.append(_float(x))
                continue
            bits = flat[i : i + 1].tobytes()
            text = repr(x)
            for digits in range(1, 17):
                candidate = float(f"{x:.{digits}g}")
                if np.array([candidate], dtype=v.dtype).tobytes() == bits:
                    text = repr(candidate)
                    break
            out.append(text)
    return out


def _float(x: float) -> str:
    if math.isinf(x):
        return "-np.inf" if x < 0 else "np.inf"
    if math.isnan(x):
        return "np.nan"
    return repr(x)


def _nested(flat: list[str], shape: tuple[int, ...]) -> str:
    """The elements (in C order) as nested lists of the given shape."""
    if not shape:
        return flat[0]
    step = len(flat) // shape[0] if shape[0] else 0
    return "[" + ", ".join(_nested(flat[i * step : (i + 1) * step], shape[1:])
                           for i in range(shape[0])) + "]"


@dataclass(frozen=True)
class Counterexample:
    """An input on which a claim failed (or the worst input seen), and what went wrong."""

    inputs: dict[str, str]  # argument name -> Python literal
    problem: str  # empty for a worst-seen example that did not fail
    ratio: float  # |error| / budget (inf for NaN, exceptions, wrong shapes)
    regime: tuple[str, ...] = ()
    saved: str = ""  # the .npz file holding the whole input (engine.saved); "" if none

    @classmethod
    def from_example(cls, ex: dict[str, Any], problem: str, ratio: float) -> Counterexample:
        inputs = {k: format_value(v) for k, v in ex.items() if k != "regime"}
        return cls(inputs, problem, ratio, tuple(ex.get("regime", ())))


@dataclass(frozen=True)
class WiderBudget:
    """The budget of an algorithm that computes in a wider ``dtype`` (float32 for float16 and
    bfloat16 inputs) and rounds the result once, assessed on the ``examples`` where the input
    dtype's own budget was uninformative: what a user of a narrow dtype wants to know on long
    rows. Information, not a verdict: ``max_ratio`` above 1 means the target does not compute
    as such an algorithm would."""

    dtype: str
    examples: int
    max_ratio: float
    worst: Counterexample | None = None


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
    reason: str = ""  # why not applicable, the internal error, or which examples were skipped
    max_ratio: float = 0.0  # worst |error| / budget seen (accuracy headroom)
    max_ulps: float = 0.0
    shrunk: Counterexample | None = None
    worst: Counterexample | None = None
    reproduce: str = ""
    uninformative: int = 0  # examples judged on which every budget was at least its quantity
    skipped: int = 0  # examples not judged: the target raised (see ``reason``)
    wider: WiderBudget | None = None

    @property
    def as_expected(self) -> bool:
        """Holds when expected to hold, is refuted when expected to be refuted. Results that are
        no bug verdict (a convention followed or not, every example skipped, not applicable)
        never count against a target: what made them so is judged by its own claim."""
        if self.verdict == "error":
            return False
        if self.verdict in ("verified", "uninformative", "refuted"):
            return (self.verdict != "refuted") == (self.expected == "holds")
        return True

    def to_json(self) -> dict[str, Any]:
        """The JSON layout of ``$defs/claimResult`` in docs/results.schema.json."""
        return json_safe(asdict(self))  # tuples become lists

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ClaimResult:
        """The inverse of ``to_json`` (missing optional fields take their defaults)."""
        return cls(
            claim_id=d["claim_id"], target=d["target"], dtype=d["dtype"], level=d["level"],
            verdict=d["verdict"], expected=d.get("expected", "holds"),
            examples=d.get("examples", 0), seed=d.get("seed"),
            seconds=json_number(d.get("seconds", 0.0)), reason=d.get("reason", ""),
            max_ratio=json_number(d.get("max_ratio", 0.0)),
            max_ulps=json_number(d.get("max_ulps", 0.0)),
            shrunk=_counterexample(d.get("shrunk")), worst=_counterexample(d.get("worst")),
            reproduce=d.get("reproduce", ""), uninformative=d.get("uninformative", 0),
            skipped=d.get("skipped", 0), wider=_wider(d.get("wider")))


def _wider(d: dict[str, Any] | None) -> WiderBudget | None:
    if d is None:
        return None
    return WiderBudget(d["dtype"], d["examples"], json_number(d["max_ratio"]),
                       _counterexample(d.get("worst")))


def _counterexample(d: dict[str, Any] | None) -> Counterexample | None:
    if d is None:
        return None
    return Counterexample(dict(d["inputs"]), d["problem"], json_number(d["ratio"]),
                          tuple(d.get("regime", ())), d.get("saved", ""))


#: How JSON, which has no infinity or NaN, holds the non-finite floats.
_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def json_safe(x: Any) -> Any:
    """``x`` with every non-finite float, however deeply nested, written as the string "inf",
    "-inf" or "nan" (JSON has no such numbers); ``json_number`` reads them back."""
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def json_number(x: float | str) -> float:
    """A number as ``json_safe`` wrote it: a JSON number, or "inf", "-inf" or "nan"."""
    if isinstance(x, str):
        if x not in _NON_FINITE:
            raise ValueError(f"{x!r} is not a number: results files write numbers as JSON "
                             f"numbers or as one of the strings \"inf\", \"-inf\", \"nan\"")
        return _NON_FINITE[x]
    return float(x)


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
    complete: bool = True  # False: interrupted; ``results`` holds what finished

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
        """The JSON layout of ``$defs/checkReport`` in docs/results.schema.json."""
        return json_safe({
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
            "complete": self.complete,
            "results": [r.to_json() for r in self.results],
        })

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CheckReport:
        """The inverse of ``to_json``."""
        return cls(
            target=d["target"], target_version=d["target_version"], level=d["level"],
            profile=d["profile"], seed=d["seed"], dtypes=tuple(d["dtypes"]),
            results=tuple(ClaimResult.from_json(r) for r in d["results"]),
            seconds=json_number(d["seconds"]), versions=dict(d.get("versions", {})),
            notes=tuple(d.get("notes", ())), complete=bool(d.get("complete", True)))

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, allow_nan=False)
