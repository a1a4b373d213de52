"""What a report shows: the data of a report run (``ReportData``), reading it back from JSON, and
the views the HTML, Markdown and SVG renderers share.

The run itself is ``report.run``. Files written into the output directory: ``index.html``
(self-contained), ``report.md`` (with the plots as ``plots/*.svg``) and ``results.json`` (schema:
``docs/results.schema.json``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from softmax_oracle.engine.results import (
    SCHEMA_VERSION,
    CheckReport,
    ClaimResult,
    Counterexample,
    json_number,
    json_safe,
)
from softmax_oracle.spec.claims import CLAIMS, Claim, get_claim

__all__ = [
    "ACCURACY_CLAIMS",
    "DEFAULT_TARGETS",
    "ReportData",
    "Skipped",
    "conventions",
    "count_phrases",
    "load_results",
    "note",
    "qualified",
    "skip_groups",
    "skipped_names",
    "summary_text",
]

#: The targets a report covers when none are named; the framework ones only if they load.
#: ``torch-lce-auto`` is F.linear_cross_entropy's chunked path with its default options.
DEFAULT_TARGETS: tuple[str, ...] = ("reference", "seed", "numpy", "naive", "scipy", "torch",
                                    "torch-lce-auto", "jax", "optax")

#: The accuracy table: function -> the claims that compare it with the reference.
ACCURACY_CLAIMS: dict[str, tuple[str, ...]] = {
    "softmax": ("softmax.matches_reference",),
    "log_softmax": ("log_softmax.matches_reference",),
    "logsumexp": ("logsumexp.matches_reference",),
    "softmax_vjp": ("softmax_vjp.matches_reference",),
    "cross_entropy": ("cross_entropy.matches_reference",),
    "cross_entropy_grad": ("cross_entropy_grad.normalised_targets",
                           "cross_entropy_grad.any_targets"),
    "dense_grads": ("dense_grads.dW", "dense_grads.db", "dense_grads.dx"),
    "cross_entropy_loss": ("cross_entropy_loss.matches_reference",),
    "cross_entropy_loss_grad": ("cross_entropy_loss_grad.matches_reference",),
    "linear_cross_entropy": ("linear_cross_entropy.loss", "linear_cross_entropy.dx",
                             "linear_cross_entropy.dW", "linear_cross_entropy.db"),
}

_ORDER = {c.id: i for i, c in enumerate(CLAIMS)}


# =============================================================================== the data


@dataclass(frozen=True)
class Skipped:
    """A target that could not be loaded, and why."""

    target: str
    reason: str


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows: one merged ``CheckReport`` per target, and what was run."""

    kit_version: str
    generated: str  # ISO 8601, UTC
    profile: str
    level: str
    seed: int
    seconds: float  # wall time
    versions: dict[str, str]
    targets: tuple[CheckReport, ...]
    skipped: tuple[Skipped, ...] = ()
    dtypes: tuple[str, ...] = ()
    claims: str | None = None
    jobs: int = 1
    command: str = ""
    complete: bool = True  # False: the run was interrupted; the results are what finished

    @property
    def results(self) -> list[ClaimResult]:
        return [r for t in self.targets for r in t.results]

    def result(self, target: str, dtype: str, claim_id: str) -> ClaimResult | None:
        return self._index().get((target, dtype, claim_id))

    def _index(self) -> dict[tuple[str, str, str], ClaimResult]:
        cache = self.__dict__.get("_cache")
        if cache is None:
            cache = {(r.target, r.dtype, r.claim_id): r for r in self.results}
            object.__setattr__(self, "_cache", cache)
        return cache

    def claim_ids(self) -> list[str]:
        """Every claim with a result, in catalogue order."""
        seen = {r.claim_id for r in self.results}
        known = [c.id for c in CLAIMS if c.id in seen]
        return known + sorted(seen - set(known))

    def to_json(self) -> dict[str, Any]:
        """The layout of docs/results.schema.json."""
        return json_safe({
            "schema_version": SCHEMA_VERSION,
            "kit_version": self.kit_version,
            "generated": self.generated,
            "profile": self.profile,
            "level": self.level,
            "seed": self.seed,
            "seconds": round(self.seconds, 3),
            "dtypes": list(self.dtypes),
            "claims": self.claims,
            "jobs": self.jobs,
            "command": self.command,
            "complete": self.complete,
            "versions": dict(self.versions),
            "targets": [t.to_json() for t in self.targets],
            "skipped": [{"target": s.target, "reason": s.reason} for s in self.skipped],
        })

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ReportData:
        return cls(
            kit_version=d["kit_version"], generated=d["generated"], profile=d["profile"],
            level=d["level"], seed=d["seed"], seconds=json_number(d["seconds"]),
            versions=dict(d["versions"]),
            targets=tuple(CheckReport.from_json(t) for t in d["targets"]),
            skipped=tuple(Skipped(s["target"], s["reason"]) for s in d.get("skipped", ())),
            dtypes=tuple(d.get("dtypes") or sorted({r["dtype"] for t in d["targets"]
                                                    for r in t["results"]})),
            claims=d.get("claims"), jobs=int(d.get("jobs", 1)), command=d.get("command", ""),
            complete=bool(d.get("complete", True)))


def load_results(path: str | os.PathLike[str]) -> ReportData:
    """Read a ``results.json`` written by ``save_report`` (to render it again, for instance)."""
    import json

    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    if d.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {d.get('schema_version')!r}, but this "
                         f"softmax-oracle reads version {SCHEMA_VERSION}")
    return ReportData.from_json(d)


# =============================================================================== views shared by
# the HTML and Markdown renderers


def status(r: ClaimResult) -> str:
    """One of the keys of ``COUNT_WORDS``: a verdict (``engine.results.VERDICTS``), or
    expected_refuted (a seed statement refuted, as the audit expects), or unexpected_verified
    (expected to be refuted, no counterexample found)."""
    if r.verdict == "refuted":
        return "expected_refuted" if r.expected == "refuted" else "refuted"
    if r.verdict in ("verified", "uninformative") and r.expected == "refuted":
        return "unexpected_verified"
    return r.verdict


def _wider_note(r: ClaimResult) -> str:
    w = r.wider
    if w is None:
        return ""
    verdict = ("within it" if w.max_ratio <= 1 else
               f"over it: the target does not compute as an algorithm in {w.dtype} does")
    return (f"; against the budget of computing in {w.dtype} and rounding once, "
            f"{fmt_ratio(w.max_ratio)}× that budget at worst on {w.examples} of these "
            f"examples ({verdict})")


def note(r: ClaimResult) -> str:
    """What a verdict rests on, in one line, where it is more than "no counterexample in N
    examples": uninformative examples, skipped examples, a convention followed or not; empty
    otherwise."""
    judged = r.examples - r.skipped
    claim = claim_of(r.claim_id)
    if r.verdict == "follows":
        stated = f", {claim.convention}" if claim is not None and claim.convention else ""
        return f"follows the stated convention{stated}"
    if r.verdict == "differs":
        alt = claim.alternative if claim is not None and claim.alternative else "another one"
        return f"differs: follows {alt}"
    if r.verdict == "unjudged":
        return f"unjudged: {r.reason}"
    out = []
    if r.verdict == "uninformative":
        out.append(f"uninformative: on all {judged} examples judged, every budget was at least "
                   f"the quantity it bounds (any value from 0 to twice the exact one passes)"
                   f"{_wider_note(r)}")
    elif r.uninformative and r.verdict == "verified":
        out.append(f"{r.uninformative} of the {judged} examples judged were uninformative "
                   f"(every budget at least the quantity it bounds){_wider_note(r)}")
    if r.skipped and r.verdict not in ("error", "unjudged"):
        out.append(r.reason)
    return "; ".join(out)


def qualified(results: Iterable[ClaimResult]) -> list[ClaimResult]:
    """The results whose verdict rests on fewer examples than it seems: uninformative or
    unjudged, or verified or refuted with uninformative or skipped examples."""
    return [r for r in results if r.verdict in ("uninformative", "unjudged")
            or (r.verdict in ("verified", "refuted") and (r.uninformative or r.skipped))]


def skip_groups(results: Iterable[ClaimResult]) -> list[tuple[str, str, list[ClaimResult]]]:
    """The results with skipped examples (unjudged ones included) by (target, dtype) and cause,
    the exception that made them skip, in order: one exception is said once."""
    groups_: dict[tuple[str, str, str], list[ClaimResult]] = {}
    for r in results:
        if r.skipped and r.verdict != "error":
            cause = r.reason.partition("examples skipped: ")[2] or r.reason
            groups_.setdefault((r.target, r.dtype, cause), []).append(r)
    return [(f"{t}, {dt}", cause, rs) for (t, dt, cause), rs in groups_.items()]


def skipped_names(rs: Iterable[ClaimResult]) -> str:
    """The claims of a ``skip_groups`` group: the unjudged ones, then how many examples each of
    the others skipped."""
    rs = list(rs)
    parts = []
    unjudged = [r.claim_id for r in rs if r.verdict == "unjudged"]
    if unjudged:
        parts.append("unjudged (every example skipped): " + ", ".join(unjudged))
    partly = [f"{r.claim_id} ({r.verdict}; {r.skipped} of {r.examples} skipped)"
              for r in rs if r.verdict != "unjudged"]
    if partly:
        parts.append("judged on the other examples: " + ", ".join(partly))
    return "; ".join(parts)


def conventions(data: ReportData) -> list[ClaimResult]:
    """Every result of a convention claim (follows or differs), in run order."""
    return [r for r in data.results if r.verdict in ("follows", "differs")]


def columns(data: ReportData) -> list[tuple[str, str]]:
    """The (target, dtype) columns of the summary, in run order."""
    out: list[tuple[str, str]] = []
    for t in data.targets:
        present = {r.dtype for r in t.results}
        out.extend((t.target, dt) for dt in t.dtypes if dt in present)
    return out


def groups(data: ReportData) -> list[tuple[str, list[str]]]:
    """Claim ids grouped by function (the seed audit last), in catalogue order."""
    out: dict[str, list[str]] = {}
    for cid in data.claim_ids():
        out.setdefault(cid.split(".", 1)[0], []).append(cid)
    order = [*ACCURACY_CLAIMS, "seed"]
    return sorted(out.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99)


def claim_of(claim_id: str) -> Claim | None:
    try:
        return get_claim(claim_id)
    except KeyError:
        return None


def anchor(r: ClaimResult) -> str:
    """An HTML id for one result's details."""
    return "r-" + re.sub(r"[^A-Za-z0-9_-]+", "-", f"{r.target}-{r.dtype}-{r.claim_id}")


@dataclass(frozen=True)
class Accuracy:
    """One cell of the accuracy table: the worst error of a function on a target and dtype."""

    function: str
    target: str
    dtype: str
    verdict: str  # "verified", "uninformative", "refuted", "unjudged", "error", "not_applicable"
    max_ulps: float
    max_ratio: float
    examples: int
    claim_id: str  # the claim that saw the worst error
    worst: Counterexample | None
    result: ClaimResult | None


def accuracy(data: ReportData) -> list[Accuracy]:
    """The largest error per function, target and dtype, over the claims that compare the
    function with the reference (the ulps from examples within budget; the ratio from all)."""
    out = []
    for target, dtype in columns(data):
        for fn, ids in ACCURACY_CLAIMS.items():
            rs = [r for cid in ids if (r := data.result(target, dtype, cid)) is not None]
            if not rs:
                continue
            run = [r for r in rs if r.verdict in ("verified", "uninformative", "refuted")]
            if not run:
                verdict = next((v for v in ("error", "unjudged") if any(r.verdict == v
                                                                        for r in rs)),
                               "not_applicable")
                why = next(r for r in rs if r.verdict == verdict) if verdict != \
                    "not_applicable" else rs[0]
                out.append(Accuracy(fn, target, dtype, verdict, 0.0, 0.0, 0, why.claim_id,
                                    None, why))
                continue
            worst = max(run, key=lambda r: (r.verdict == "refuted", r.max_ratio))
            verdict = next(v for v in ("refuted", "verified", "uninformative")
                           if any(r.verdict == v for r in run))
            out.append(Accuracy(fn, target, dtype, verdict, max(r.max_ulps for r in run),
                                worst.max_ratio, sum(r.examples for r in run), worst.claim_id,
                                worst.worst, worst))
    return out


_LITERAL_NUMBER = re.compile(r"-?np\.inf|np\.nan|-?\d+\.?\d*(?:e[-+]?\d+)?")


def magnitude(inputs: dict[str, str]) -> float | None:
    """The largest finite |entry| of the logits (or, for dense layers, of x) in a recorded
    input; -inf entries are masks, not magnitudes."""
    for key in ("z", "x"):
        if key in inputs:
            text = re.sub(r"dtype=[\w.]+", "", inputs[key])
            vals = []
            for tok in _LITERAL_NUMBER.findall(text):
                v = math.inf if tok.endswith("inf") else math.nan if tok == "np.nan" else \
                    float(tok)
                if math.isfinite(v):
                    vals.append(abs(v))
            return max(vals) if vals else None
    return None


def refutations(data: ReportData) -> list[ClaimResult]:
    """Every refuted result, and every result not as the specification expects, in run order."""
    return [r for r in data.results if r.verdict in ("refuted", "error") or not r.as_expected]


def fmt_ratio(x: float) -> str:
    if math.isinf(x):
        return "∞"
    if x == 0:
        return "0"
    return f"{x:.2g}" if x >= 0.01 else f"{x:.1e}"


def fmt_ulps(x: float) -> str:
    if math.isinf(x):
        return "∞"
    if x == 0:
        return "0"
    if x < 10:
        return f"{x:.2g}"
    return f"{x:.3g}" if x < 1e4 else f"{x:.1e}"


def fmt_seconds(s: float) -> str:
    if s < 60:
        return f"{s:.1f} s"
    m, s = divmod(round(s), 60)
    return f"{m} min {s:02d} s"


def counts(results: Iterable[ClaimResult]) -> dict[str, int]:
    """How many results of each ``status`` (every key of ``COUNT_WORDS``)."""
    out = dict.fromkeys((key for key, _ in COUNT_WORDS), 0)
    for r in results:
        out[status(r)] += 1
    return out


# =============================================================================== running


#: How a report words its counts (keys of ``counts``), in the order it shows them; each is
#: shown when not zero, verified and refuted always. Uninformative and unjudged results are
#: counted apart from the verified ones, conventions apart from the bugs.
COUNT_WORDS: tuple[tuple[str, str], ...] = (
    ("verified", "verified"),
    ("uninformative", "uninformative (every budget at least its quantity)"),
    ("refuted", "refuted"),
    ("expected_refuted", "seed statements refuted as the audit expects"),
    ("unexpected_verified", "seed statements not refuted"),
    ("unjudged", "unjudged (the target raised on every example)"),
    ("follows", "conventions followed"),
    ("differs", "conventions not followed (another convention)"),
    ("not_applicable", "not applicable"),
    ("error", "errors"),
)


def count_phrases(c: dict[str, int],
                  mark: Callable[[str, int], str] = lambda key, n: str(n)) -> list[str]:
    """The counts as phrases ("3 verified", ...); ``mark(key, n)`` formats each number (bold in
    Markdown, coloured in HTML)."""
    return [f"{mark(key, c[key])} {words}" for key, words in COUNT_WORDS
            if c[key] or key in ("verified", "refuted")]


def summary_text(data: ReportData) -> str:
    """A few lines for the terminal: per target, what went as expected and what did not."""
    lines = [f"softmax-oracle report: {len(data.targets)} targets x {', '.join(data.dtypes)}, "
             f"profile {data.profile}, level {data.level}, seed {data.seed}: "
             f"{len(data.results)} results in {fmt_seconds(data.seconds)}"]
    width = max((len(n) for n in [*(t.target for t in data.targets),
                                   *(sk.target for sk in data.skipped)]), default=0)
    for t in data.targets:
        parts = count_phrases(counts(t.results))
        lines.append(f"  {t.target:<{width}}  {', '.join(parts)}")
    for sk in data.skipped:
        lines.append(f"  {sk.target:<{width}}  skipped: {sk.reason.splitlines()[0]}")
    return "\n".join(lines)
