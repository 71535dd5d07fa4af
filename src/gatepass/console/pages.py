"""
The console's pages (GET): overview, tasks, leases, agents, approvals, audit, policy.

Every page needs a signed-in operator; reads need ``audit`` (admins and auditors),
the approvals inbox ``approve`` or ``audit``. What a page lists is limited to the
operator's tenants by the broker (``broker/console_views.py``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gatepass.broker import Permission, PolicyQuestion
from gatepass.console.chart import chart_svg
from gatepass.console.queries import (
    audit_query,
    cursor,
    lease_query,
    task_query,
    text_field,
)
from gatepass.console.web import Signed, broker_of, render
from gatepass.errors import InvalidRequestError, NotFoundError
from gatepass.models import ApprovalState

__all__ = [
    "agent_page",
    "agents_page",
    "approval_page",
    "approvals_page",
    "audit_export",
    "audit_page",
    "lease_page",
    "leases_page",
    "overview_page",
    "policy_page",
    "task_page",
    "tasks_page",
]


def _id(request: Request, name: str) -> str:
    value = str(request.path_params[name])
    if not value or len(value) > 64 or not value.replace("_", "").isalnum():
        raise InvalidRequestError(f"{name} is not a valid id")
    return value


async def overview_page(request: Request, signed: Signed) -> Response:
    """The overview: what is live now and the last hour's chart."""
    figures = await broker_of(request).console_views.overview(signed.caller)
    return render(
        request,
        "overview.html",
        {"figures": figures, "chart": chart_svg(figures.chart)},
        signed=signed,
    )


async def tasks_page(request: Request, signed: Signed) -> Response:
    """Tasks, newest first, filtered, a page at a time."""
    signed.need(Permission.AUDIT)
    wanted = task_query(request.query_params)
    found = await broker_of(request).console_views.tasks(
        signed.session.operator, wanted
    )
    more = None
    if len(found) == wanted.limit:
        more = cursor(found[-1].created_at, found[-1].id)
    return render(
        request,
        "tasks.html",
        {"tasks": found, "wanted": wanted, "more": more},
        signed=signed,
    )


async def task_page(request: Request, signed: Signed) -> Response:
    """One task: intent, targets, leases, delegation tree, timeline."""
    signed.need(Permission.AUDIT)
    shown = await broker_of(request).console_views.task(
        signed.caller, _id(request, "task_id")
    )
    return render(request, "task.html", {"page": shown}, signed=signed)


async def leases_page(request: Request, signed: Signed) -> Response:
    """Leases, newest first, filtered, a page at a time."""
    signed.need(Permission.AUDIT)
    wanted = lease_query(request.query_params)
    found = await broker_of(request).console_views.leases(
        signed.session.operator, wanted
    )
    more = None
    if len(found) == wanted.limit:
        more = cursor(found[-1].issued_at, found[-1].id)
    return render(
        request,
        "leases.html",
        {"leases": found, "wanted": wanted, "more": more},
        signed=signed,
    )


async def lease_page(request: Request, signed: Signed) -> Response:
    """One lease with its revocation attempts."""
    signed.need(Permission.AUDIT)
    lease, task, trail = await broker_of(request).console_views.lease_page(
        signed.session.operator, _id(request, "lease_id")
    )
    return render(
        request,
        "lease.html",
        {"lease": lease, "task": task, "trail": trail},
        signed=signed,
    )


async def agents_page(request: Request, signed: Signed) -> Response:
    """Agents of the operator's tenants."""
    signed.need(Permission.AUDIT)
    found = await broker_of(request).console_views.agents(signed.session.operator)
    return render(request, "agents.html", {"agents": found}, signed=signed)


async def agent_page(request: Request, signed: Signed) -> Response:
    """One agent: labels, owners, identity source, recent tasks."""
    signed.need(Permission.AUDIT)
    agent, recent = await broker_of(request).console_views.agent(
        signed.session.operator, _id(request, "agent_id")
    )
    return render(
        request, "agent.html", {"agent": agent, "tasks": recent}, signed=signed
    )


async def approvals_page(request: Request, signed: Signed) -> Response:
    """The approvals inbox: pending first, then the history."""
    signed.need(Permission.APPROVE, Permission.AUDIT)
    views = broker_of(request).console_views
    pending = await views.approvals(signed.caller, states=("pending",))
    ended = tuple(s.value for s in ApprovalState if s is not ApprovalState.PENDING)
    history = await views.approvals(signed.caller, states=ended)
    return render(
        request,
        "approvals.html",
        {"pending": pending, "history": history[:50]},
        signed=signed,
    )


async def approval_page(request: Request, signed: Signed) -> Response:
    """One approval: the broker's facts first, then the agent's words, then votes."""
    signed.need(Permission.APPROVE, Permission.AUDIT)
    shown = await broker_of(request).console_views.approval(
        signed.caller, _id(request, "approval_id")
    )
    counted = sum(1 for vote in shown["votes"] if vote["choice"] == "approve")
    return render(
        request,
        "approval.html",
        {"approval": shown, "counted": counted},
        signed=signed,
    )


async def audit_page(request: Request, signed: Signed) -> Response:
    """The audit explorer: filtered, newest first, keyset pages by seq."""
    signed.need(Permission.AUDIT)
    match, before, until = audit_query(request.query_params)
    records, head, anchored = await broker_of(request).console_views.audit(
        signed.session.operator, match, before=before, until=until, limit=50
    )
    more = records[-1]["seq"] if len(records) == 50 else None
    return render(
        request,
        "audit.html",
        {
            "records": records,
            "head": head,
            "anchored": anchored,
            "more": more,
            "query": request.query_params,
            "export_query": request.url.query,
        },
        signed=signed,
    )


async def audit_export(request: Request, signed: Signed) -> Response:
    """Export the filtered audit records as JSON lines, oldest first."""
    signed.need(Permission.AUDIT)
    match, _, _ = audit_query(request.query_params)
    views = broker_of(request).console_views
    await views.check_audit_scope(signed.session.operator, match)

    async def lines() -> AsyncIterator[bytes]:
        after = 0
        while True:
            records, next_seq = await views.export_page(match, after=after)
            for record in records:
                yield (json.dumps(record, sort_keys=True) + "\n").encode()
            if len(records) < 1000 or next_seq <= after:
                return
            after = next_seq

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"content-disposition": 'attachment; filename="gatepass-audit.jsonl"'},
    )


async def policy_page(request: Request, signed: Signed) -> Response:
    """The loaded policies (read-only) and the what-if form."""
    signed.need(Permission.AUDIT)
    broker = broker_of(request)
    params = request.query_params
    answer = None
    question = {
        "agent": text_field(params, "agent") or "",
        "target": text_field(params, "target") or "",
        "action": text_field(params, "action") or "",
        "purpose": text_field(params, "purpose") or "",
        "environment": text_field(params, "environment") or "",
    }
    operator = signed.session.operator
    if question["agent"] and question["target"] and question["action"]:
        views = broker.console_views
        await views.scoped_agent_reference(operator, question["agent"])
        if not operator.may_act_on(broker.catalog.resolve(question["target"]).tenant):
            raise NotFoundError("no such target")
        answer = await broker.policy.explain(
            PolicyQuestion(
                agent=question["agent"],
                target=question["target"],
                action=question["action"],
                purpose=question["purpose"],
                environment=question["environment"] or None,
            )
        )
    return render(
        request,
        "policy.html",
        {
            "status": broker.policy.status(),
            "policies": broker.console_views.policies(),
            "targets": [
                t for t in broker.catalog.all() if operator.may_act_on(t.tenant)
            ],
            "question": question,
            "answer": answer,
        },
        signed=signed,
    )
