"""Server-drawn SVG charts: well-formed, proportional, escaped, and sensible when empty."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from web import charts

SVG = "{http://www.w3.org/2000/svg}"
DAY = 86400
T0 = 1_790_035_200  # 2026-09-22 00:00 UTC


def parse(svg: str) -> ET.Element:
    """Parse the SVG (fails the test if it is not well-formed XML)."""
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert "style" not in svg and "<script" not in svg  # CSP: no inline style or script
    return root


def find(root: ET.Element, tag: str) -> list[ET.Element]:
    """All descendants with a tag."""
    return root.findall(f".//{SVG}{tag}")


def texts(root: ET.Element) -> list[str]:
    """The text of every <text> element."""
    return [t.text or "" for t in find(root, "text")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 1.0),
        (-3, 1.0),
        (float("nan"), 1.0),
        (1, 1.0),
        (1.5, 2.0),
        (2.2, 2.5),
        (3, 5.0),
        (7, 10.0),
        (10, 10.0),
        (11, 20.0),
        (240, 250.0),
        (999, 1000.0),
        (0.03, 0.05),
    ],
)
def test_nice_max(value: float, expected: float) -> None:
    assert charts.nice_max(value) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (0, "", "0"),
        (950, "", "950"),
        (1234, "", "1.2k"),
        (1000, "", "1k"),
        (2_500_000, "", "2.5M"),
        (3e9, "", "3G"),
        (2.5, "", "2.5"),
        (12.34, "", "12.3"),
        (0.126, "", "0.13"),
        (250, "ms", "250 ms"),
        (1500, "ms", "1.5 s"),
        (12.5, "%", "12%"),
        (2.5, "%", "2.5%"),
        (0, "%", "0%"),
    ],
)
def test_fmt_value(value: float, unit: str, expected: str) -> None:
    assert charts.fmt_value(value, unit) == expected


def test_bar_chart_is_proportional_with_time_labels_and_tooltips() -> None:
    items = [(T0 + i * DAY, v) for i, v in enumerate([10, 20, 0, 40])]
    root = parse(charts.bar_chart(items, title="Requests"))
    assert root.get("aria-label") == "Requests" and root.find(f"{SVG}title").text == "Requests"
    bars = find(root, "rect")
    heights = [float(b.get("height")) for b in bars]
    assert len(bars) == 4 and heights[2] == 0
    assert heights[1] == pytest.approx(2 * heights[0], rel=0.02)
    assert heights[3] == pytest.approx(4 * heights[0], rel=0.02)
    assert [b.find(f"{SVG}title").text for b in bars] == [
        "09-22: 10",
        "09-23: 20",
        "09-24: 0",
        "09-25: 40",
    ]
    labels = texts(root)
    assert "50" in labels and "09-22" in labels and "09-25" in labels  # axis top, dates


def test_bar_chart_hourly_labels_and_units() -> None:
    root = parse(charts.bar_chart([(T0 + 3600 * 5, 1500)], unit="ms", step=3600))
    assert find(root, "rect")[0].find(f"{SVG}title").text == "05:00: 1.5 s"


@pytest.mark.parametrize("items", [[], [("a", 0), ("b", None)]])
def test_bar_chart_empty(items: list[tuple[str, float | None]]) -> None:
    root = parse(charts.bar_chart(items, title="Nothing"))
    assert find(root, "rect") == [] and texts(root) == ["No data"]


def test_line_chart_series_gaps_legend_and_markers() -> None:
    times = [T0 + i * 3600 for i in range(6)]
    root = parse(
        charts.line_chart(
            times,
            [("p50", [1, 2, None, 4, 5, 6]), ("p95", [2, 4, 6, 8, 10, 12])],
            title="Latency",
            unit="ms",
            step=3600,
        )
    )
    lines = find(root, "polyline")
    assert len(lines) == 3  # p50 split in two by the gap, p95 whole
    assert [len(p.get("points").split()) for p in lines] == [2, 3, 6]
    assert {p.get("stroke") for p in lines} == {charts.PALETTE[0], charts.PALETTE[1]}
    markers = find(root, "circle")
    assert len(markers) == 11
    assert markers[0].find(f"{SVG}title").text == "p50 00:00: 1 ms"
    assert {"p50", "p95", "00:00", "20 ms"} <= set(texts(root))
    ys = [float(pt.split(",")[1]) for pt in lines[2].get("points").split()]
    assert ys == sorted(ys, reverse=True)  # rising values go up the chart


def test_line_chart_many_points_skips_markers() -> None:
    times = [T0 + i * 3600 for i in range(500)]
    root = parse(charts.line_chart(times, [("n", list(range(500)))]))
    assert find(root, "circle") == [] and len(find(root, "polyline")) == 1
    assert len([t for t in texts(root) if ":" in t]) <= 9  # x labels thinned


def test_line_chart_empty() -> None:
    assert texts(parse(charts.line_chart([], []))) == ["No data"]
    assert texts(parse(charts.line_chart([T0], [("x", [None])]))) == ["No data"]


def test_labels_are_escaped() -> None:
    evil = '<script>alert("x")</script>&'
    for svg in (
        charts.hbar_chart([(evil, 3)], title=evil),
        charts.bar_chart([(evil, 3)], title=evil),
        charts.line_chart([T0], [(evil, [1.0])], title=evil),
        charts.sparkline([1, 2], title=evil),
    ):
        root = parse(svg)
        assert root.get("aria-label") == evil
        assert "<script>" not in svg


def test_hbar_chart_ranks_and_truncates() -> None:
    long_name = "a-really-long-model-name-that-goes-on:latest-and-on-and-on"
    root = parse(charts.hbar_chart([("alice", 30), (long_name, 10)], title="Top keys"))
    bars = find(root, "rect")
    assert float(bars[0].get("width")) == pytest.approx(3 * float(bars[1].get("width")), rel=0.02)
    assert bars[1].find(f"{SVG}title").text == f"{long_name}: 10"
    shown = texts(root)
    assert "alice" in shown and any(t.endswith("…") and len(t) < len(long_name) for t in shown)
    assert texts(parse(charts.hbar_chart([]))) == ["No data"]


def test_sparkline() -> None:
    root = parse(charts.sparkline([0, 3, 6], title="7 days"))
    bars = find(root, "rect")
    assert [float(b.get("height")) for b in bars] == pytest.approx([0, 13, 26])
    assert texts(parse(charts.sparkline([]))) == ["No data"]
