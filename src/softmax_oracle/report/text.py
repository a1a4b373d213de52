"""The readable account of a result: what a refutation says, where, by how much, on which
input, and how to reproduce it. Used by the CLI, the pytest plugin, the Python API and the
report pages."""

from __future__ import annotations

import math
import shlex

from softmax_oracle.engine.results import ClaimResult, Counterexample
from softmax_oracle.engine.saved import load_expression
from softmax_oracle.spec.claims import Claim, get_claim

__all__ = ["UNKNOWN_CLAIM", "format_refutation"]

#: Said of a claim id in saved results that this version's specification does not have.
UNKNOWN_CLAIM = ("not in this version's specification (the results were written by another "
                 "version of softmax-oracle)")


def _indent(text: str, prefix: str) -> str:
    lines = text.splitlines() or [""]
    return lines[0] + "".join("\n" + prefix + ln for ln in lines[1:])


def _inputs(cex: Counterexample, width: int = 400) -> str:
    """The input as Python that runs as printed: the imports it needs, then one assignment per
    argument. An array too long to read is loaded from the file that holds the whole input."""
    parts = []
    for k, v in cex.inputs.items():
        if len(v) <= width:
            parts.append(f"{k} = {v}")
        elif cex.saved and v.startswith("np.array("):
            parts.append(f"{k} = {load_expression(cex.saved, k, v)}  # {v.count(', '):,} values")
        else:  # a comment, so that the lines above and below still run
            parts.append(f"# {k} = {v[: width - 60]} ... (truncated; the whole input was not "
                         f"saved)")
    text = "\n".join(parts)
    imports = [line for line, used in (("import numpy as np", "np."),
                                       ("import ml_dtypes", "ml_dtypes.")) if used in text]
    return _indent("\n".join([*imports, text]), " " * 19)


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
    commands = [r.reproduce] if r.reproduce else []
    if r.shrunk is not None:
        lines.append(f"  Problem:   {_indent(r.shrunk.problem, '             ')}")
        label = "Input (shrunk):" if r.verdict != "error" else "Input:         "
        lines.append(f"  {label}  {_inputs(r.shrunk)}")
        if r.shrunk.saved:
            commands.append(f"softmax-oracle replay {shlex.quote(r.shrunk.saved)}")
    if r.worst is not None and r.worst.problem and r.shrunk is not None \
            and r.worst.inputs != r.shrunk.inputs:
        lines.append(f"  Worst seen:      {_inputs(r.worst)}")
        lines.append(f"    ({_ratio(r.worst.ratio)}x the budget) "
                     f"{_indent(r.worst.problem, '    ')}")
        if r.worst.saved:
            commands.append(f"softmax-oracle replay {shlex.quote(r.worst.saved)}   "
                            f"# the worst input seen")
    if r.reason:
        lines.append(f"  Note:      {_indent(r.reason.strip(), '             ')}")
    if commands:
        lines.append(f"  Reproduce: {_indent(chr(10).join(commands), ' ' * 13)}")
    return "\n".join(lines)


def _ratio(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.3g}"
