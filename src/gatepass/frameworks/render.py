"""
The report as Markdown or HTML (JSON is the report itself).

Everything shown comes from configuration and the catalog, but target names and
reasons are operator-chosen text, so both renderings escape every value: HTML
with :func:`html.escape` (no inline script, no style, no link is emitted), and
Markdown by escaping the characters that make table cells, links or HTML.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["render_html", "render_markdown"]

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _md(value: object) -> str:
    text = _CONTROL.sub(" ", str(value))
    return _MD_SPECIAL.sub(r"\\\1", text)


def render_markdown(report: Mapping[str, Any]) -> str:
    """Return the report as a Markdown document (tables per framework)."""
    summary = report["summary"]
    lines = [
        "# gatepass framework report",
        "",
        (
            f"Generated {_md(report['generated_at'])} for {_md(report['issuer'])}; "
            f"policy digest `{_md(report['policy_digest'])[:64]}`."
        ),
        "",
        (
            f"Items: {summary['met']} met, {summary['partly met']} partly met, "
            f"{summary['not met']} not met."
        ),
    ]
    for framework in report["frameworks"]:
        lines += ["", f"## {_md(framework['title'])}", ""]
        lines += ["| id | item | status | reason |", "| --- | --- | --- | --- |"]
        lines += [
            f"| {_md(i['id'])} | {_md(i['title'])} | {_md(i['status'])} | "
            f"{_md(i['reason'])} |"
            for i in framework["items"]
        ]
    lines += [
        "",
        "## Controls",
        "",
        "| control | status | reason |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| {_md(c['title'])} | {_md(c['status'])} | {_md(c['reason'])} |"
        for c in report["controls"]
    ]
    lines += [
        "",
        "## Evidence checks",
        "",
        "| check | status | reason |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| {_md(c['check'])} | {_md(c['status'])} | {_md(c['reason'])} |"
        for c in report["checks"]
    ]
    return "\n".join(lines) + "\n"


def _h(value: object) -> str:
    return html.escape(str(value), quote=True)


def _table(headers: list[str], rows: list[list[object]]) -> list[str]:
    out = ["<table>", "<tr>" + "".join(f"<th>{_h(h)}</th>" for h in headers) + "</tr>"]
    out += [
        "<tr>" + "".join(f"<td>{_h(cell)}</td>" for cell in row) + "</tr>"
        for row in rows
    ]
    out.append("</table>")
    return out


def render_html(report: Mapping[str, Any]) -> str:
    """Return the report as a standalone HTML page: escaped text, no script."""
    summary = report["summary"]
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>gatepass framework report</title></head><body>",
        "<h1>gatepass framework report</h1>",
        (
            f"<p>Generated {_h(report['generated_at'])} for {_h(report['issuer'])}; "
            f"policy digest <code>{_h(report['policy_digest'])}</code>.</p>"
        ),
        (
            f"<p>Items: {_h(summary['met'])} met, "
            f"{_h(summary['partly met'])} partly met, "
            f"{_h(summary['not met'])} not met.</p>"
        ),
    ]
    for framework in report["frameworks"]:
        out.append(f"<h2>{_h(framework['title'])}</h2>")
        out += _table(
            ["id", "item", "status", "reason"],
            [
                [i["id"], i["title"], i["status"], i["reason"]]
                for i in framework["items"]
            ],
        )
    out.append("<h2>Controls</h2>")
    out += _table(
        ["control", "status", "reason"],
        [[c["title"], c["status"], c["reason"]] for c in report["controls"]],
    )
    out.append("<h2>Evidence checks</h2>")
    out += _table(
        ["check", "status", "reason"],
        [[c["check"], c["status"], c["reason"]] for c in report["checks"]],
    )
    out.append("</body></html>")
    return "\n".join(out) + "\n"
