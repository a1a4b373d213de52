"""The report as Markdown for a code-hosting site: tables, formulas as ``$...$`` LaTeX, the plots
as image links to ``plots/*.svg``; no HTML.

Text that comes from a target or a results file (target names and versions, messages, inputs,
claim ids) goes through ``_text``, ``_code`` or ``_fence``, so that it can neither end a table
cell or a code block early nor put HTML into the page.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from softmax_oracle.report.text import UNKNOWN_CLAIM, format_refutation
from softmax_oracle.report.views import (
    ReportData,
    accuracy,
    claim_of,
    columns,
    conventions,
    count_phrases,
    counts,
    fmt_ratio,
    fmt_seconds,
    fmt_ulps,
    groups,
    note,
    qualified,
    refutations,
    skip_groups,
    skipped_names,
    status,
)

__all__ = ["render"]

SYMBOL = {"verified": "✓", "uninformative": "○", "refuted": "✗", "expected_refuted": "✗ᵉ",
          "unexpected_verified": "?", "unjudged": "⊘", "follows": "=", "differs": "≠",
          "not_applicable": "·", "error": "!"}


def _text(text: object) -> str:
    """Text as it reads, on one line, safe in prose and in a table cell: HTML special characters
    as entities, table pipes escaped."""
    return html.escape(" ".join(str(text).split()), quote=False).replace("|", "\\|")


def _code(text: object, table: bool = False) -> str:
    """Inline code, on one line: its delimiter is a longer run of backticks than any inside it,
    and in a table (``table``) its pipes are escaped, as GitHub's tables require even there."""
    one_line = " ".join(str(text).split())
    ticks = "`" * (max(map(len, re.findall("`+", one_line)), default=0) + 1)
    pad = " " if one_line.startswith("`") or one_line.endswith("`") else ""
    if table:
        one_line = one_line.replace("|", "\\|")
    return f"{ticks}{pad}{one_line}{pad}{ticks}"


def _fence(text: str, info: str = "", indent: str = "") -> list[str]:
    """A fenced code block whose fence is longer than any run of backticks in ``text``."""
    ticks = "`" * max(3, max(map(len, re.findall("`+", text)), default=0) + 1)
    return [indent + ticks + info, *(indent + line for line in text.splitlines()), indent + ticks]


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
    return {"float64": "f64", "float32": "f32", "float16": "f16",
            "bfloat16": "bf16"}.get(dt, _text(dt))


def _summary(data: ReportData) -> list[str]:
    parts = count_phrases(counts(data.results),
                          lambda key, n: str(n) if key == "not_applicable" else f"**{n}**")
    out = [f"{len(data.results)} claim results: {', '.join(parts)}.", ""]
    rows = []
    for t in data.targets:
        for dt in t.dtypes:
            rs = [r for r in t.results if r.dtype == dt]
            if not rs:
                continue
            k = counts(rs)
            rows.append([_text(t.target), dt, str(k["verified"]), str(k["uninformative"]),
                         str(k["refuted"]), str(k["expected_refuted"]), str(k["unjudged"]),
                         f"{k['follows']} / {k['differs']}", str(k["not_applicable"]),
                         str(k["error"] + k["unexpected_verified"])])
    out += _table(["target", "dtype", "verified", "uninformative", "refuted",
                   "refuted as expected", "unjudged", "conventions followed / not",
                   "not applicable", "errors / unexpected"], rows, "llrrrrrcrr")
    if data.skipped:
        out += ["", "Skipped targets:", ""]
        out += [f"- **{_text(s.target)}**: {_text(s.reason)}" for s in data.skipped]
    cols = columns(data)
    out += ["", "### Every claim", "",
            "✓ verified (no counterexample in the examples run) · ○ uninformative (no "
            "counterexample, but every budget was at least the quantity it bounds) · ✗ refuted "
            "· ✗ᵉ refuted, as the seed audit expects · ? expected to be refuted, no "
            "counterexample found · ⊘ unjudged (the target raised on every example) · = follows "
            "the stated convention · ≠ follows another convention · · not applicable · ! error",
            ""]
    head = ["claim"] + [f"{_text(t)} {_short(dt)}" for t, dt in cols]
    rows = []
    for fn, ids in groups(data):
        rows.append([f"**{_text(fn)}**"] + [""] * len(cols))
        for cid in ids:
            cells = [_code(cid, table=True)]
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
        out += [f"#### {_code(cid)}", "", f"{_text(claim.statement)}  ",
                f"{_math(claim.latex)}", "", f"- Source: {_text(claim.source)}",
                f"- Expected: {'refuted' if claim.expect == 'refuted' else 'holds'}",
                f"- Verdict: {verdicts}"]
        if claim.correct:
            out.append(f"- Correct statement: {_text(claim.correct)}")
        cex = next((r for r in rs if r.shrunk is not None), None)
        if cex is not None and cex.shrunk is not None:
            out += [f"- Counterexample ({cex.dtype}, seed {cex.seed}): "
                    f"{_text(cex.shrunk.problem)}", ""]
            out += _fence("\n".join(f"{k} = {v}" for k, v in cex.shrunk.inputs.items()),
                          "python", "  ")
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
                elif a.verdict in ("error", "unjudged"):
                    row.append(a.verdict)
                elif a.verdict == "refuted":
                    row.append(f"✗ ({fmt_ratio(a.max_ratio)}×)")
                else:  # uninformative: marked, the numbers say little
                    mark = "○ " if a.verdict == "uninformative" else ""
                    row.append(f"{mark}{fmt_ulps(a.max_ulps)} ({fmt_ratio(a.max_ratio)}×)")
            rows.append(row)
        out += [f"#### {_text(dt)}", "",
                *_table(["function", *map(_text, ts)], rows, "l" + "r" * len(ts)), ""]
        in_order = sorted(mine.values(), key=lambda a: (fns.index(a.function),
                                                        ts.index(a.target)))
        worst = [a for a in in_order if a.worst is not None
                 and a.verdict in ("verified", "uninformative", "refuted") and a.max_ratio > 0]
        if worst:
            out += [f"Worst inputs ({dt}):", ""]
            wrows = []
            for a in worst:
                assert a.worst is not None
                inputs = "; ".join(f"{k} = {v}" if len(v) < 200 else f"{k} = {v[:190]} …"
                                   for k, v in a.worst.inputs.items())
                wrows.append([a.function, _text(a.target), fmt_ulps(a.max_ulps),
                              fmt_ratio(a.max_ratio), _code(inputs, table=True)])
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
            out += [f"### {_text(current)}", ""]
        claim = claim_of(r.claim_id)
        formula = f" {_math(claim.latex)}" if claim is not None else ""
        out += [f"#### {SYMBOL[status(r)]} {_code(r.claim_id)} · {_text(r.dtype)}", "",
                formula.strip(), "", *_fence(format_refutation(r)), ""]
    return out


def _conventions(data: ReportData) -> list[str]:
    rs = conventions(data)
    if not rs:
        return ["No convention claims were run."]
    out = ["Where the mathematics leaves a choice, which of the legitimate conventions each target "
           "follows: not a bug either way (a value that follows neither is a refutation).", ""]
    rows = []
    for r in rs:
        where = ""
        if r.shrunk is not None:
            inputs = "; ".join(f"{k} = {v}" for k, v in r.shrunk.inputs.items())
            where = f"{_text(r.shrunk.problem.splitlines()[0])}<br>{_code(inputs, table=True)}"
        rows.append([_code(r.claim_id, table=True), _text(r.target), _text(r.dtype),
                     f"{SYMBOL[r.verdict]} {_text(note(r))}", where])
    return out + _table(["claim", "target", "dtype", "verdict", "example"], rows)


def _rests_on(data: ReportData) -> list[str]:
    rest = [r for r in qualified(data.results) if r.uninformative or r.verdict == "uninformative"]
    groups_ = skip_groups(data.results)
    if not rest and not groups_:
        return ["Every verdict rests on all its examples, and on budgets below the quantities "
                "they bound."]
    out = ["Results whose budgets said nothing on some or all examples (a budget at least the "
           "quantity it bounds passes any value from 0 to twice the exact one; see "
           "docs/tolerances.md, \"Uninformative budgets\"), and examples skipped because the "
           "target raised (judged once, under `<function>.returns_on_valid_input`).", ""]
    if rest:
        out += _table(["claim", "target", "dtype", "verdict", "what it rests on"],
                      [[_code(r.claim_id, table=True), _text(r.target), _text(r.dtype),
                        f"{SYMBOL[status(r)]} {r.verdict}", _text(note(r))] for r in rest])
        out.append("")
    for where, cause, rs in groups_:
        out += [f"- **Examples skipped** ({_text(where)}): {_text(cause)}. "
                f"{_text(skipped_names(rs))}"]
    return out


def _run(data: ReportData) -> list[str]:
    from softmax_oracle.engine.profiles import PROFILES

    prof = PROFILES.get(data.profile)
    cpu = sum(t.seconds for t in data.targets)
    out = _table(["", ""], [
        ["command", _code(data.command, table=True) if data.command else "—"],
        ["profile", _text(data.profile) + (f" ({prof.description}; {prof.max_examples} "
                                           f"examples per claim)" if prof else "")],
        ["level", _text(data.level)],
        ["seed", str(data.seed)],
        ["claims", _text(data.claims) if data.claims else "all"],
        ["dtypes", _text(", ".join(data.dtypes))],
        ["time", f"{fmt_seconds(data.seconds)} wall, {fmt_seconds(cpu)} of checking, "
                 f"{data.jobs} worker process{'es' if data.jobs > 1 else ''}"],
        ["generated", _text(data.generated)],
    ])
    out += ["", "Versions:", ""]
    out += _table(["package", "version"],
                  [[_text(k), _text(v)] for k, v in data.versions.items()])
    out += ["", "Targets:", ""]
    rows = [[_text(t.target), _text(t.target_version), _text(", ".join(t.dtypes)),
             str(len(t.results)),
             str(sum(r.examples for r in t.results)), fmt_seconds(t.seconds),
             _text("; ".join(t.notes))] for t in data.targets]
    rows += [[_text(s.target), "", "", "", "", "", _text("skipped: " + s.reason)]
             for s in data.skipped]
    out += _table(["target", "version", "dtypes", "results", "examples", "time", "notes"], rows,
                  "lllrrrl")
    return out


def _claims(data: ReportData) -> list[str]:
    out = []
    for cid in data.claim_ids():
        c = claim_of(cid)
        if c is None:
            out.append(f"- **{_code(cid)}**: {UNKNOWN_CLAIM}.")
            continue
        tags = [c.kind] + ([f"level {c.level}"] if c.level != "stable" else []) + (
            [f"expected {c.expect}"] if c.expect != "holds" else [])
        pre = f" If {_text('; '.join(c.preconditions))}." if c.preconditions else ""
        out.append(f"- **{_code(cid)}** ({', '.join(tags)}): {_math(c.latex)}  \n"
                   f"  {_text(c.statement)}.{pre} *Source: {_text(c.source)}.*")
    return out


def render(data: ReportData, plot_names: Sequence[str] = ()) -> str:
    """The whole Markdown page."""
    targets = ", ".join(t.target for t in data.targets)
    lines = ["# softmax-oracle report", "",
             _text(f"Targets {targets} × {', '.join(data.dtypes)}; profile {data.profile}, "
                   f"level {data.level}, seed {data.seed}; {fmt_seconds(data.seconds)}; "
                   f"softmax-oracle {data.kit_version}; generated {data.generated}."), ""]
    sections = [("Summary", _summary(data)), ("Seed audit", _seed_audit(data)),
                ("Accuracy", _accuracy(data)), ("Plots", _plots(plot_names)),
                ("Refutations", _refutations(data)), ("Conventions", _conventions(data)),
                ("What the verdicts rest on", _rests_on(data)), ("What was run", _run(data)),
                ("Claims", _claims(data))]
    for title, body in sections:
        lines += [f"## {title}", "", *body, ""]
    return "\n".join(lines).rstrip() + "\n"
