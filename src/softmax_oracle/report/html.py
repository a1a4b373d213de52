"""The report as one self-contained HTML page: inline CSS, inline SVG plots, formulas as MathML,
and a four-line script that opens a refutation's details when a link points at it. Nothing is
fetched: the page works offline."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence

from softmax_oracle.engine.results import ClaimResult
from softmax_oracle.report.mathml import MathMLError, to_mathml
from softmax_oracle.report.text import UNKNOWN_CLAIM, format_refutation
from softmax_oracle.report.views import (
    ReportData,
    accuracy,
    anchor,
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

__all__ = ["formula", "render"]

SYMBOL = {"verified": "✓", "uninformative": "○", "refuted": "✗", "expected_refuted": "✗",
          "unexpected_verified": "?", "unjudged": "⊘", "follows": "=", "differs": "≠",
          "not_applicable": "·", "error": "!"}
LABEL = {"verified": "verified", "refuted": "refuted",
         "uninformative": "uninformative: every budget at least the quantity it bounds",
         "expected_refuted": "refuted, as the seed audit expects",
         "unexpected_verified": "expected to be refuted, but no counterexample found",
         "unjudged": "unjudged: the target raised on every example",
         "follows": "follows the stated convention", "differs": "follows another convention",
         "not_applicable": "not applicable", "error": "error"}

_CSS = """
:root { --ink:#1f2328; --muted:#57606a; --line:#d0d7de; --soft:#f6f8fa;
  --ok:#1a7f37; --ok-bg:#dafbe1; --bad:#cf222e; --bad-bg:#ffebe9; --exp:#8250df;
  --exp-bg:#f3e8ff; --na:#8c959f; --na-bg:#f6f8fa; --err:#9a6700; --err-bg:#fff8c5; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1340px; margin: 0 auto; padding: 10px 18px 60px; }
h1 { font-size: 22px; margin: 6px 0 2px; }
h2 { font-size: 18px; margin: 30px 0 8px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; }
p { margin: 6px 0; }
a { color: #0969da; text-decoration: none; }
a:hover { text-decoration: underline; }
code, pre { font: 12px/1.4 ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, monospace; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px;
  white-space: pre-wrap; overflow-wrap: anywhere; margin: 6px 0; }
math { font-size: 1.05em; font-family: "Latin Modern Math", "STIX Two Math", "Cambria Math", math; }
.meta { color: var(--muted); margin: 0 0 6px; }
nav { position: sticky; top: 0; z-index: 5; background: #fff; border-bottom: 1px solid var(--line);
  padding: 6px 0; margin-bottom: 8px; font-size: 13px; height: 33px; line-height: 20px; }
nav a { margin-right: 14px; }
.headline { font-size: 15px; margin: 8px 0 10px; }
.headline b.ok { color: var(--ok); } .headline b.bad { color: var(--bad); }
.headline b.exp { color: var(--exp); } .headline b.err { color: var(--err); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(148px, 1fr)); gap: 8px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 6px 8px 7px; }
.card h3 { margin: 0 0 3px; font-size: 14px; display: flex; justify-content: space-between; }
.card h3 span { color: var(--muted); font-weight: normal; font-size: 11px; }
.card .dt { font-size: 11px; color: var(--muted); display: flex; justify-content: space-between;
  margin-top: 3px; }
.bar { display: flex; height: 8px; border-radius: 4px; overflow: hidden; background: var(--na-bg); }
.bar i { display: block; height: 100%; }
.bar .verified { background: #4ac26b; } .bar .refuted { background: var(--bad); }
.bar .expected_refuted { background: var(--exp); }
.bar .unexpected_verified { background: #d4a72c; }
.bar .not_applicable { background: #d0d7de; } .bar .error { background: #bf8700; }
.bar .uninformative, .bar .unjudged { background: #afb8c1; }
.bar .follows, .bar .differs { background: #54aeff; }
.skipped { color: var(--muted); font-size: 13px; }
table { border-collapse: collapse; }
.matrix-wrap { display: flex; flex-wrap: wrap; gap: 16px 32px; align-items: flex-start; }
aside.legend { position: sticky; top: 48px; max-width: 400px; font-size: 12.5px;
  color: var(--muted); border: 1px solid var(--line); border-radius: 8px; padding: 8px 12px; }
aside.legend ul { list-style: none; margin: 0 0 6px; padding: 0; }
aside.legend li { margin: 3px 0; color: var(--ink); }
aside.legend span.c { display: inline-block; width: 22px; text-align: center;
  border-radius: 3px; margin-right: 8px; font-weight: 600; }
table.matrix { font-size: 12px; }
.matrix thead th { position: sticky; background: #fff; z-index: 2; font-weight: 600; }
.matrix thead tr:first-child th { top: 33px; height: 22px; }
.matrix thead tr:nth-child(2) th { top: 55px; color: var(--muted); font-weight: normal;
  font-size: 11px; border-bottom: 1px solid var(--line); }
.matrix th.claim { text-align: left; font-weight: normal; padding: 1px 10px 1px 4px;
  white-space: nowrap; max-width: 330px; overflow: hidden; text-overflow: ellipsis; }
.matrix th.claim a { color: var(--ink); }
.matrix th.claim .kind { color: var(--muted); font-size: 10px; margin-left: 4px; }
.matrix tr.group th { text-align: left; background: var(--soft); font-size: 12px;
  padding: 3px 4px; border-top: 1px solid var(--line); }
.matrix td { width: 34px; min-width: 34px; height: 19px; text-align: center; padding: 0;
  font-weight: 600; border: 1px solid #fff; }
.matrix td a { color: inherit; display: block; }
.matrix .first { border-left: 2px solid #fff; }
.matrix thead th.t { border-left: 2px solid #fff; text-align: center; padding: 0 2px; }
.matrix tbody tr:hover th.claim { background: #eef6ff; }
.s-verified { background: var(--ok-bg); color: var(--ok); }
.s-refuted { background: var(--bad-bg); color: var(--bad); }
.s-expected_refuted { background: var(--exp-bg); color: var(--exp); }
.s-unexpected_verified { background: var(--err-bg); color: var(--err); }
.s-not_applicable { background: var(--na-bg); color: var(--na); font-weight: normal; }
.s-error { background: var(--err-bg); color: var(--err); }
.s-uninformative, .s-unjudged { background: var(--na-bg); color: var(--muted); }
.s-follows, .s-differs { background: #ddf4ff; color: #0969da; }
table.data { font-size: 13px; width: 100%; }
table.data th, table.data td { border-bottom: 1px solid var(--line); padding: 5px 8px;
  text-align: left; vertical-align: top; }
table.data thead th { background: var(--soft); font-weight: 600; }
table.data td.num, table.data th.num { text-align: right; white-space: nowrap; }
.badge { display: inline-block; border-radius: 10px; padding: 0 7px; font-size: 11px;
  font-weight: 600; white-space: nowrap; }
.stmt { color: var(--muted); font-size: 12px; }
.acc td.cell { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.acc .ulps { font-weight: 600; } .acc .ratio { color: var(--muted); font-size: 11px; }
.acc td.s-refuted .ratio { color: var(--bad); }
.acc td.s-not_applicable { color: var(--na); }
figure { margin: 10px 0 18px; } figure svg { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; }
details.ref { border: 1px solid var(--line); border-radius: 6px; margin: 4px 0; }
details.ref > summary { cursor: pointer; padding: 4px 8px; font-size: 13px; }
details.ref > summary .p { color: var(--muted); }
details.ref > div { padding: 0 10px 6px; }
details.ref[open] > summary { border-bottom: 1px solid var(--line); background: var(--soft); }
.note { color: var(--muted); font-size: 12px; }
section, details.ref, tr[id], figure { scroll-margin-top: 44px; }
.cols { display: flex; flex-wrap: wrap; gap: 10px 36px; align-items: flex-start; }
.cols h3 { margin-top: 0; }
"""

_SCRIPT = """
function openTarget() {
  var id = decodeURIComponent(location.hash.slice(1));
  var el = id ? document.getElementById(id) : null;
  if (el && el.tagName === "DETAILS") { el.open = true; el.scrollIntoView(); }
}
window.addEventListener("hashchange", openTarget);
openTarget();
"""


def _e(s: object) -> str:
    return html.escape(str(s), quote=True)


def formula(claim_id: str, *, display: bool = False) -> str:
    """The claim's formula as MathML, or its plain statement in <code> if it cannot be
    converted."""
    claim = claim_of(claim_id)
    if claim is None:
        return ""
    try:
        return to_mathml(claim.latex, display=display)
    except MathMLError:
        return f"<code>{_e(claim.statement)}</code>"


def _first_line(text: str, width: int = 140) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def _cell_title(r: ClaimResult) -> str:
    s = status(r)
    if s in ("verified", "unexpected_verified", "uninformative"):
        more = f"; {note(r)}" if note(r) else ""
        return (f"{LABEL[s]}: no counterexample in {r.examples} examples (seed {r.seed}); "
                f"worst error {fmt_ratio(r.max_ratio)} of the budget{more}")
    if s in ("unjudged", "follows", "differs"):
        return note(r)
    if s in ("refuted", "expected_refuted"):
        problem = r.shrunk.problem if r.shrunk is not None else r.reason
        return f"{LABEL[s]} ({r.examples} examples, seed {r.seed}): {_first_line(problem)}"
    return f"{LABEL[s]}: {_first_line(r.reason)}"


def _short_dtype(dt: str) -> str:
    return {"float64": "f64", "float32": "f32", "float16": "f16", "bfloat16": "bf16"}.get(dt, dt)


# =============================================================================== sections


#: The colour class of each count in the page's header.
_COUNT_CLASS = {"verified": "ok", "refuted": "bad", "expected_refuted": "exp",
                "unexpected_verified": "err", "error": "err"}
#: The statuses in the order the page lists them.
_ORDER = ("verified", "uninformative", "expected_refuted", "refuted", "unexpected_verified",
          "unjudged", "follows", "differs", "error", "not_applicable")


def _marked(key: str, n: int) -> str:
    return f"<b class='{_COUNT_CLASS[key]}'>{n}</b>" if key in _COUNT_CLASS else str(n)


def _header(data: ReportData) -> str:
    cols = columns(data)
    targets = list(dict.fromkeys(t for t, _ in cols))
    parts = count_phrases(counts(data.results), _marked)
    n_ref = len(refutations(data))
    meta = (f"{len(targets)} targets × {', '.join(data.dtypes)} · profile {_e(data.profile)} · "
            f"level {_e(data.level)} · seed {data.seed} · {fmt_seconds(data.seconds)} on "
            f"{data.jobs} process{'es' if data.jobs > 1 else ''} · softmax-oracle "
            f"{_e(data.kit_version)} · {_e(data.generated)}")
    nav = ("<nav><a href='#summary'>Summary</a><a href='#seed-audit'>Seed audit</a>"
           "<a href='#accuracy'>Accuracy</a><a href='#plots'>Plots</a>"
           f"<a href='#refutations'>Refutations ({n_ref})</a><a href='#rests-on'>Conventions "
           "and what the verdicts rest on</a><a href='#run'>What was run</a>"
           "<a href='#claims'>Claims</a></nav>")
    return (f"<h1>softmax-oracle report</h1><p class='meta'>{meta}</p>{nav}"
            f"<p class='headline'>{len(data.results)} claim results: {', '.join(parts)}.</p>")


def _glance(data: ReportData) -> str:
    order = _ORDER
    cards = []
    for t in data.targets:
        rows = []
        for dt in t.dtypes:
            rs = [r for r in t.results if r.dtype == dt]
            if not rs:
                continue
            c = counts(rs)
            bar = "".join(f"<i class='{k}' style='width:{100 * c[k] / len(rs):.2f}%'></i>"
                          for k in order if c[k])
            bad = c["refuted"] + c["error"] + c["unexpected_verified"]
            text = f"{c['verified']} ✓ {bad} ✗" + (
                f" {c['expected_refuted']} ✗ᵉ" if c["expected_refuted"] else "")
            rows.append(f"<div class='dt'><span>{_short_dtype(dt)}</span><span>{text}</span>"
                        "</div>"
                        f"<div class='bar' title='{_e(t.target)} {_e(dt)}: "
                        f"{', '.join(f'{c[k]} {LABEL[k]}' for k in order if c[k])}'>{bar}</div>")
        version = f"<span>{_e(t.target_version)}</span>" if t.target_version else ""
        cards.append(f"<div class='card'><h3><a href='#run-{_e(t.target)}'>{_e(t.target)}</a>"
                     f"{version}</h3>{''.join(rows)}</div>")
    skipped = ""
    if data.skipped:
        skipped = ("<p class='skipped'>Skipped: " + "; ".join(
            f"<b>{_e(s.target)}</b> ({_e(_first_line(s.reason, 120))})" for s in data.skipped)
            + "</p>")
    return f"<div class='cards' id='glance'>{''.join(cards)}</div>{skipped}"


def _legend(data: ReportData) -> str:
    items = "".join(f"<li><span class='c s-{k}'>{SYMBOL[k]}</span>{LABEL[k]}</li>"
                    for k in _ORDER)
    return (f"<aside class='legend'><ul>{items}</ul>"
            "<p><b>Verified</b> means no counterexample in the examples run (seed "
            f"{data.seed}), nothing more. Hover a cell for its examples, its worst error and "
            "its problem; click ✗ or ! for the counterexample and the command that reproduces "
            "it.</p><p>Rows are grouped by function. <i>contract</i>: the plug-in protocol "
            "(no mutation, shapes, axes, determinism). <i>math</i>: a statement about the "
            "mathematics itself, checked by the oracle on the reference only. <i>convention</i>: "
            "which legitimate convention the target follows, never a bug. Not applicable: "
            "the target lacks the function or the dtype.</p></aside>")


def _matrix(data: ReportData) -> str:
    cols = columns(data)
    targets = list(dict.fromkeys(t for t, _ in cols))
    head1 = ["<th rowspan='2' class='claim'>claim</th>"]
    head2: list[str] = []
    for t in targets:
        n = sum(1 for tt, _ in cols if tt == t)
        head1.append(f"<th class='t' colspan='{n}'>{_e(t)}</th>")
        head2.extend(f"<th class='{'t' if i == 0 else ''}'>{_short_dtype(dt)}</th>"
                     for i, (tt, dt) in enumerate(c for c in cols if c[0] == t))
    body = []
    for fn, ids in groups(data):
        label = "seed audit (mathematics: the reference only)" if fn == "seed" else fn
        body.append(f"<tr class='group'><th colspan='{len(cols) + 1}'>{_e(label)}</th></tr>")
        for cid in ids:
            claim = claim_of(cid)
            short = cid.split(".", 1)[1] if "." in cid else cid
            kind = ""
            if claim is not None and claim.kind != "numerical":
                tag = "math" if claim.kind == "mathematics" else claim.kind
                kind = f"<span class='kind'>{tag}</span>"
            tip = claim.statement if claim is not None else UNKNOWN_CLAIM
            cells = [f"<th class='claim' title='{_e(cid)}: {_e(tip)}'>"
                     f"<a href='#c-{_e(cid)}'>{_e(short)}</a>{kind}</th>"]
            prev = ""
            for t, dt in cols:
                first = " first" if t != prev else ""
                prev = t
                r = data.result(t, dt, cid)
                if r is None:
                    why = ("a statement about the mathematics, checked on the reference only"
                           if claim is not None and claim.kind == "mathematics" else "not run")
                    cells.append(f"<td class='s-not_applicable{first}' title='{why}'>·</td>")
                    continue
                s = status(r)
                sym = SYMBOL[s]
                if s in ("refuted", "expected_refuted", "error", "unexpected_verified",
                         "differs"):
                    sym = f"<a href='#{anchor(r)}'>{sym}</a>"
                cells.append(f"<td class='s-{s}{first}' title='{_e(_cell_title(r))}'>{sym}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<table class='matrix'><thead><tr>{''.join(head1)}</tr><tr>{''.join(head2)}</tr>"
            f"</thead><tbody>{''.join(body)}</tbody></table>")


def _inputs_pre(inputs: dict[str, str], width: int = 600) -> str:
    lines = []
    for k, v in inputs.items():
        if len(v) > width:
            v = v[: width - 16] + " … (truncated)"
        lines.append(f"{k} = {v}")
    return "\n".join(lines)


def _seed_audit(data: ReportData) -> str:
    ref = next((t for t in data.targets if t.target == "reference"), None)
    seed_ids = [cid for cid in data.claim_ids() if cid.startswith("seed.")]
    if ref is None or not seed_ids:
        return ("<p>Not run: the seed audit is checked on the <code>reference</code> target"
                " (add it to the targets, and do not exclude the <code>seed.*</code> "
                "claims).</p>")
    rows = []
    for cid in seed_ids:
        claim = claim_of(cid)
        rs = [r for r in ref.results if r.claim_id == cid]
        if claim is None or not rs:
            continue
        verdicts = "<br>".join(
            f"<span class='badge s-{status(r)}' title='{_e(_cell_title(r))}'>"
            f"{SYMBOL[status(r)]} {_e(r.verdict)}</span> <span class='note'>{_e(r.dtype)}</span>"
            for r in rs)
        expected = ("<span class='badge s-expected_refuted'>refuted</span>"
                    if claim.expect == "refuted" else "<span class='badge s-verified'>holds"
                                                      "</span>")
        cex_r = next((r for r in rs if r.shrunk is not None), None)
        if cex_r is not None and cex_r.shrunk is not None:
            cex = (f"<pre>{_e(_inputs_pre(cex_r.shrunk.inputs))}</pre>"
                   f"<div class='stmt'>{_e(cex_r.shrunk.problem)}</div>"
                   f"<div class='note'>{_e(cex_r.dtype)}, seed {cex_r.seed} · "
                   f"<a href='#{anchor(cex_r)}'>details</a></div>")
        else:
            n = sum(r.examples for r in rs)
            cex = f"<span class='note'>none in {n} examples</span>"
        correct = _e(claim.correct) if claim.correct else (
            "<span class='note'>the statement is correct as written</span>")
        rows.append(
            f"<tr><td><b>{_e(cid)}</b><div>{formula(cid)}</div>"
            f"<div class='stmt'>{_e(claim.statement)}</div>"
            f"<div class='note'>{_e(claim.source)}</div></td>"
            f"<td>{expected}</td><td>{verdicts}</td><td>{correct}</td><td>{cex}</td></tr>")
    return ("<p>Each statement of the seed derivation, checked against the mpmath oracle on the "
            "<code>reference</code> target: what it claims, what the audit expects, what the "
            "search found, the correct statement, and a concrete counterexample (shrunk).</p>"
            "<table class='data'><thead><tr><th style='width:27%'>statement</th>"
            "<th>expected</th><th>verdict</th><th style='width:25%'>correct statement</th>"
            "<th style='width:30%'>counterexample</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _accuracy(data: ReportData) -> str:
    cells = accuracy(data)
    if not cells:
        return "<p>No accuracy claims were run.</p>"
    out = ["<p>The largest error found, in units in the last place of the dtype (ulps) and as a "
           "fraction of the claim's budget (1 = at the budget), over the examples of the claims "
           "that compare each function with the mpmath reference; in the style of Zimmermann et "
           "al., <i>Accuracy of mathematical functions</i>. These are errors the search found, "
           "not proven bounds. Hover a cell for the input that produced it. Ulps are measured on "
           "examples within the budget, relative to the exact value: where the exact value is "
           "near zero (log-sum-exp near 0, gradient components that cancel) the budgets are "
           "absolute, so a result can be many ulps off and well within its budget. A refuted "
           "cell shows how far over the budget the worst example went.</p>"]
    dtypes = list(dict.fromkeys(a.dtype for a in cells))
    targets = list(dict.fromkeys(a.target for a in cells))
    for dt in dtypes:
        mine = {(a.function, a.target): a for a in cells if a.dtype == dt}
        ts = [t for t in targets if any(k[1] == t for k in mine)]
        fns = list(dict.fromkeys(a.function for a in cells if a.dtype == dt))
        head = "".join(f"<th class='num'>{_e(t)}</th>" for t in ts)
        rows = []
        for fn in fns:
            tds = []
            for t in ts:
                a = mine.get((fn, t))
                if a is None:
                    tds.append("<td></td>")
                    continue
                if a.verdict in ("not_applicable", "error", "unjudged"):
                    reason = a.result.reason if a.result is not None else ""
                    tds.append(f"<td class='cell s-{a.verdict}' title='{_e(_first_line(reason))}'"
                               f">{'—' if a.verdict == 'not_applicable' else a.verdict}</td>")
                    continue
                where = ""
                if a.worst is not None:
                    where = ("; input: " + _inputs_pre(a.worst.inputs, 300).replace("\n", ", "))
                title = (f"{a.claim_id}: {fmt_ulps(a.max_ulps)} ulps, {fmt_ratio(a.max_ratio)} "
                         f"of the budget in {a.examples} examples{where}")
                if a.verdict == "refuted":
                    link = f"#{anchor(a.result)}" if a.result is not None else "#refutations"
                    tds.append(f"<td class='cell s-refuted' title='{_e(title)}'><a href='{link}'>"
                               f"<span class='ulps'>✗</span> <span class='ratio'>"
                               f"{fmt_ratio(a.max_ratio)}×</span></a></td>")
                else:  # uninformative: marked, the numbers say little
                    s = " s-uninformative" if a.verdict == "uninformative" else ""
                    tds.append(f"<td class='cell{s}' title='{_e(title)}'><span class='ulps'>"
                               f"{'○ ' if s else ''}{fmt_ulps(a.max_ulps)}</span> <span "
                               f"class='ratio'>({fmt_ratio(a.max_ratio)}×)</span></td>")
            rows.append(f"<tr><th>{_e(fn)}</th>{''.join(tds)}</tr>")
        out.append(f"<h3>{_e(dt)}: largest error in ulps (and × budget)</h3>"
                   f"<table class='data acc'><thead><tr><th>function</th>{head}</tr></thead>"
                   f"<tbody>{''.join(rows)}</tbody></table>")
        worst_rows = []
        for (fn, t), a in sorted(mine.items(), key=lambda kv: (fns.index(kv[0][0]),
                                                                 ts.index(kv[0][1]))):
            if a.worst is None or a.verdict not in ("verified", "uninformative", "refuted"):
                continue
            worst_rows.append(
                f"<tr><td>{_e(fn)}</td><td>{_e(t)}</td><td class='num'>{fmt_ulps(a.max_ulps)}"
                f"</td><td class='num'>{fmt_ratio(a.max_ratio)}</td><td><code>{_e(a.claim_id)}"
                f"</code><pre>{_e(_inputs_pre(a.worst.inputs, 400))}</pre></td></tr>")
        if worst_rows:
            out.append(f"<details><summary class='note'>The worst input of each cell ({_e(dt)})"
                       "</summary><table class='data'><thead><tr><th>function</th><th>target"
                       "</th><th class='num'>ulps</th><th class='num'>× budget</th><th>claim "
                       "and input</th></tr></thead><tbody>" + "".join(worst_rows)
                       + "</tbody></table></details>")
    return "".join(out)


def _plots(plots: dict[str, str]) -> str:
    captions = {
        "accuracy": "The worst error of each function as a fraction of its budget (log scale), "
                    "per target and dtype; the red line is the budget. Marks at 0: no error "
                    "found; at ∞: NaN, infinite or wrong-shape results. Hover a mark for its "
                    "claim, ulps and examples.",
        "magnitude": "Worst error/budget of each numerical claim against the largest |logit| of "
                     "the input that produced it (one point per claim, target and dtype: the "
                     "runner records each claim's worst example, not every example).",
    }
    return "".join(f"<figure id='plot-{_e(name)}'>{svg}<figcaption>{_e(captions.get(name, ''))}"
                   f"</figcaption></figure>" for name, svg in plots.items())


def _refutations(data: ReportData) -> str:
    rs = refutations(data)
    if not rs:
        return "<p>Nothing refuted: every applicable claim holds on every target and dtype.</p>"
    out = [f"<p>{len(rs)} results: every refuted claim (seed statements refuted as the audit "
           f"expects included), every error, every statement that went against expectation. "
           f"Each gives the statement, the problem, the shrunk and the worst input, and the "
           f"command that reproduces it.</p>"]
    by_target: dict[str, list[ClaimResult]] = {}
    for r in rs:
        by_target.setdefault(r.target, []).append(r)
    for t, items in by_target.items():
        c = Counter(status(r) for r in items)
        summary = ", ".join(f"{n} {LABEL[k]}" for k, n in c.items())
        out.append(f"<h3>{_e(t)} <span class='note'>({summary})</span></h3>")
        for r in items:
            s = status(r)
            problem = r.shrunk.problem if r.shrunk is not None else r.reason
            out.append(
                f"<details class='ref' id='{anchor(r)}'><summary><span class='badge s-{s}'>"
                f"{SYMBOL[s]} {_e(LABEL[s])}</span> <b>{_e(r.claim_id)}</b> · {_e(r.dtype)} "
                f"<span class='p'>— {_e(_first_line(problem, 110))}</span></summary>"
                f"<div><p>{formula(r.claim_id)}</p><pre>{_e(format_refutation(r))}</pre></div>"
                f"</details>")
    return "".join(out)


def _rests_on(data: ReportData) -> str:
    """The conventions (with an example of the other one), and the verdicts that rest on
    uninformative or skipped examples."""
    rows = [(r, f"{_e(note(r))}" + (f"<details class='ref' id='{anchor(r)}'><summary>example"
                                    f"</summary><pre>{_e(format_refutation(r))}</pre></details>"
                                    if r.shrunk is not None else ""))
            for r in conventions(data)]
    rows += [(r, _e(note(r))) for r in qualified(data.results) if r.uninformative
             or r.verdict == "uninformative"]
    skips = "".join(f"<li><b>{_e(where)}</b>: {_e(cause)}. {_e(skipped_names(rs))}</li>"
                    for where, cause, rs in skip_groups(data.results))
    if not rows and not skips:
        return ("<p>No convention claims were run, and every verdict rests on all its examples "
                "and on budgets below the quantities they bound.</p>")
    body = "".join(f"<tr><td><b>{_e(r.claim_id)}</b></td><td>{_e(r.target)}</td>"
                   f"<td>{_e(r.dtype)}</td><td><span class='badge s-{status(r)}'>"
                   f"{SYMBOL[status(r)]} {_e(r.verdict)}</span></td><td>{text}</td></tr>"
                   for r, text in rows)
    return ("<p>Conventions: where the mathematics leaves a choice, which legitimate convention "
            "each target follows; not a bug either way (a value that follows neither is a "
            "refutation). Then the results whose budgets said nothing on some or all examples "
            "(a budget at least the quantity it bounds passes any value from 0 to twice the "
            "exact one; docs/tolerances.md, \"Uninformative budgets\"), and those with examples "
            "skipped because the target raised (judged once, under "
            "<code>&lt;function&gt;.returns_on_valid_input</code>).</p><table class='data'>"
            "<thead><tr><th>claim</th><th>target</th><th>dtype</th><th>verdict</th>"
            f"<th>what it rests on</th></tr></thead><tbody>{body}</tbody></table>"
            + (f"<h3>Examples skipped</h3><ul>{skips}</ul>" if skips else ""))


def _run(data: ReportData) -> str:
    from softmax_oracle.engine.profiles import PROFILES

    prof = PROFILES.get(data.profile)
    desc = f" ({_e(prof.description)}; {prof.max_examples} examples per claim)" if prof else ""
    cpu = sum(t.seconds for t in data.targets)
    params = [
        ("command", f"<code>{_e(data.command)}</code>" if data.command else "—"),
        ("profile", f"{_e(data.profile)}{desc}"),
        ("level", _e(data.level)),
        ("seed", f"{data.seed} (every target and dtype)"),
        ("claims", _e(data.claims) if data.claims else "all"),
        ("dtypes", _e(", ".join(data.dtypes))),
        ("time", f"{fmt_seconds(data.seconds)} wall, {fmt_seconds(cpu)} of checking, "
                 f"{data.jobs} worker process{'es' if data.jobs > 1 else ''}"),
        ("generated", _e(data.generated)),
    ]
    out = ["<div class='cols'><div><h3>Run</h3><table class='data' style='width:auto'><tbody>"]
    out += [f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in params]
    out.append("</tbody></table></div><div><h3>Versions</h3><table class='data' "
               "style='width:auto'><tbody>")
    out += [f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in data.versions.items()]
    out.append("</tbody></table></div></div><h3>Targets</h3><table class='data'><thead><tr>"
               "<th>target</th>"
               "<th>version</th><th>dtypes</th><th class='num'>results</th><th class='num'>"
               "examples</th><th class='num'>time</th><th>notes</th></tr></thead><tbody>")
    for t in data.targets:
        notes = "<br>".join(_e(n) for n in t.notes)
        out.append(f"<tr id='run-{_e(t.target)}'><td><b>{_e(t.target)}</b></td>"
                   f"<td>{_e(t.target_version)}</td><td>{_e(', '.join(t.dtypes))}</td>"
                   f"<td class='num'>{len(t.results)}</td><td class='num'>"
                   f"{sum(r.examples for r in t.results)}</td><td class='num'>"
                   f"{fmt_seconds(t.seconds)}</td><td>{notes}</td></tr>")
    for s in data.skipped:
        out.append(f"<tr id='run-{_e(s.target)}'><td><b>{_e(s.target)}</b></td>"
                   f"<td colspan='6' class='note'>skipped: {_e(s.reason)}</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _claims(data: ReportData) -> str:
    rows = []
    for cid in data.claim_ids():
        c = claim_of(cid)
        if c is None:
            rows.append(f"<tr id='c-{_e(cid)}'><td><b>{_e(cid)}</b></td><td></td>"
                        f"<td>{_e(UNKNOWN_CLAIM)}</td><td></td></tr>")
            continue
        tags = [c.kind] + ([f"level {c.level}"] if c.level != "stable" else []) + (
            [f"expected {c.expect}"] if c.expect != "holds" else [])
        pre = f"<div class='note'>if {_e('; '.join(c.preconditions))}</div>" \
            if c.preconditions else ""
        rows.append(f"<tr id='c-{_e(cid)}'><td><b>{_e(cid)}</b><div class='note'>"
                    f"{_e(', '.join(tags))}</div></td><td>{formula(cid)}</td>"
                    f"<td>{_e(c.statement)}{pre}</td><td class='note'>{_e(c.source)}</td></tr>")
    return ("<table class='data'><thead><tr><th style='width:22%'>claim</th>"
            "<th style='width:28%'>formula</th><th>statement</th><th style='width:16%'>source"
            "</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def render(data: ReportData, plots: dict[str, str]) -> str:
    """The whole page."""
    sections: Sequence[tuple[str, str, str]] = (
        ("summary", "Summary",
         f"<div class='matrix-wrap'>{_matrix(data)}{_legend(data)}</div>"),
        ("seed-audit", "Seed audit", _seed_audit(data)),
        ("accuracy", "Accuracy", _accuracy(data)),
        ("plots", "Plots", _plots(plots)),
        ("refutations", "Refutations", _refutations(data)),
        ("rests-on", "Conventions, and what the verdicts rest on", _rests_on(data)),
        ("run", "What was run", _run(data)),
        ("claims", "Claims", _claims(data)),
    )
    body = "".join(f"<section id='{sid}'><h2>{title}</h2>{content}</section>"
                   for sid, title, content in sections)
    title = f"softmax-oracle report · {', '.join(t.target for t in data.targets)}"
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
            f"{_header(data)}{_glance(data)}{body}</main><script>{_SCRIPT}</script>"
            "</body></html>\n")
