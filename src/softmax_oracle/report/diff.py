"""``softmax-oracle diff OLD.json NEW.json``: what changed between two report results.

A regression is a result that stopped going as the specification expects (a claim now refuted or
in error, a seed statement no longer refuted), or a verified claim whose worst error/budget grew
by more than ``factor`` (ratios below ``floor`` of the budget are noise and not compared).
Exit codes: 0 no regression, 1 a regression, 2 an unreadable file or a schema-version mismatch.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

from softmax_oracle.engine.results import SCHEMA_VERSION, json_number

__all__ = ["Change", "Diff", "DiffError", "compare", "diff_files", "load"]

#: Worst error/budget below this is not compared: changes there are search noise.
FLOOR = 0.01

Key = tuple[str, str, str]  # (target, dtype, claim_id)


class DiffError(Exception):
    """An unreadable or incompatible results file (exit code 2)."""


@dataclass(frozen=True)
class Change:
    """One result that differs between the two runs."""

    target: str
    dtype: str
    claim_id: str
    what: str  # e.g. "now refuted", "less accurate"
    detail: str = ""

    def line(self) -> str:
        where = f"{self.claim_id} [{self.target}, {self.dtype}]"
        return f"  {self.what:<16} {where}" + (f": {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class Diff:
    """Everything that changed, sorted into regressions, improvements and other changes."""

    old: str
    new: str
    factor: float
    regressions: list[Change] = field(default_factory=list)
    improvements: list[Change] = field(default_factory=list)
    other: list[Change] = field(default_factory=list)
    targets_added: list[str] = field(default_factory=list)
    targets_removed: list[str] = field(default_factory=list)
    claims_added: list[str] = field(default_factory=list)
    claims_removed: list[str] = field(default_factory=list)
    columns_added: list[str] = field(default_factory=list)
    columns_removed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def worse(self) -> bool:
        return bool(self.regressions)

    def format(self) -> str:
        out = [f"softmax-oracle diff: {self.old} -> {self.new}"]
        out += [f"note: {n}" for n in self.notes]

        def block(title: str, items: list[Change]) -> None:
            if items:
                out.append(f"\n{title} ({len(items)}):")
                out.extend(c.line() for c in items)

        block("Regressions", self.regressions)
        block("Improvements", self.improvements)
        block("Other changes", self.other)
        for label, items in (("Targets added", self.targets_added),
                             ("Targets removed", self.targets_removed),
                             ("Target/dtype columns added", self.columns_added),
                             ("Target/dtype columns removed", self.columns_removed),
                             ("Claims added", self.claims_added),
                             ("Claims removed", self.claims_removed)):
            if items:
                out.append(f"\n{label} ({len(items)}): {', '.join(items)}")
        if not (self.regressions or self.improvements or self.other or self.targets_added
                or self.targets_removed or self.claims_added or self.claims_removed
                or self.columns_added or self.columns_removed):
            out.append("\nNo changes in verdicts or accuracy.")
        n = len(self.regressions)
        out.append(f"\n{n} regression{'s' if n != 1 else ''}" if n else "\nNo regressions.")
        return "\n".join(out)


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a results.json; DiffError if it cannot be read or is not one."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise DiffError(f"cannot read {path}: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DiffError(f"{path} is not JSON: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("targets"), list):
        raise DiffError(f"{path} is not a softmax-oracle results.json (no 'targets' list); "
                        f"write one with `softmax-oracle report`")
    if "schema_version" not in data:
        raise DiffError(f"{path} has no schema_version: not a softmax-oracle results.json")
    return data


def _index(data: dict[str, Any], path: str) -> dict[Key, dict[str, Any]]:
    out = {}
    try:
        for t in data["targets"]:
            for r in t["results"]:
                out[(r["target"], r["dtype"], r["claim_id"])] = r
    except (KeyError, TypeError) as e:
        raise DiffError(f"{path}: malformed result record (missing {e})") from None
    return out


def _ratio(r: dict[str, Any]) -> float:
    try:
        return json_number(r.get("max_ratio", 0.0))
    except (TypeError, ValueError):
        return math.inf


def _as_expected(r: dict[str, Any]) -> bool:
    """``ClaimResult.as_expected`` on a JSON record."""
    v = r["verdict"]
    if v == "error":
        return False
    if v in ("verified", "uninformative", "refuted"):
        return (v != "refuted") == (r.get("expected", "holds") == "holds")
    return True  # unjudged, a convention followed or not, not applicable


def _problem(r: dict[str, Any]) -> str:
    shrunk = r.get("shrunk") or {}
    text = shrunk.get("problem") or r.get("reason") or ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:160]


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.2g}"


def compare(old: dict[str, Any], new: dict[str, Any], *, factor: float = 2.0,
            floor: float = FLOOR, old_name: str = "OLD", new_name: str = "NEW") -> Diff:
    """Compare two results.json documents (already loaded)."""
    if factor <= 1:
        raise ValueError(f"factor={factor!r}: use a number greater than 1, e.g. 2")
    vo, vn = old.get("schema_version"), new.get("schema_version")
    if vo != vn:
        raise DiffError(f"schema_version differs: {old_name} has {vo!r}, {new_name} has {vn!r}; "
                        f"compare results written by the same version of softmax-oracle")
    if vo != SCHEMA_VERSION:
        raise DiffError(f"both files have schema_version {vo!r}, but this softmax-oracle reads "
                        f"version {SCHEMA_VERSION}")
    io, in_ = _index(old, old_name), _index(new, new_name)

    def label(d: dict[str, Any], name: str) -> str:
        return (f"{name} (profile {d.get('profile', '?')}, seed {d.get('seed', '?')}, "
                f"{d.get('generated', '?')})")

    diff = Diff(label(old, old_name), label(new, new_name), factor)
    for k in ("profile", "level", "seed"):
        if old.get(k) != new.get(k):
            diff.notes.append(f"the runs differ in {k} ({old.get(k)!r} vs {new.get(k)!r}): some "
                              f"differences may come from the search, not the targets")
    for key in [k for k in in_ if k in io]:  # in the new run's order
        o, n = io[key], in_[key]
        target, dtype, cid = key
        ov, nv = o["verdict"], n["verdict"]
        if ov != nv:
            oa, na = _as_expected(o), _as_expected(n)
            if nv == "refuted" and n.get("expected", "holds") == "refuted":
                what = "now refuted"  # as the seed audit expects
            elif nv == "verified" and n.get("expected", "holds") == "refuted":
                what = "no longer refuted"
            else:
                what = {"refuted": "now refuted", "verified": "now verified",
                        "uninformative": "now uninformative", "unjudged": "now unjudged",
                        "follows": "now follows the convention",
                        "differs": "now follows the other convention",
                        "error": "now an error", "not_applicable": "now n/a"}.get(nv, nv)
            change = Change(target, dtype, cid, what,
                            f"was {ov}" + (f"; {_problem(n)}" if _problem(n) else ""))
            if oa and not na:
                diff.regressions.append(change)
            elif na and not oa:
                diff.improvements.append(change)
            else:
                diff.other.append(change)
            continue
        if ov != "verified":
            continue
        ro, rn = _ratio(o), _ratio(n)
        if rn > floor and rn > factor * max(ro, floor):
            diff.regressions.append(Change(
                target, dtype, cid, "less accurate",
                f"worst error/budget {_fmt(ro)} -> {_fmt(rn)} (more than {factor:g}x)"))
        elif ro > floor and ro > factor * max(rn, floor):
            diff.improvements.append(Change(
                target, dtype, cid, "more accurate",
                f"worst error/budget {_fmt(ro)} -> {_fmt(rn)}"))

    def targets(d: dict[str, Any]) -> set[str]:
        return {t.get("target", "?") for t in d["targets"]}

    diff.targets_added.extend(sorted(targets(new) - targets(old)))
    diff.targets_removed.extend(sorted(targets(old) - targets(new)))
    both = targets(old) & targets(new)
    cols_o = {f"{t}/{dt}" for t, dt, _ in io if t in both}
    cols_n = {f"{t}/{dt}" for t, dt, _ in in_ if t in both}
    diff.columns_added.extend(sorted(cols_n - cols_o))
    diff.columns_removed.extend(sorted(cols_o - cols_n))
    claims_o, claims_n = {k[2] for k in io}, {k[2] for k in in_}
    diff.claims_added.extend(sorted(claims_n - claims_o))
    diff.claims_removed.extend(sorted(claims_o - claims_n))
    return diff


def diff_files(old: str | os.PathLike[str], new: str | os.PathLike[str], *,
               factor: float = 2.0, floor: float = FLOOR) -> Diff:
    """Load and compare two results.json files; DiffError if either cannot be used."""
    return compare(load(old), load(new), factor=factor, floor=floor, old_name=str(old),
                   new_name=str(new))
