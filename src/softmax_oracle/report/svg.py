"""The report's plots, drawn as standalone SVG (no plotting library): the same text is inlined in
the HTML page and written next to the Markdown page.

``accuracy``: for each function, the worst error as a fraction of its budget (log scale) per
target and dtype, with the budget line at 1; exact results sit in a "0" column on the left,
NaN/infinite errors in an "∞" column on the right.
``magnitude``: the worst error/budget of each numerical claim against the largest |logit| of the
input that produced it (one point per claim result: the runner records the worst example, not
every example).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

from softmax_oracle.report.views import (
    ACCURACY_CLAIMS,
    ReportData,
    claim_of,
    columns,
    fmt_ratio,
    magnitude,
)

__all__ = ["DTYPE_COLORS", "plots", "target_color"]

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif"
INK, MUTED, GRID, BAD = "#1f2328", "#57606a", "#d8dee4", "#cf222e"

DTYPE_COLORS = {"float64": "#0072B2", "float32": "#E69F00", "float16": "#009E73",
                "bfloat16": "#CC79A7"}
_TARGET_COLORS = {"reference": "#000000", "seed": "#CC79A7", "numpy": "#0072B2",
                  "naive": "#D55E00", "scipy": "#009E73", "torch": "#E69F00", "jax": "#56B4E9",
                  "optax": "#7F3C8D"}
_EXTRA = ("#8c564b", "#7f7f7f", "#bcbd22", "#17becf", "#1f77b4", "#2ca02c")


def target_color(target: str, order: Sequence[str] = ()) -> str:
    if target in _TARGET_COLORS:
        return _TARGET_COLORS[target]
    others = [t for t in order if t not in _TARGET_COLORS]
    i = others.index(target) if target in others else abs(hash(target))
    return _EXTRA[i % len(_EXTRA)]


def _esc(s: str) -> str:
    return html.escape(s, quote=True)


def _text(x: float, y: float, s: str, *, size: float = 11, anchor: str = "start",
          fill: str = INK, weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'fill="{fill}" font-weight="{weight}">{_esc(s)}</text>')


@dataclass(frozen=True)
class _LogAxis:
    """Decades lo..hi mapped to x0..x1, with a "0" slot left of x0 and an "∞" slot right
    of x1."""

    lo: int
    hi: int
    x0: float
    x1: float
    slot: float = 20.0
    top: str = "∞"  # the label of the right-hand slot
    clamp: bool = True  # finite values above hi: at hi (True) or in the right-hand slot

    def __call__(self, v: float) -> float:
        if v <= 0:
            return self.x0 - self.slot
        if math.isinf(v) or math.isnan(v) or (not self.clamp and v > 10.0**self.hi):
            return self.x1 + self.slot
        e = min(max(math.log10(v), self.lo), self.hi)
        return self.x0 + (e - self.lo) / (self.hi - self.lo) * (self.x1 - self.x0)

    def ticks(self, step: int = 2) -> list[tuple[float, str]]:
        out = [(self(0.0), "0")]
        for e in range(self.lo, self.hi + 1, step):
            out.append((self(10.0**e), "1" if e == 0 else f"1e{e}"))
        out.append((self(math.inf), self.top))
        return out


def _marker(x: float, y: float, color: str, shape: str, r: float, title: str,
            stroke: str = "#ffffff") -> str:
    t = f"<title>{_esc(title)}</title>"
    if shape == "diamond":
        pts = f"{x:.1f},{y - r:.1f} {x + r:.1f},{y:.1f} {x:.1f},{y + r:.1f} {x - r:.1f},{y:.1f}"
        return (f'<polygon points="{pts}" fill="{color}" stroke="{stroke}" '
                f'stroke-width="1">{t}</polygon>')
    if shape == "square":
        return (f'<rect x="{x - r * 0.85:.1f}" y="{y - r * 0.85:.1f}" width="{r * 1.7:.1f}" '
                f'height="{r * 1.7:.1f}" fill="{color}" stroke="{stroke}" stroke-width="1">'
                f"{t}</rect>")
    return (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{color}" stroke="{stroke}" '
            f'stroke-width="1">{t}</circle>')


_SHAPES = ("circle", "diamond", "square")


def _svg(width: float, height: float, body: list[str], label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
            f'width="{width:.0f}" height="{height:.0f}" role="img" aria-label="{_esc(label)}" '
            f'font-family="{_esc(FONT)}">'
            f'<rect width="100%" height="100%" fill="#ffffff"></rect>'
            + "".join(body) + "</svg>")


def accuracy_plot(data: ReportData, *, width: float = 1240.0) -> str:
    """Small multiples: one panel per function, one row per target, one mark per claim and
    dtype at its worst error/budget."""
    cols = columns(data)
    targets = list(dict.fromkeys(t for t, _ in cols))
    dtypes = list(dict.fromkeys(d for _, d in cols))
    panels = []
    for fn, ids in ACCURACY_CLAIMS.items():
        rows = []
        for t in targets:
            marks = []
            for di, dt in enumerate(dtypes):
                for ci, cid in enumerate(ids):
                    r = data.result(t, dt, cid)
                    if r is not None and r.verdict in ("verified", "refuted"):
                        marks.append((di, ci, r))
            if marks:
                rows.append((t, marks))
        if rows:
            panels.append((fn, ids, rows))
    if not panels:
        return _svg(width, 60, [_text(12, 34, "No accuracy results to plot.")],
                    "accuracy plot (empty)")
    ncols = 3
    gap, pw = 18.0, (width - 2 * 18.0) / ncols
    label_w, row_h, head_h, axis_h = 78.0, 17.0, 24.0, 30.0
    body: list[str] = []
    legend_h = 30.0
    y_cursor = legend_h
    for start in range(0, len(panels), ncols):
        line = panels[start:start + ncols]
        ph = head_h + max(len(p[2]) for p in line) * row_h + axis_h
        for k, (fn, ids, rows) in enumerate(line):
            x0 = k * (pw + gap)
            ax = _LogAxis(-6, 2, x0 + label_w + 24, x0 + pw - 26)
            top = y_cursor + head_h
            bottom = top + len(rows) * row_h
            claim_note = ", ".join(cid.split(".", 1)[1] for cid in ids)
            body.append(_text(x0 + 2, y_cursor + 14, fn, size=13, weight="600"))
            body.append(_text(x0 + 12 + 8.3 * len(fn), y_cursor + 14, f"({claim_note})",
                              size=10, fill=MUTED))
            # the "over budget" zone
            body.append(f'<rect x="{ax(1.0):.1f}" y="{top:.1f}" width="'
                        f'{ax(math.inf) + 8 - ax(1.0):.1f}" height="{bottom - top:.1f}" '
                        f'fill="#fff1f0"></rect>')
            for tx, tl in ax.ticks():
                body.append(f'<line x1="{tx:.1f}" y1="{top:.1f}" x2="{tx:.1f}" '
                            f'y2="{bottom:.1f}" stroke="{GRID}" stroke-width="1"></line>')
                body.append(_text(tx, bottom + 13, tl, size=10, anchor="middle", fill=MUTED))
            body.append(f'<line x1="{ax(1.0):.1f}" y1="{top:.1f}" x2="{ax(1.0):.1f}" '
                        f'y2="{bottom + 2:.1f}" stroke="{BAD}" stroke-width="1.5"></line>')
            body.append(_text((ax.x0 + ax.x1) / 2, bottom + 26, "error / budget", size=10,
                              anchor="middle", fill=MUTED))
            for i, (t, marks) in enumerate(rows):
                cy = top + i * row_h + row_h / 2
                if i % 2 == 0:
                    body.append(f'<rect x="{x0:.1f}" y="{cy - row_h / 2:.1f}" '
                                f'width="{ax.x0 - 20 - x0:.1f}" height="{row_h:.1f}" '
                                f'fill="#f6f8fa"></rect>')
                body.append(_text(x0 + 4, cy + 4, t, size=11))
                n = len(dtypes)
                for di, ci, r in marks:
                    dy = (di - (n - 1) / 2) * min(5.0, 10.0 / max(n, 1))
                    title = (f"{t} {r.dtype} {r.claim_id}: {fmt_ratio(r.max_ratio)} x budget, "
                             f"{r.max_ulps:.3g} ulps ({r.verdict}, {r.examples} examples, "
                             f"seed {r.seed})")
                    body.append(_marker(ax(r.max_ratio), cy + dy,
                                        DTYPE_COLORS.get(r.dtype, MUTED),
                                        _SHAPES[ci % len(_SHAPES)], 4.2, title,
                                        stroke=BAD if r.verdict == "refuted" else "#ffffff"))
        y_cursor += ph + 14
    # legend
    lx = 4.0
    for dt in dtypes:
        body.append(_marker(lx + 5, 15, DTYPE_COLORS.get(dt, MUTED), "circle", 4.5, dt))
        body.append(_text(lx + 14, 19, dt, size=11))
        lx += 24 + 7 * len(dt)
    body.append(_text(lx + 6, 19, "Red line: the budget. Shapes: circle, diamond, square = the "
                      "first, second, third claim named in the panel title. Red outline: "
                      "refuted.", size=11, fill=MUTED))
    return _svg(width, y_cursor, body,
                "Worst error as a fraction of its budget, per function, target and dtype")


def magnitude_plot(data: ReportData, *, width: float = 1240.0, height: float = 380.0) -> str:
    """Worst error/budget against the largest |logit| of the input that produced it."""
    cols = columns(data)
    targets = list(dict.fromkeys(t for t, _ in cols))
    dtypes = list(dict.fromkeys(d for _, d in cols))
    pts = []
    for r in data.results:
        claim = claim_of(r.claim_id)
        if claim is None or claim.kind != "numerical" or r.worst is None:
            continue
        if r.verdict not in ("verified", "refuted"):
            continue
        m = magnitude(r.worst.inputs)
        if m is None:
            continue
        pts.append((m, r.worst.ratio, r))
    left, right, top, bottom = 70.0, width - 170.0, 16.0, height - 44.0
    ax = _LogAxis(-2, 8, left + 44, right - 40, slot=28.0, top=">1e8",
                  clamp=False)
    y_lo, y_hi = -8, 2

    def y(v: float) -> float:
        if v <= 0:
            return bottom - 8
        if math.isinf(v) or math.isnan(v):
            return top + 8
        e = min(max(math.log10(v), y_lo), y_hi)
        return (bottom - 34) - (e - y_lo) / (y_hi - y_lo) * (bottom - 34 - (top + 30))

    body = [f'<rect x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" '
            f'height="{y(1.0) - top:.1f}" fill="#fff1f0"></rect>']
    for tx, tl in ax.ticks():
        body.append(f'<line x1="{tx:.1f}" y1="{top:.1f}" x2="{tx:.1f}" y2="{bottom:.1f}" '
                    f'stroke="{GRID}"></line>')
        body.append(_text(tx, bottom + 14, tl, size=10, anchor="middle", fill=MUTED))
    yt = [(y(0.0), "0"), *((y(10.0**e), "1" if e == 0 else f"1e{e}")
                           for e in range(y_lo, y_hi + 1, 2)), (y(math.inf), "∞")]
    for ty, tl in yt:
        body.append(f'<line x1="{left:.1f}" y1="{ty:.1f}" x2="{right:.1f}" y2="{ty:.1f}" '
                    f'stroke="{GRID}"></line>')
        body.append(_text(left - 6, ty + 4, tl, size=10, anchor="end", fill=MUTED))
    body.append(f'<line x1="{left:.1f}" y1="{y(1.0):.1f}" x2="{right:.1f}" y2="{y(1.0):.1f}" '
                f'stroke="{BAD}" stroke-width="1.5"></line>')
    body.append(_text(right - 4, y(1.0) - 4, "budget", size=9, anchor="end", fill=BAD))
    body.append(_text((left + right) / 2, height - 8,
                      "largest |z| of the worst input (log scale)", size=11, anchor="middle",
                      fill=MUTED))
    body.append(f'<text transform="translate(16 {(top + bottom) / 2:.0f}) rotate(-90)" '
                f'font-size="11" text-anchor="middle" fill="{MUTED}">worst error / budget'
                f"</text>")
    for m, ratio, r in pts:
        shape = _SHAPES[dtypes.index(r.dtype) % len(_SHAPES)] if r.dtype in dtypes else "circle"
        title = (f"{r.target} {r.dtype} {r.claim_id}: {fmt_ratio(ratio)} x budget at "
                 f"max|z| = {m:.3g} ({r.verdict})")
        body.append(_marker(ax(m), y(ratio), target_color(r.target, targets), shape, 3.6,
                            title))
    ly = top + 6
    for t in targets:
        body.append(_marker(right + 24, ly + 4, target_color(t, targets), "circle", 4.5, t))
        body.append(_text(right + 34, ly + 8, t, size=11))
        ly += 17
    ly += 8
    for i, dt in enumerate(dtypes):
        body.append(_marker(right + 24, ly + 4, MUTED, _SHAPES[i % len(_SHAPES)], 4.5, dt))
        body.append(_text(right + 34, ly + 8, dt, size=11))
        ly += 17
    if not pts:
        body.append(_text((left + right) / 2, (top + bottom) / 2, "No worst inputs recorded.",
                          size=12, anchor="middle"))
    return _svg(width, height, body,
                "Worst error/budget against the magnitude of the input that produced it")


def plots(data: ReportData) -> dict[str, str]:
    """Every plot of the report, by file stem."""
    return {"accuracy": accuracy_plot(data), "magnitude": magnitude_plot(data)}
