"""The claims catalogue in Markdown, generated from the specification (``docs/claims.md``).

Regenerate with ``softmax-oracle claims --markdown > docs/claims.md``; a test fails when the
committed file is stale.
"""

from __future__ import annotations

from collections import defaultdict

from softmax_oracle.spec.claims import CLAIMS, KINDS, Claim

__all__ = ["render_markdown"]

_KIND_TITLES = {
    "numerical": "Numerical claims (the target against the mpmath oracle, within derived budgets)",
    "contract": "Contract claims (the plug-in protocol)",
    "convention": "Conventions (which legitimate convention the target follows: "
                  "\"follows\" or \"differs\", never a bug)",
    "mathematics": "The mathematics itself, and the seed audit (checked by the oracle alone)",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _row(c: Claim) -> str:
    tags = []
    if c.level != "stable":
        tags.append(f"level {c.level}")
    if c.expect != "holds":
        tags.append(f"expected {c.expect}")
    needs = ", ".join(f"`{n}`" for n in c.needs) or "—"
    statement = _cell(c.statement)
    if c.correct:
        statement += f"<br>**Correct:** {_cell(c.correct)}"
    if c.convention:
        statement += f"<br>**Follows:** {_cell(c.convention)}"
    if c.alternative:
        statement += f"<br>**Differs:** {_cell(c.alternative)}"
    pre = _cell("; ".join(c.preconditions)) or "—"
    return (f"| `{c.id}`{' (' + ', '.join(tags) + ')' if tags else ''} | {statement} | "
            f"${_cell(c.latex)}$ | {pre} | {needs} | {_cell(c.source)} |")


def render_markdown() -> str:
    """The whole catalogue: one table per kind, claims in specification order."""
    by_kind: dict[str, list[Claim]] = defaultdict(list)
    for c in CLAIMS:
        by_kind[c.kind].append(c)
    lines = [
        "# The claims",
        "",
        "Generated from `src/softmax_oracle/spec/claims.py` by `softmax-oracle claims --markdown`; "
        "do not edit by hand.",
        "",
        f"{len(CLAIMS)} claims. Claims marked *level accurate* run only with "
        "`--level accurate`. Statements of the seed derivation that are false are marked "
        "*expected refuted*: the audit passes when they are refuted. A convention claim's "
        "verdict is *follows* or *differs*: a target that follows the other convention is not "
        "refuted.",
        "",
    ]
    for kind in KINDS:
        claims = by_kind.get(kind, [])
        if not claims:
            continue
        lines += [f"## {_KIND_TITLES[kind]}", "",
                  "| id | statement | formula | preconditions | needs | source |",
                  "|---|---|---|---|---|---|"]
        lines += [_row(c) for c in claims]
        lines.append("")
    return "\n".join(lines)
