"""Small charts drawn on the server as inline SVG: bar charts and sparklines, no script, no library.

The console's CSP allows no inline style, so colours come from classes that console.css styles
(`tone-ok`, `tone-bad`, `series-0` …). Every bar carries a <title>, which browsers show as a
tooltip, and every chart a text equivalent for screen readers. All text is escaped here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

Format = Callable[[float], str]

PALETTE = 6  # series-0 … series-5 in console.css; more series than that repeat the colours


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]
    tone: str = ""  # a class suffix (ok, bad, warn, accent, muted); empty picks a palette colour


def plain(value: float) -> str:
    """1,234 for whole numbers, 12.35 or 2.5 otherwise."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}".rstrip("0").rstrip(".")


def compact(value: float) -> str:
    """1.2k, 3.45M: token counts on an axis."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return plain(round(value / size, 2)) + suffix
    return plain(round(value, 2))


def dollars(value: float) -> str:
    """$12.35, $0.0042, $0.000015: below a dollar, the digits that token prices make matter."""
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    if abs(value) < 0.000001:
        return "<$0.000001" if value > 0 else f"${value:.1e}"
    text = f"{value:.6f}".rstrip("0")
    return "$" + (text + "0" if len(text.split(".")[1]) < 2 else text)


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times 10^k that is at least `value` (a round top for an axis)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power * (1 + 1e-9):
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def _n(value: float) -> str:
    """A coordinate: one decimal, no trailing zeros."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _class(series: Series, index: int) -> str:
    return f"tone-{series.tone}" if series.tone else f"series-{index % PALETTE}"


def bar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    stacked: bool = False,
    fmt: Format = plain,
    width: int = 720,
    height: int = 180,
    label_every: int = 1,
) -> Markup:
    """Bars for each label, one per series side by side (or stacked), titled, with a legend below."""
    for one in series:
        if len(one.values) != len(labels):
            raise ValueError(f"series {one.name!r} has {len(one.values)} values for {len(labels)} labels")
    left, right, top, bottom = 56, 8, 10, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    if stacked:
        peak = max((sum(max(0.0, s.values[i]) for s in series) for i in range(len(labels))), default=0.0)
    else:
        peak = max((max(0.0, v) for s in series for v in s.values), default=0.0)
    top_value = nice_ceiling(peak)
    scale = plot_h / top_value
    total = sum(v for s in series for v in s.values)

    parts = [
        f'<svg class="chart-svg" viewBox="0 0 {width} {height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = top + plot_h - fraction * plot_h
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{_n(y)}" y2="{_n(y)}"/>')
        parts.append(
            f'<text class="axis" x="{left - 6}" y="{_n(y + 4)}" text-anchor="end">'
            f"{escape(fmt(top_value * fraction))}</text>"
        )
    slot = plot_w / max(1, len(labels))
    for i, label in enumerate(labels):
        x0 = left + i * slot
        if stacked:
            bar_w = slot * 0.7
            base = float(top + plot_h)
            for index, one in enumerate(series):
                value = one.values[i]
                if value <= 0:
                    continue
                h = value * scale
                base -= h
                tip = f"{label} · {one.name}: {fmt(value)}"
                parts.append(_bar(x0 + (slot - bar_w) / 2, base, bar_w, h, _class(one, index), tip))
        else:
            bar_w = slot * 0.8 / max(1, len(series))
            for index, one in enumerate(series):
                value = one.values[i]
                if value <= 0:
                    continue
                h = value * scale
                x = x0 + slot * 0.1 + index * bar_w
                tip = f"{label} · {one.name}: {fmt(value)}"
                parts.append(_bar(x, top + plot_h - h, bar_w, h, _class(one, index), tip))
        if label_every > 0 and i % label_every == 0:
            parts.append(
                f'<text class="axis" x="{_n(x0 + slot / 2)}" y="{height - 8}" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    if total == 0:
        parts.append(
            f'<text class="empty-note" x="{_n(left + plot_w / 2)}" y="{_n(top + plot_h / 2)}" '
            f'text-anchor="middle">nothing in this period</text>'
        )
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch {_class(one, index)}"></span>{escape(one.name)} '
        f'<span class="legend-total">{escape(fmt(sum(one.values)))}</span></li>'
        for index, one in enumerate(series)
    )
    return Markup(
        f'<figure class="chart"><figcaption class="chart-title">{escape(title)}</figcaption>'
        f'{"".join(parts)}<ul class="legend">{legend}</ul></figure>'
    )


def _bar(x: float, y: float, w: float, h: float, css: str, tip: str) -> str:
    size = f'width="{_n(max(w, 1))}" height="{_n(max(h, 1))}"'
    return f'<rect class="chart-bar {css}" x="{_n(x)}" y="{_n(y)}" {size}><title>{escape(tip)}</title></rect>'


def sparkline(
    values: Sequence[float], *, title: str, width: int = 120, height: int = 24, tone: str = ""
) -> Markup:
    """A line over `values` (oldest first), its last point marked; flat at the bottom when all are 0."""
    css = f"tone-{tone}" if tone else "series-0"
    parts = [
        f'<svg class="sparkline {css}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    if values:
        peak = max(max(values), 0.0)
        pad = 2.0
        step = (width - 2 * pad) / max(1, len(values) - 1)

        def point(i: int, value: float) -> tuple[float, float]:
            y = height - pad - (max(0.0, value) / peak * (height - 2 * pad) if peak > 0 else 0.0)
            return pad + i * step, y

        points = [point(i, v) for i, v in enumerate(values)]
        if len(points) > 1:
            path = " ".join(f"{_n(x)},{_n(y)}" for x, y in points)
            parts.append(f'<polyline class="line" points="{path}"/>')
        x, y = points[-1]
        parts.append(f'<circle class="dot" cx="{_n(x)}" cy="{_n(y)}" r="2"/>')
    parts.append("</svg>")
    return Markup("".join(parts))
