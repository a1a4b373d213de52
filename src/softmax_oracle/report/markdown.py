"""The report as Markdown for a code-hosting site: tables, formulas as ``$...$`` LaTeX, the plots
as image links to ``plots/*.svg``; no HTML."""

from __future__ import annotations

from collections.abc import Sequence

from softmax_oracle.cli import format_refutation
from softmax_oracle.report.build import (
    ReportData,
    accuracy,
    claim_of,
    columns,
    counts,
    fmt_ratio,
    fmt_seconds,
    fmt_ulps,
    groups,
    refutations,
    status,
)

__all__ = ["render"]

SYMBOL = {"verified": "✓", "refuted": "✗", "expected_refuted": "✗ᵉ",
          "unexpected_verified": "?", "not_applicable": "·", "error": "!"}


def _cell(text: str) -> str:
    """Text that is safe inside a table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _math(latex: str) -> str:
    """Inline math; a pipe would end a table cell, so it is written as \\vert."""
    return "$" + latex.replace("\\|", "\\Vert ").replace("|", "\\vert ") + "$"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]],
           align: Sequence[str] | None = None) -> list[str]:
    align = align or ["l"] * len(head)
    sep = ["---:" if a == "r" else ":---:" if a == "c" else "---" for a in align]
    out = ["| " + " | ".join(head) + " |", "| " + " | ".join(sep) + " |"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _short(dt: str) -> str:
    return {"float64": "f64", "float32": "f32", "float16": "f16", "bfloat16": "bf16"}.get(dt, dt)


def _summary(data: ReportData) -> list[str]:
    c = counts(data.results)
    parts = [f"**{c['verified']}** verified", f"**{c['refuted']}** refuted"]
    if c["expected_refuted"]:
        parts.append(f"**{c['expected_refuted']}** seed statements refuted as expected")
    if c["unexpected_verified"]:
        parts.append(f"**{c['unexpected_verified']}** seed statements not refuted")
    parts.append(f"{c['not_applicable']} not applicable")
    if c["error"]:
        parts.append(f"**{c['error']}** errors")
    out = [f"{len(data.results)} claim results: {', '.join(parts)}.", ""]
    rows = []
    for t in data.targets:
        for dt in t.dtypes:
            rs = [r for r in t.results if r.dtype == dt]
            if not rs:
                continue
            k = counts(rs)
            rows.append([t.target, dt, str(k["verified"]), str(k["refuted"]),
                         str(k["expected_refuted"]), str(k["not_applicable"]),
                         str(k["error"] + k["unexpected_verified"])])
    out += _table(["target", "dtype", "verified", "refuted", "refuted as expected",
                   "not applicable", "errors / unexpected"], rows, "llrrrrr")
    if data.skipped:
        out += ["", "Skipped targets:", ""]
        out += [f"- **{s.target}**: {_cell(s.reason)}" for s in data.skipped]
    cols = columns(data)
    out += ["", "### Every claim", "",
            "✓ verified (no counterexample in the examples run) · ✗ refuted · ✗ᵉ refuted, as the "
            "seed audit expects · ? expected to be refuted, no counterexample found · "
            "· not applicable · ! error", ""]
    head = ["claim"] + [f"{t} {_short(dt)}" for t, dt in cols]
    rows = []
    for fn, ids in groups(data):
        rows.append([f"**{fn}**"] + [""] * len(cols))
        for cid in ids:
            cells = [f"`{cid}`"]
            for target, dt in cols:
                r = data.result(target, dt, cid)
                cells.append(SYMBOL[status(r)] if r is not None else "·")
            rows.append(cells)
    out += _table(head, rows, "l" + "c" * len(cols))
    return out


def _seed_audit(data: ReportData) -> list[str]:
    ref = next((t for t in data.targets if t.target == "reference"), None)
    ids = [cid for cid in data.claim_ids() if cid.startswith("seed.")]
    if ref is None or not ids:
        return ["Not run: the seed audit is checked on the `reference` target."]
    out = ["Each statement of the seed derivation, checked against the mpmath oracle on the "
           "`reference` target.", ""]
    for cid in ids:
        claim = claim_of(cid)
        rs = [r for r in ref.results if r.claim_id == cid]
        if claim is None or not rs:
            continue
        verdicts = ", ".join(f"{SYMBOL[status(r)]} {r.verdict} ({r.dtype}, {r.examples} "
                             f"examples)" for r in rs)
        out += [f"#### `{cid}`", "", f"{claim.statement}  ", f"{_math(claim.latex)}", "",
                f"- Source: {claim.source}",
                f"- Expected: {'refuted' if claim.expect == 'refuted' else 'holds'}",
                f"- Verdict: {verdicts}"]
        if claim.correct:
            out.append(f"- Correct statement: {claim.correct}")
        cex = next((r for r in rs if r.shrunk is not None), None)
        if cex is not None and cex.shrunk is not None:
            out += [f"- Counterexample ({cex.dtype}, seed {cex.seed}): {cex.shrunk.problem}", "",
                    "  ```python"]
            out += [f"  {k} = {v}" for k, v in cex.shrunk.inputs.items()]
            out += ["  ```"]
        out.append("")
    return out


def _accuracy(data: ReportData) -> list[str]:
    cells = accuracy(data)
    if not cells:
        return ["No accuracy claims were run."]
    out = ["The largest error found, in ulps of the dtype and (in parentheses) as a fraction of "
           "the claim's budget, over the claims that compare each function with the mpmath "
           "reference (in the style of Zimmermann et al., *Accuracy of mathematical "
           "functions*). Errors the search found, not proven bounds; ✗ marks a refuted claim "
           "and how far over the budget its worst example went. Ulps are relative to the exact "
           "value: near zero the budgets are absolute, so a result can be many ulps off and "
           "within its budget.", ""]
    for dt in dict.fromkeys(a.dtype for a in cells):
        mine = {(a.function, a.target): a for a in cells if a.dtype == dt}
        ts = list(dict.fromkeys(t for _, t in mine))
        fns = list(dict.fromkeys(f for f, _ in mine))
        rows = []
        for fn in fns:
            row = [fn]
            for t in ts:
                a = mine.get((fn, t))
                if a is None or a.verdict == "not_applicable":
                    row.append("—")
                elif a.verdict == "error":
                    row.append("error")
                elif a.verdict == "refuted":
                    row.append(f"✗ ({fmt_ratio(a.max_ratio)}×)")
                else:
                    row.append(f"{fmt_ulps(a.max_ulps)} ({fmt_ratio(a.max_ratio)}×)")
            rows.append(row)
        out += [f"#### {dt}", "", *_table(["function", *ts], rows, "l" + "r" * len(ts)), ""]
        in_order = sorted(mine.values(), key=lambda a: (fns.index(a.function),
                                                        ts.index(a.target)))
        worst = [a for a in in_order if a.worst is not None
                 and a.verdict in ("verified", "refuted") and a.max_ratio > 0]
        if worst:
            out += [f"Worst inputs ({dt}):", ""]
            wrows = []
            for a in worst:
                assert a.worst is not None
                inputs = "; ".join(f"{k} = {v}" if len(v) < 200 else f"{k} = {v[:190]} …"
                                   for k, v in a.worst.inputs.items())
                wrows.append([a.function, a.target, fmt_ulps(a.max_ulps),
                              fmt_ratio(a.max_ratio), f"`{_cell(inputs)}`"])
            out += [*_table(["function", "target", "ulps", "× budget", "input"], wrows,
                            "llrrl"), ""]
    return out


def _plots(plot_names: Sequence[str]) -> list[str]:
    captions = {
        "accuracy": "Worst error as a fraction of the budget (log scale) per function, target "
                    "and dtype; the red line is the budget.",
        "magnitude": "Worst error/budget of each numerical claim against the largest |logit| of "
                     "the input that produced it (one point per claim, target and dtype).",
    }
    out = []
    for name in plot_names:
        out += [f"![{captions.get(name, name)}](plots/{name}.svg)", "",
                f"*{captions.get(name, '')}*", ""]
    return out


def _refutations(data: ReportData) -> list[str]:
    rs = refutations(data)
    if not rs:
        return ["Nothing refuted: every applicable claim holds on every target and dtype."]
    out = [f"{len(rs)} results: every refuted claim (seed statements refuted as expected "
           f"included), every error, every statement that went against expectation.", ""]
    current = ""
    for r in rs:
        if r.target != current:
            current = r.target
            out += [f"### {current}", ""]
        claim = claim_of(r.claim_id)
        formula = f" {_math(claim.latex)}" if claim is not None else ""
        out += [f"#### {SYMBOL[status(r)]} `{r.claim_id}` · {r.dtype}", "", formula.strip(), "",
                "```", format_refutation(r), "```", ""]
    return out


def _run(data: ReportData) -> list[str]:
    from softmax_oracle.engine.search import PROFILES

    prof = PROFILES.get(data.profile)
    cpu = sum(t.seconds for t in data.targets)
    out = _table(["", ""], [
        ["command", f"`{data.command}`" if data.command else "—"],
        ["profile", data.profile + (f" ({prof.description}; {prof.max_examples} examples per "
                                    f"claim)" if prof else "")],
        ["level", data.level],
        ["seed", str(data.seed)],
        ["claims", _cell(data.claims) if data.claims else "all"],
        ["dtypes", ", ".join(data.dtypes)],
        ["time", f"{fmt_seconds(data.seconds)} wall, {fmt_seconds(cpu)} of checking, "
                 f"{data.jobs} worker process{'es' if data.jobs > 1 else ''}"],
        ["generated", data.generated],
    ])
    out += ["", "Versions:", ""]
    out += _table(["package", "version"], [[k, v] for k, v in data.versions.items()])
    out += ["", "Targets:", ""]
    rows = [[t.target, t.target_version, ", ".join(t.dtypes), str(len(t.results)),
             str(sum(r.examples for r in t.results)), fmt_seconds(t.seconds),
             _cell("; ".join(t.notes))] for t in data.targets]
    rows += [[s.target, "", "", "", "", "", _cell("skipped: " + s.reason)]
             for s in data.skipped]
    out += _table(["target", "version", "dtypes", "results", "examples", "time", "notes"], rows,
                  "lllrrrl")
    return out


def _claims(data: ReportData) -> list[str]:
    out = []
    for cid in data.claim_ids():
        c = claim_of(cid)
        if c is None:
            continue
        tags = [c.kind] + ([f"level {c.level}"] if c.level != "stable" else []) + (
            [f"expected {c.expect}"] if c.expect != "holds" else [])
        pre = f" If {'; '.join(c.preconditions)}." if c.preconditions else ""
        out.append(f"- **`{cid}`** ({', '.join(tags)}): {_math(c.latex)}  \n"
                   f"  {c.statement}.{pre} *Source: {c.source}.*")
    return out


def render(data: ReportData, plot_names: Sequence[str] = ()) -> str:
    """The whole Markdown page."""
    targets = ", ".join(t.target for t in data.targets)
    lines = ["# softmax-oracle report", "",
             f"Targets {targets} × {', '.join(data.dtypes)}; profile {data.profile}, level "
             f"{data.level}, seed {data.seed}; {fmt_seconds(data.seconds)}; softmax-oracle "
             f"{data.kit_version}; generated {data.generated}.", ""]
    sections = [("Summary", _summary(data)), ("Seed audit", _seed_audit(data)),
                ("Accuracy", _accuracy(data)), ("Plots", _plots(plot_names)),
                ("Refutations", _refutations(data)), ("What was run", _run(data)),
                ("Claims", _claims(data))]
    for title, body in sections:
        lines += [f"## {title}", "", *body, ""]
    return "\n".join(lines).rstrip() + "\n"
