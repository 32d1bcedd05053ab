"""Inline SVG charts drawn on the server: pure functions from numbers to SVG text, no JS.

Every label is escaped here, so the result can be marked safe in a template. Only presentation
attributes are used (no `style`), which the admin's Content-Security-Policy allows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2")
FONT = 'font-family="system-ui, sans-serif" font-size="11"'
PAD_L, PAD_R, PAD_T, PAD_B = 48, 12, 12, 22


def nice_max(value: float) -> float:
    """The smallest 1/2/2.5/5 x 10^k at or above value (1 for 0): a readable axis top."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power * (1 + 1e-9):
            return float(step * power)
    return 10.0 * power  # pragma: no cover - the loop always returns


def fmt_value(value: float, unit: str = "") -> str:
    """A compact number: 950, 1.2k, 3.4M; `ms` values over a second in seconds."""
    if unit == "ms" and abs(value) >= 1000:
        return _compact(value / 1000) + " s"
    if unit == "%":
        return f"{value:.0f}%" if value >= 10 or value == 0 else f"{value:.1f}%"
    text = _compact(value)
    return f"{text} {unit}" if unit else text


def _compact(value: float) -> str:
    """1234 -> 1.2k; 2.5 -> 2.5; 3 -> 3."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            scaled = value / limit
            return f"{scaled:.1f}".rstrip("0").rstrip(".") + suffix
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}".rstrip("0").rstrip(".")


def time_label(ts: float, step: float) -> str:
    """A Unix time as an axis label: HH:MM for hourly data, MM-DD for daily."""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%H:%M" if step < 86400 else "%m-%d")


def _label(value: Any, step: float) -> str:
    """A category label: text as is, numbers as Unix times."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return time_label(float(value), step)
    return str(value)


def _open(width: int, height: int, title: str, cls: str) -> list[str]:
    """The svg element, its accessible title, and nothing else."""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg {cls}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}" preserveAspectRatio="xMidYMid meet">',
        f"<title>{escape(title)}</title>",
    ]


def _empty(parts: list[str], width: int, height: int) -> str:
    """Close a chart that has nothing to show with a 'No data' note."""
    parts.append(
        f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" '
        f'fill="#6b7280" {FONT}>No data</text></svg>'
    )
    return "".join(parts)


def _y_axis(parts: list[str], top: float, width: int, height: int, unit: str) -> None:
    """Horizontal grid lines with value labels at 0, 1/4 ... top."""
    plot_h = height - PAD_T - PAD_B
    for i in range(5):
        value = top * i / 4
        y = PAD_T + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{width - PAD_R}" y2="{y:.1f}" '
            f'stroke="#e5e7eb" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{PAD_L - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#6b7280" '
            f"{FONT}>{escape(fmt_value(value, unit))}</text>"
        )


def _x_labels(parts: list[str], labels: Sequence[str], xs: Sequence[float], height: int) -> None:
    """At most ~8 evenly spaced x-axis labels."""
    if not labels:
        return
    every = max(1, math.ceil(len(labels) / 8))
    for i in range(0, len(labels), every):
        # The last label would overhang the right edge if centred on its point.
        anchor = "end" if i == len(labels) - 1 and len(labels) > 1 else "middle"
        parts.append(
            f'<text x="{xs[i]:.1f}" y="{height - 6}" text-anchor="{anchor}" '
            f'fill="#6b7280" {FONT}>{escape(labels[i])}</text>'
        )


def bar_chart(
    items: Sequence[tuple[Any, float | None]],
    *,
    title: str = "",
    width: int = 640,
    height: int = 200,
    unit: str = "",
    step: float = 86400,
    color: str = PALETTE[0],
) -> str:
    """Vertical bars; labels are text, or Unix times (shown per `step`: hour or day)."""
    parts = _open(width, height, title, "chart-bar")
    values = [max(0.0, float(v or 0)) for _, v in items]
    if not values or not any(values):
        return _empty(parts, width, height)
    top = nice_max(max(values))
    _y_axis(parts, top, width, height, unit)
    plot_w, plot_h = width - PAD_L - PAD_R, height - PAD_T - PAD_B
    slot = plot_w / len(values)
    bar_w = max(1.0, slot * 0.8)
    labels = [_label(label, step) for label, _ in items]
    xs = []
    for i, value in enumerate(values):
        h = plot_h * value / top
        x = PAD_L + slot * i + (slot - bar_w) / 2
        xs.append(x + bar_w / 2)
        tip = f"{labels[i]}: {fmt_value(value, unit)}"
        parts.append(
            f'<rect x="{x:.1f}" y="{PAD_T + plot_h - h:.1f}" width="{bar_w:.1f}" '
            f'height="{h:.1f}" fill="{color}"><title>{escape(tip)}</title></rect>'
        )
    _x_labels(parts, labels, xs, height)
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    times: Sequence[float],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    title: str = "",
    width: int = 640,
    height: int = 200,
    unit: str = "",
    step: float = 3600,
) -> str:
    """One line per named series over shared Unix times; None leaves a gap."""
    parts = _open(width, height, title, "chart-line")
    present = [v for _, vals in series for v in vals if v is not None]
    if not times or not present or not any(present):
        return _empty(parts, width, height)
    top = nice_max(max(present))
    _y_axis(parts, top, width, height, unit)
    plot_w, plot_h = width - PAD_L - PAD_R, height - PAD_T - PAD_B
    n = len(times)
    xs = [PAD_L + (plot_w * i / (n - 1) if n > 1 else plot_w / 2) for i in range(n)]
    labels = [time_label(t, step) for t in times]
    for index, (name, vals) in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        runs: list[list[str]] = [[]]
        for i, v in enumerate(vals[:n]):
            if v is None:
                runs.append([])
                continue
            runs[-1].append(f"{xs[i]:.1f},{PAD_T + plot_h - plot_h * max(v, 0) / top:.1f}")
        for run in runs:
            if len(run) > 1:
                parts.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{color}" '
                    f'stroke-width="2" stroke-linejoin="round"/>'
                )
        if n <= 120:  # point markers carry the hover text; skipped when they would crowd
            for i, v in enumerate(vals[:n]):
                if v is None:
                    continue
                y = PAD_T + plot_h - plot_h * max(v, 0) / top
                tip = f"{name} {labels[i]}: {fmt_value(v, unit)}"
                parts.append(
                    f'<circle cx="{xs[i]:.1f}" cy="{y:.1f}" r="2.5" fill="{color}">'
                    f"<title>{escape(tip)}</title></circle>"
                )
    _x_labels(parts, labels, xs, height)
    _legend(parts, [name for name, _ in series], width)
    parts.append("</svg>")
    return "".join(parts)


def _legend(parts: list[str], names: Sequence[str], width: int) -> None:
    """Series names with their colours, right-aligned along the top."""
    x = width - PAD_R
    for index in reversed(range(len(names))):
        name = names[index]
        x -= 7 * len(name) + 22
        color = PALETTE[index % len(PALETTE)]
        parts.append(
            f'<rect x="{x:.0f}" y="2" width="10" height="10" fill="{color}"/>'
            f'<text x="{x + 14:.0f}" y="11" fill="#374151" {FONT}>{escape(name)}</text>'
        )


def hbar_chart(
    items: Sequence[tuple[str, float]],
    *,
    title: str = "",
    width: int = 640,
    unit: str = "",
    row: int = 22,
) -> str:
    """Horizontal bars for a ranking (top keys, top models), longest first as given."""
    height = max(row * len(items) + 8, 40)
    parts = _open(width, height, title, "chart-hbar")
    if not items or not any(v for _, v in items):
        return _empty(parts, width, height)
    label_w = min(220, max(80, 7 * max(len(str(k)) for k, _ in items)))
    top = max(float(v) for _, v in items)
    plot_w = width - label_w - 70
    for i, (label, value) in enumerate(items):
        y = 4 + row * i
        w = plot_w * max(float(value), 0) / top if top else 0
        text = str(label)
        shown = text if len(text) <= label_w // 7 else text[: label_w // 7 - 1] + "…"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + row * 0.65:.1f}" text-anchor="end" '
            f'fill="#374151" {FONT}>{escape(shown)}</text>'
        )
        parts.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{max(w, 1):.1f}" '
            f'height="{row - 8}" fill="{PALETTE[0]}"><title>'
            f"{escape(text)}: {escape(fmt_value(value, unit))}</title></rect>"
        )
        parts.append(
            f'<text x="{label_w + w + 6:.1f}" y="{y + row * 0.65:.1f}" fill="#374151" '
            f"{FONT}>{escape(fmt_value(value, unit))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def sparkline(
    values: Sequence[float], *, title: str = "", width: int = 120, height: int = 28
) -> str:
    """A tiny bar strip without axes (per-key usage on the keys page)."""
    parts = _open(width, height, title, "chart-spark")
    if not values:
        return _empty(parts, width, height).replace('font-size="11"', 'font-size="9"')
    top = max(max(values), 1)
    slot = width / len(values)
    for i, value in enumerate(values):
        h = max((height - 2) * max(value, 0) / top, 1 if value else 0)
        parts.append(
            f'<rect x="{slot * i + 1:.1f}" y="{height - h:.1f}" '
            f'width="{max(slot - 2, 1):.1f}" height="{h:.1f}" fill="{PALETTE[0]}"/>'
        )
    parts.append(
        f'<line x1="0" y1="{height - 0.5}" x2="{width}" y2="{height - 0.5}" '
        f'stroke="#d1d5db" stroke-width="1"/></svg>'
    )
    return "".join(parts)
