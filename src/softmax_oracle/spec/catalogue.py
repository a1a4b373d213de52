"""The claims catalogue in Markdown, generated from the specification (``docs/claims.md``).

Regenerate with ``softmax-oracle claims --markdown > docs/claims.md``; a test fails when the
committed file is stale.
"""

from __future__ import annotations

from collections import defaultdict

from softmax_oracle.spec.claims import CLAIMS, Claim

__all__ = ["render_markdown"]

_KIND_TITLES = {
    "numerical": "Numerical claims (the target against the mpmath oracle, within derived budgets)",
    "contract": "Contract claims (the plug-in protocol)",
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
        "*expected refuted*: the audit passes when they are refuted.",
        "",
    ]
    for kind in ("numerical", "contract", "mathematics"):
        claims = by_kind.get(kind, [])
        if not claims:
            continue
        lines += [f"## {_KIND_TITLES[kind]}", "",
                  "| id | statement | formula | preconditions | needs | source |",
                  "|---|---|---|---|---|---|"]
        lines += [_row(c) for c in claims]
        lines.append("")
    return "\n".join(lines)
