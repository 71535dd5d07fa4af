"""
The overview's chart: issuances, denials and revocations per minute, as inline SVG.

Drawn on the server from the counts (no chart library, no script): three bar
series on one time axis, each bar's height proportional to the busiest minute.
Colours come from CSS classes, so the chart follows the light or dark theme; the
SVG carries a ``<title>`` and a table of the same numbers sits beside it for
screen readers.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from markupsafe import Markup, escape

from gatepass.broker import ChartSeries

__all__ = ["chart_svg"]

_WIDTH: Final = 720
_HEIGHT: Final = 160
_PAD: Final = 24


def chart_svg(series: ChartSeries) -> Markup:
    """
    Return the chart as an SVG element.

    Args:
        series: the per-minute counts, oldest minute first.

    Returns:
        Safe markup: every text in it is escaped numbers and times.
    """
    count = max(len(series.minutes), 1)
    peak = max([1, *series.issued, *series.denied, *series.revoked])
    slot = (_WIDTH - 2 * _PAD) / count
    bar = max(slot / 3 - 0.5, 0.5)
    height = _HEIGHT - 2 * _PAD
    parts = [
        (
            f'<svg class="chart" viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" '
            'aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg">'
        ),
        (
            '<title id="chart-title">issuances, denials and revocations per minute, '
            "last hour</title>"
        ),
        (
            f'<line class="axis" x1="{_PAD}" y1="{_HEIGHT - _PAD}" '
            f'x2="{_WIDTH - _PAD}" y2="{_HEIGHT - _PAD}"/>'
        ),
    ]
    for index, minute in enumerate(series.minutes):
        for offset, (name, values) in enumerate(
            (
                ("issued", series.issued),
                ("denied", series.denied),
                ("revoked", series.revoked),
            )
        ):
            value = values[index]
            if not value:
                continue
            tall = height * value / peak
            x = _PAD + index * slot + offset * (bar + 0.5)
            y = _HEIGHT - _PAD - tall
            label = escape(f"{minute:%H:%M} {name} {value}")
            parts.append(
                f'<rect class="bar {name}" x="{x:.1f}" y="{y:.1f}" '
                f'width="{bar:.1f}" height="{tall:.1f}"><title>{label}</title></rect>'
            )
    if series.minutes:
        first, last = series.minutes[0], series.minutes[-1]
        parts.append(_label(_PAD, first))
        parts.append(_label(_WIDTH - _PAD - 40, last))
    parts.append(
        f'<text class="tick" x="{_PAD}" y="{_PAD - 8}">peak {peak}/min</text></svg>'
    )
    return Markup("".join(parts))  # noqa: S704 - numbers and escaped labels only


def _label(x: float, minute: dt.datetime) -> str:
    return (
        f'<text class="tick" x="{x:.0f}" y="{_HEIGHT - 6}">'
        f"{escape(minute.strftime('%H:%M'))}</text>"
    )
