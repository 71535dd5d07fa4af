"""The overview's server-drawn SVG chart (issue 13)."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

from gatepass.broker import ChartSeries
from gatepass.console.chart import chart_svg

SVG = "{http://www.w3.org/2000/svg}"
START = dt.datetime(2026, 1, 6, 10, 0, tzinfo=dt.UTC)


def series(issued: list[int], denied: list[int], revoked: list[int]) -> ChartSeries:
    """Counts for consecutive minutes from START."""
    minutes = [START + dt.timedelta(minutes=i) for i in range(len(issued))]
    return ChartSeries(minutes=minutes, issued=issued, denied=denied, revoked=revoked)


class TestChart:
    """One bar per non-zero count, scaled to the busiest minute."""

    def test_issue13_bars_are_drawn_for_counts(self) -> None:
        """Three non-zero counts give three bars; the peak bar is the tallest."""
        svg = ET.fromstring(str(chart_svg(series([4, 0], [0, 2], [1, 0]))))  # noqa: S314
        bars = svg.findall(f"{SVG}rect")
        assert sorted(str(b.get("class")) for b in bars) == [
            "bar denied",
            "bar issued",
            "bar revoked",
        ]
        heights = {b.get("class"): float(b.get("height", "0")) for b in bars}
        assert heights["bar issued"] == max(heights.values())

    def test_issue13_empty_hour_is_an_axis_only(self) -> None:
        """No activity draws no bar and no style attribute (the CSP forbids them)."""
        drawn = str(chart_svg(series([0] * 60, [0] * 60, [0] * 60)))
        assert "<rect" not in drawn
        assert "style=" not in drawn
        assert "<title" in drawn
