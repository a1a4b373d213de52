"""The readable account of a result: what a refutation says, where, by how much, on which
input, and how to reproduce it. Used by the CLI, the pytest plugin, the Python API and the
report pages."""

from __future__ import annotations

from softmax_oracle.engine.results import ClaimResult
from softmax_oracle.spec.claims import Claim, get_claim

__all__ = ["UNKNOWN_CLAIM", "format_refutation"]

#: Said of a claim id in saved results that this version's specification does not have.
UNKNOWN_CLAIM = ("not in this version's specification (the results were written by another "
                 "version of softmax-oracle)")


def _indent(text: str, prefix: str) -> str:
    lines = text.splitlines() or [""]
    return lines[0] + "".join("\n" + prefix + ln for ln in lines[1:])


def _inputs(inputs: dict[str, str], width: int = 400) -> str:
    parts = []
    for k, v in inputs.items():
        if len(v) > width:
            v = v[: width - 20] + " ... (truncated)"
        parts.append(f"{k} = {v}")
    return _indent("\n".join(parts), " " * 19)


def format_refutation(r: ClaimResult) -> str:
    """The readable account of one refuted claim (or one that went against expectation)."""
    claim: Claim | None
    try:
        claim = get_claim(r.claim_id)
    except KeyError:
        claim = None
    head = "Claim refuted" if r.verdict == "refuted" else f"Claim {r.verdict}"
    if r.expected == "refuted" and r.verdict == "verified":
        head = "Claim expected to be refuted, but no counterexample found"
    lines = [f"{head}: {r.claim_id}   [{r.target}, {r.dtype}, level {r.level}]",
             f"  Statement: {claim.statement if claim is not None else UNKNOWN_CLAIM}"]
    if claim is not None and claim.preconditions:
        lines.append(f"  Preconditions: {'; '.join(claim.preconditions)}")
    if claim is not None and claim.correct:
        lines.append(f"  Correct:   {claim.correct}")
    if r.shrunk is not None:
        lines.append(f"  Problem:   {_indent(r.shrunk.problem, '             ')}")
        label = "Input (shrunk):" if r.verdict != "error" else "Input:         "
        lines.append(f"  {label}  {_inputs(r.shrunk.inputs)}")
    if r.worst is not None and r.worst.problem and r.shrunk is not None \
            and r.worst.inputs != r.shrunk.inputs:
        lines.append(f"  Worst seen ({r.worst.ratio:.3g}x the budget): {_inputs(r.worst.inputs)}")
        lines.append(f"    {_indent(r.worst.problem, '    ')}")
    if r.reason:
        lines.append(f"  Note:      {_indent(r.reason.strip(), '             ')}")
    if r.reproduce:
        lines.append(f"  Reproduce: {r.reproduce}")
    return "\n".join(lines)
