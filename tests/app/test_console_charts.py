"""The console's SVG charts: well-formed, to scale, escaped, styled by class only."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from quire.app.console.charts import Series, bar_chart, compact, dollars, nice_ceiling, plain, sparkline

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    """The chart as XML: it must be well-formed to be parsed at all."""
    return ET.fromstring(str(markup))


def bars(figure: ET.Element) -> list[ET.Element]:
    return list(figure.iter(f"{SVG}rect"))


def test_bars_are_drawn_to_scale_with_a_title_each() -> None:
    figure = parse(
        bar_chart(
            ["00:00", "01:00", "02:00"],
            [Series("started", [2, 4, 0], "accent"), Series("failed", [1, 0, 0], "bad")],
            title="Runs per hour",
        )
    )
    drawn = bars(figure)
    assert len(drawn) == 3  # zeros draw nothing
    heights = {rect.findtext(f"{SVG}title"): float(rect.get("height", 0)) for rect in drawn}
    assert set(heights) == {"00:00 · started: 2", "01:00 · started: 4", "00:00 · failed: 1"}
    assert heights["01:00 · started: 4"] == pytest.approx(2 * heights["00:00 · started: 2"], rel=0.01)
    assert heights["00:00 · started: 2"] == pytest.approx(2 * heights["00:00 · failed: 1"], rel=0.01)
    # Side by side: the two bars of 00:00 do not overlap.
    first = [r for r in drawn if r.findtext(f"{SVG}title", "").startswith("00:00")]
    left, right = sorted(first, key=lambda r: float(r.get("x", 0)))
    assert float(left.get("x", 0)) + float(left.get("width", 0)) <= float(right.get("x", 0)) + 0.1
    # Colours come from classes; nothing carries an inline style the CSP would refuse.
    assert [r.get("class") for r in drawn].count("chart-bar tone-accent") == 2
    assert "style=" not in str(ET.tostring(figure))
    assert figure.findtext("figcaption") == "Runs per hour"
    assert parse_svg_title(figure) == "Runs per hour"
    legend = [" ".join("".join(li.itertext()).split()) for li in figure.iter("li")]
    assert legend == ["started 6", "failed 1"]


def parse_svg_title(figure: ET.Element) -> str | None:
    svg = figure.find(f"{SVG}svg")
    assert svg is not None and svg.get("role") == "img"
    return svg.findtext(f"{SVG}title")


def test_stacked_bars_sit_on_each_other_and_the_axis_is_rounded_up() -> None:
    figure = parse(
        bar_chart(
            ["day 1", "day 2"],
            [Series("a", [0.3, 0.0]), Series("b", [0.4, 0.1])],
            title="Spend",
            stacked=True,
            fmt=dollars,
        )
    )
    lower, upper, alone = bars(figure)
    assert float(upper.get("y", 0)) + float(upper.get("height", 0)) == pytest.approx(
        float(lower.get("y", 0)), abs=0.11
    )
    assert lower.get("x") == upper.get("x") != alone.get("x")
    assert [lower.get("class"), upper.get("class")] == ["chart-bar series-0", "chart-bar series-1"]
    axis = [t.text for t in figure.iter(f"{SVG}text") if t.get("text-anchor") == "end"]
    assert axis == ["$0", "$0.50", "$1.00"]  # the top of 0.7 is rounded up to 1


def test_labels_and_names_are_escaped() -> None:
    markup = str(
        bar_chart(
            ["<b>x</b>"],
            [Series('<script>alert("s")</script>', [1])],
            title="<img src=x onerror=alert(1)>",
        )
    )
    assert "<script>" not in markup and "<img" not in markup and "<b>" not in markup
    assert "&lt;script&gt;" in markup and "&lt;img src=x" in markup
    parse(markup)


def test_an_empty_period_says_so_and_lengths_must_match() -> None:
    figure = parse(bar_chart(["a", "b"], [Series("runs", [0, 0])], title="Nothing"))
    assert bars(figure) == []
    assert "nothing in this period" in [t.text for t in figure.iter(f"{SVG}text")]
    with pytest.raises(ValueError, match="has 1 values for 2 labels"):
        bar_chart(["a", "b"], [Series("runs", [1])], title="Broken")


def test_only_every_nth_label_is_written() -> None:
    figure = parse(
        bar_chart([f"{h:02}" for h in range(24)], [Series("s", [1] * 24)], title="t", label_every=6)
    )
    labels = [t.text for t in figure.iter(f"{SVG}text") if t.get("text-anchor") == "middle"]
    assert labels == ["00", "06", "12", "18"]


def test_a_sparkline_follows_its_values() -> None:
    svg = parse(sparkline([0, 2, 1, 4], title="started <per> hour", width=100, height=20))
    assert svg.findtext(f"{SVG}title") == "started <per> hour"
    line = svg.find(f"{SVG}polyline")
    assert line is not None
    points = [tuple(float(n) for n in p.split(",")) for p in line.get("points", "").split()]
    assert len(points) == 4
    xs, ys = [x for x, _ in points], [y for _, y in points]
    assert xs == sorted(xs) and xs[0] == 2 and xs[-1] == 98
    assert ys[0] == max(ys) and ys[3] == min(ys)  # 0 at the bottom, the peak at the top
    dot = svg.find(f"{SVG}circle")
    assert dot is not None and (float(dot.get("cx", 0)), float(dot.get("cy", 0))) == points[-1]
    flat = parse(sparkline([0, 0, 0], title="none", tone="bad"))
    assert "tone-bad" in (flat.get("class") or "")
    flat_line = flat.find(f"{SVG}polyline")
    assert flat_line is not None and len({p.split(",")[1] for p in flat_line.get("points", "").split()}) == 1
    assert parse(sparkline([], title="empty")).find(f"{SVG}polyline") is None


def test_number_formats() -> None:
    assert [nice_ceiling(v) for v in (0, 0.7, 3, 7, 23, 100, 0.00042)] == [1, 1, 5, 10, 25, 100, 0.0005]
    assert [plain(v) for v in (3, 1234, 2.5, 0.125)] == ["3", "1,234", "2.5", "0.12"]
    assert [compact(v) for v in (950, 1200, 3_450_000, 2e9)] == ["950", "1.2k", "3.45M", "2G"]
    assert [dollars(v) for v in (0, 0.5, 0.00014, 12.345, 1e-8)] == [
        "$0",
        "$0.50",
        "$0.00014",
        "$12.35",
        "<$0.000001",
    ]
