"""
The console's actions (POST forms): closing, revoking, disabling, voting.

Close a task, revoke a lease, disable an agent, approve or deny, verify the audit
chain, sign out.

Each runs only after :func:`gatepass.console.web.page` checked the session, the
origin and the CSRF token; each checks its permission here and the operator's
tenant in the broker, needs a reason where a human decision is recorded, and is
audited by the broker's use case under ``operator:<name>``. On success the browser
is sent back to the page it acted on (303, so a reload does not post again).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gatepass.broker import Permission
from gatepass.console.pages import _id
from gatepass.console.queries import reason_of
from gatepass.console.security import SESSION_COOKIE
from gatepass.console.web import PREFIX, Signed, broker_of, form_of, render
from gatepass.errors import InvalidRequestError
from gatepass.models import VoteChoice

__all__ = [
    "close_task",
    "disable_agent",
    "revoke_lease",
    "sign_out",
    "verify_chain",
    "vote",
]


def _back(path: str) -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}{path}", status_code=303)


async def close_task(request: Request, signed: Signed) -> Response:
    """Close a task (and everything delegated from it), revoking its leases."""
    signed.need(Permission.ADMINISTER)
    task_id = _id(request, "task_id")
    reason = reason_of(await form_of(request))
    await broker_of(request).console_views.close_task(signed.caller, task_id, reason)
    return _back(f"/tasks/{task_id}")


async def revoke_lease(request: Request, signed: Signed) -> Response:
    """Revoke one lease."""
    signed.need(Permission.ADMINISTER)
    lease_id = _id(request, "lease_id")
    reason = reason_of(await form_of(request))
    await broker_of(request).console_views.revoke_lease(signed.caller, lease_id, reason)
    return _back(f"/leases/{lease_id}")


async def disable_agent(request: Request, signed: Signed) -> Response:
    """Disable an agent, closing its tasks."""
    signed.need(Permission.ADMINISTER)
    agent_id = _id(request, "agent_id")
    await broker_of(request).console_views.disable_agent(signed.caller, agent_id)
    return _back(f"/agents/{agent_id}")


async def vote(request: Request, signed: Signed) -> Response:
    """Approve or deny an approval, with a reason (``choice`` in the form)."""
    signed.need(Permission.APPROVE)
    approval_id = _id(request, "approval_id")
    form = await form_of(request)
    reason = reason_of(form)
    if form.get("choice") not in {"approve", "deny"}:
        raise InvalidRequestError("choice must be approve or deny")
    choice = VoteChoice(form["choice"])
    views = broker_of(request).console_views
    # The tenant check first: an approval of another tenant is not found.
    await views.approval(signed.caller, approval_id)
    await broker_of(request).approvals.vote(
        signed.session.operator, approval_id, choice, reason
    )
    return _back(f"/approvals/{approval_id}")


async def verify_chain(request: Request, signed: Signed) -> Response:
    """Verify the audit chain now and show the result."""
    signed.need(Permission.AUDIT)
    result = await broker_of(request).console_views.verify_chain()
    fragment = request.headers.get("hx-request") == "true"
    return render(
        request,
        "verify_result.html" if fragment else "verify.html",
        {"result": result},
        signed=signed,
        status_code=200,
    )


async def sign_out(request: Request, signed: Signed) -> Response:
    """End the session and forget its cookie."""
    await broker_of(request).console.sign_out(signed.session)
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response
