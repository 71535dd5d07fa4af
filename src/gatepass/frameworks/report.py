"""
The framework report: every catalog item judged from the live findings.

A control's status is the worst of its checks; an item is met when every control
it maps to is met, not met when none is at least partly met (or it maps to none),
and partly met otherwise; an item the catalog marks ``partial`` is at best partly
met, because gatepass only narrows that risk.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from gatepass.frameworks.catalog import Catalog, Item, load_catalog
from gatepass.frameworks.checks import CHECKS, Facts, Finding, Status

__all__ = ["build_report"]

_ORDER = {Status.MET: 0, Status.PARTLY_MET: 1, Status.NOT_MET: 2}


def _worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=_ORDER.__getitem__, default=Status.NOT_MET)


def _item_status(item: Item, controls: dict[str, Status]) -> tuple[Status, str]:
    statuses = [controls[c] for c in item.controls]
    if not statuses:
        return Status.NOT_MET, item.note or "no gatepass control addresses this item"
    if all(s is Status.MET for s in statuses):
        if item.partial:
            return Status.PARTLY_MET, (
                item.note
                or "every mapped control is met; gatepass narrows this risk "
                "(what a compromised component can reach) but does not remove it"
            )
        return Status.MET, "every mapped control is met"
    if all(s is Status.NOT_MET for s in statuses):
        return Status.NOT_MET, "no mapped control is met"
    weak = [c for c in item.controls if controls[c] is not Status.MET]
    return Status.PARTLY_MET, "not fully met: " + ", ".join(weak)


def build_report(
    facts: Facts, *, generated_at: dt.datetime, catalog: Catalog | None = None
) -> dict[str, Any]:
    """
    Judge every framework item from this deployment's facts.

    Args:
        facts: the live facts.
        generated_at: now.
        catalog: the mapping; the packaged one by default.

    Returns:
        The report as JSON: ``checks`` (each finding), ``controls`` (status and
        reason), ``frameworks`` (items with status, reason and controls) and a
        ``summary`` of item counts per status.
    """
    catalog = catalog or load_catalog()
    findings: dict[str, Finding] = {
        name: check(facts) for name, check in CHECKS.items()
    }
    control_status: dict[str, Status] = {}
    controls = []
    for control in catalog.controls.values():
        status = _worst(findings[c].status for c in control.checks)
        control_status[control.id] = status
        controls.append(
            {
                "id": control.id,
                "title": control.title,
                "status": status.value,
                "checks": list(control.checks),
                "reason": "; ".join(
                    findings[c].reason
                    for c in control.checks
                    if findings[c].status is status
                ),
            }
        )
    frameworks = []
    summary = {status.value: 0 for status in Status}
    for framework in catalog.frameworks:
        items = []
        for item in framework.items:
            status, reason = _item_status(item, control_status)
            summary[status.value] += 1
            items.append(
                {
                    "id": item.id,
                    "title": item.title,
                    "status": status.value,
                    "reason": reason,
                    "controls": list(item.controls),
                }
            )
        frameworks.append(
            {"id": framework.id, "title": framework.title, "items": items}
        )
    return {
        "generated_at": generated_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "issuer": facts.issuer,
        "policy_digest": facts.policy_digest,
        "summary": summary,
        "frameworks": frameworks,
        "controls": controls,
        "checks": [
            {
                "check": finding.check,
                "status": finding.status.value,
                "reason": finding.reason,
                "evidence": dict(finding.evidence),
            }
            for finding in findings.values()
        ],
    }
