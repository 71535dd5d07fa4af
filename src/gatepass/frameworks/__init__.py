"""
The framework report: five frameworks mapped to controls judged from live facts.

OWASP ASI, OWASP NHI, OWASP MCP, CSA MAESTRO and NIST AI RMF are mapped to
gatepass's controls, each judged from live facts of one deployment.

The mapping is data (``catalog.toml``); the checks are pure functions of
:class:`Facts` (:mod:`gatepass.frameworks.checks`), which the broker reads.
"""

from __future__ import annotations

from gatepass.frameworks.catalog import Catalog, Control, Framework, Item, load_catalog
from gatepass.frameworks.checks import CHECKS, Facts, Finding, Status, TargetFact
from gatepass.frameworks.render import render_html, render_markdown
from gatepass.frameworks.report import build_report

__all__ = [
    "CHECKS",
    "Catalog",
    "Control",
    "Facts",
    "Finding",
    "Framework",
    "Item",
    "Status",
    "TargetFact",
    "build_report",
    "load_catalog",
    "render_html",
    "render_markdown",
]
