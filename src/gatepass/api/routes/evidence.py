"""
Evidence bundles and the framework report under ``/v1/admin/``.

Both are reads: they need the ``audit`` permission (auditors and admins). An
operator sees only the tasks of their tenants; another tenant's task is 404.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gatepass.api.routes.access import authenticated
from gatepass.broker import Broker, Caller, Permission
from gatepass.errors import GatepassError, InvalidRequestError
from gatepass.frameworks import render_html, render_markdown

__all__ = ["evidence_routes"]

_MAX_ID = 64
# The HTML report is static text: nothing may load or run in it.
_HTML_POLICY = "default-src 'none'; style-src 'none'; frame-ancestors 'none'"


async def task_evidence(request: Request, broker: Broker, caller: Caller) -> Response:
    """Export the signed evidence bundle of a task and its descendants."""
    task_id = str(request.path_params["task_id"])
    try:
        if len(task_id) > _MAX_ID:
            raise InvalidRequestError("task_id is too long")
        bundle = await broker.evidence.export(caller, task_id)
    except GatepassError as error:
        await broker.audit.reject("evidence.export", error, actor=caller.actor)
        raise
    return JSONResponse(bundle, headers={"cache-control": "no-store"})


async def framework_report(
    request: Request, broker: Broker, caller: Caller
) -> Response:
    """The framework report of this deployment, as json, md or html."""
    wanted = request.query_params.get("format", "json")
    if wanted not in {"json", "md", "html"}:
        error = InvalidRequestError("format must be json, md or html")
        await broker.audit.reject("report.frameworks", error, actor=caller.actor)
        raise error
    report = await broker.frameworks.report()
    if wanted == "md":
        return Response(render_markdown(report), media_type="text/markdown")
    if wanted == "html":
        return Response(
            render_html(report),
            media_type="text/html",
            headers={
                "content-security-policy": _HTML_POLICY,
                "x-content-type-options": "nosniff",
            },
        )
    return JSONResponse(report)


evidence_routes = [
    Route(
        "/v1/admin/tasks/{task_id}/evidence",
        authenticated(task_evidence, needs=Permission.AUDIT),
        methods=["GET"],
    ),
    Route(
        "/v1/admin/report/frameworks",
        authenticated(framework_report, needs=Permission.AUDIT),
        methods=["GET"],
    ),
]
