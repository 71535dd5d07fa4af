"""The admin API under ``/v1/``: agents, tasks, leases, targets, policy, audit, keys."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gatepass.api.bodies import read_body, read_json
from gatepass.api.shapes import agent_json, lease_json, target_json, task_json
from gatepass.broker import Caller, Runtime
from gatepass.errors import InvalidRequestError, NotFoundError
from gatepass.models import AgentStatus, LeaseState, TaskState
from gatepass.store import leases as lease_rows
from gatepass.store import tasks as task_rows

__all__ = ["admin_routes"]

Handler = Callable[[Request, Runtime, Caller], Awaitable[Response]]


def _authenticated(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        runtime: Runtime = request.app.state.runtime
        caller = await runtime.admin.authenticate(request.headers.get("authorization"))
        return await handler(request, runtime, caller)

    endpoint.__doc__ = handler.__doc__
    return endpoint


def _choice(request: Request, name: str, allowed: set[str]) -> str | None:
    value = request.query_params.get(name)
    if value is not None and value not in allowed:
        raise InvalidRequestError(f"{name} must be one of {', '.join(sorted(allowed))}")
    return value


def _limit(request: Request, default: int = 100, maximum: int = 1000) -> int:
    raw = request.query_params.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise InvalidRequestError(f"limit must be an integer from 1 to {maximum}")
    return int(raw)


def _id(request: Request, name: str) -> str:
    value = str(request.path_params[name])
    if len(value) > 64:
        raise InvalidRequestError(f"{name} is too long")
    return value


async def add_agent(request: Request, runtime: Runtime, caller: Caller) -> Response:
    """Register an agent."""
    payload = await read_json(request, runtime.settings.server.max_body_bytes)
    agent = await runtime.admin.add_agent(caller, payload)
    return JSONResponse(agent_json(agent), status_code=201)


async def list_agents(request: Request, runtime: Runtime, _caller: Caller) -> Response:
    """List agents."""
    status = _choice(request, "status", {s.value for s in AgentStatus})
    found = await runtime.admin.list_agents(
        tenant=request.query_params.get("tenant"), status=status
    )
    return JSONResponse({"items": [agent_json(agent) for agent in found]})


async def show_agent(request: Request, runtime: Runtime, _caller: Caller) -> Response:
    """Show one agent."""
    agent = await runtime.admin.get_agent(_id(request, "agent_id"))
    return JSONResponse(agent_json(agent))


async def disable_agent(request: Request, runtime: Runtime, caller: Caller) -> Response:
    """Disable an agent, closing its tasks."""
    await read_body(request, runtime.settings.server.max_body_bytes)
    agent = await runtime.admin.disable_agent(caller, _id(request, "agent_id"))
    return JSONResponse(agent_json(agent))


async def list_tasks(request: Request, runtime: Runtime, _caller: Caller) -> Response:
    """List tasks."""
    state = _choice(request, "state", {s.value for s in TaskState})
    agent_id = request.query_params.get("agent_id")
    limit = _limit(request)
    found = await runtime.database.read(
        lambda c: task_rows.list_tasks(c, state=state, agent_id=agent_id, limit=limit)
    )
    return JSONResponse({"items": [task_json(task) for task in found]})


async def show_task(request: Request, runtime: Runtime, _caller: Caller) -> Response:
    """Show a task with its leases."""
    task_id = _id(request, "task_id")
    task = await runtime.database.read(lambda c: task_rows.get_task(c, task_id))
    if task is None:
        raise NotFoundError("no such task")
    found = await runtime.database.read(
        lambda c: lease_rows.list_leases(c, task_id=task_id, limit=1000)
    )
    body = task_json(task)
    body["leases"] = [lease_json(lease) for lease in found]
    return JSONResponse(body)


async def list_leases(request: Request, runtime: Runtime, _caller: Caller) -> Response:
    """List leases."""
    state = _choice(request, "state", {s.value for s in LeaseState})
    task_id = request.query_params.get("task_id")
    limit = _limit(request)
    found = await runtime.database.read(
        lambda c: lease_rows.list_leases(c, state=state, task_id=task_id, limit=limit)
    )
    return JSONResponse({"items": [lease_json(lease) for lease in found]})


async def show_lease(request: Request, runtime: Runtime, _caller: Caller) -> Response:
    """Show one lease."""
    lease_id = _id(request, "lease_id")
    lease = await runtime.database.read(lambda c: lease_rows.get_lease(c, lease_id))
    if lease is None:
        raise NotFoundError("no such lease")
    return JSONResponse(lease_json(lease))


async def revoke_lease(request: Request, runtime: Runtime, caller: Caller) -> Response:
    """Revoke one lease."""
    await read_body(request, runtime.settings.server.max_body_bytes)
    lease = await runtime.broker.revoke_lease(
        _id(request, "lease_id"), actor=caller.actor, reason="revoked by admin"
    )
    return JSONResponse(lease_json(lease))


async def list_targets(
    _request: Request, runtime: Runtime, _caller: Caller
) -> Response:
    """List configured targets."""
    items = [target_json(target) for target in runtime.broker.catalog.all()]
    return JSONResponse({"items": items})


async def policy_status(
    _request: Request, runtime: Runtime, _caller: Caller
) -> Response:
    """Show the live policy set."""
    return JSONResponse(runtime.admin.policy_status())


async def policy_reload(request: Request, runtime: Runtime, caller: Caller) -> Response:
    """Reload policies from disk."""
    await read_body(request, runtime.settings.server.max_body_bytes)
    return JSONResponse(await runtime.admin.reload_policy(caller.actor))


async def audit_events(request: Request, runtime: Runtime, _caller: Caller) -> Response:
    """Page through audit records, or return the newest ones (``?last=N``)."""
    if "last" in request.query_params:
        last = request.query_params["last"]
        if not last.isdigit() or not 1 <= int(last) <= 1000:
            raise InvalidRequestError("last must be an integer from 1 to 1000")
        items = await runtime.admin.last_audit_events(int(last))
        return JSONResponse({"items": items, "next": items[-1]["seq"] if items else 0})
    after_raw = request.query_params.get("after", "0")
    if not after_raw.isdigit():
        raise InvalidRequestError("after must be a non-negative integer")
    after, limit = int(after_raw), _limit(request, default=500)
    items = await runtime.admin.audit_events(after=after, limit=limit)
    next_seq = items[-1]["seq"] if items else after
    return JSONResponse({"items": items, "next": next_seq})


async def audit_checkpoints(
    _request: Request, runtime: Runtime, _caller: Caller
) -> Response:
    """List signed checkpoints and the audit public key."""
    return JSONResponse(
        {
            "items": await runtime.admin.audit_checkpoints(),
            "public_key": runtime.admin.signer.public_jwk,
        }
    )


async def checkpoint_now(
    request: Request, runtime: Runtime, _caller: Caller
) -> Response:
    """Sign a checkpoint over the current head now (or return the one there is)."""
    await read_body(request, runtime.settings.server.max_body_bytes)
    checkpoint = await runtime.anchoring.checkpoint_now()
    return JSONResponse(
        {
            "checkpoint": None if checkpoint is None else checkpoint.to_json(),
            "public_key": runtime.admin.signer.public_jwk,
        }
    )


async def reconcile(request: Request, runtime: Runtime, caller: Caller) -> Response:
    """Re-apply what the anchor journal holds and the database lacks; unseal."""
    await read_body(request, runtime.settings.server.max_body_bytes)
    return JSONResponse(await runtime.anchoring.reconcile(caller.actor))


async def list_keys(_request: Request, runtime: Runtime, _caller: Caller) -> Response:
    """List signing keys."""
    return JSONResponse({"items": runtime.admin.key_list()})


async def rotate_keys(request: Request, runtime: Runtime, caller: Caller) -> Response:
    """Rotate signing keys."""
    await read_body(request, runtime.settings.server.max_body_bytes)
    return JSONResponse({"items": await runtime.admin.rotate_keys(caller)})


admin_routes = [
    Route("/v1/agents", _authenticated(add_agent), methods=["POST"]),
    Route("/v1/agents", _authenticated(list_agents), methods=["GET"]),
    Route("/v1/agents/{agent_id}", _authenticated(show_agent), methods=["GET"]),
    Route(
        "/v1/agents/{agent_id}/disable", _authenticated(disable_agent), methods=["POST"]
    ),
    Route("/v1/tasks", _authenticated(list_tasks), methods=["GET"]),
    Route("/v1/tasks/{task_id}", _authenticated(show_task), methods=["GET"]),
    Route("/v1/leases", _authenticated(list_leases), methods=["GET"]),
    Route("/v1/leases/{lease_id}", _authenticated(show_lease), methods=["GET"]),
    Route(
        "/v1/leases/{lease_id}/revoke", _authenticated(revoke_lease), methods=["POST"]
    ),
    Route("/v1/targets", _authenticated(list_targets), methods=["GET"]),
    Route("/v1/policy", _authenticated(policy_status), methods=["GET"]),
    Route("/v1/policy/reload", _authenticated(policy_reload), methods=["POST"]),
    Route("/v1/audit/events", _authenticated(audit_events), methods=["GET"]),
    Route("/v1/audit/checkpoints", _authenticated(audit_checkpoints), methods=["GET"]),
    Route("/v1/audit/checkpoints", _authenticated(checkpoint_now), methods=["POST"]),
    Route("/v1/audit/reconcile", _authenticated(reconcile), methods=["POST"]),
    Route("/v1/keys", _authenticated(list_keys), methods=["GET"]),
    Route("/v1/keys/rotate", _authenticated(rotate_keys), methods=["POST"]),
]
