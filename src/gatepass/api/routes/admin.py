"""
The admin API under ``/v1/``.

Agents, tasks, leases, targets, policy, audit, signing keys and API tokens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gatepass.api.bodies import read_body, read_json
from gatepass.api.inputs import (
    AgentQuery,
    AuditQuery,
    LeaseQuery,
    TaskQuery,
    agent_registration,
    audit_filter,
    policy_question,
    validated,
)
from gatepass.api.routes.access import Handler, authenticated
from gatepass.api.shapes import (
    agent_json,
    lease_json,
    target_json,
    task_json,
    task_tree_json,
)
from gatepass.broker import Broker, Caller, Permission
from gatepass.errors import GatepassError, InvalidRequestError

__all__ = ["admin_routes"]


def _reads(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    # Reads are open to auditors as well as admins.
    return authenticated(handler, needs=Permission.AUDIT)


def _changes(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    return authenticated(handler, needs=Permission.ADMINISTER)


def _id(request: Request, name: str) -> str:
    value = str(request.path_params[name])
    if len(value) > 64:
        raise InvalidRequestError(f"{name} is too long")
    return value


async def _empty(request: Request, broker: Broker) -> None:
    await read_body(request, broker.settings.server.max_body_bytes)


async def add_agent(request: Request, broker: Broker, caller: Caller) -> Response:
    """Register an agent."""
    try:
        payload = await read_json(request, broker.settings.server.max_body_bytes)
        registration = agent_registration(payload)
    except GatepassError as error:
        await broker.agents.reject(caller, error)
        raise
    agent = await broker.agents.add(caller, registration)
    return JSONResponse(agent_json(agent), status_code=201)


async def list_agents(request: Request, broker: Broker, _caller: Caller) -> Response:
    """List agents."""
    query = validated(AgentQuery, request.query_params)
    found = await broker.agents.find(tenant=query.tenant, status=query.status)
    return JSONResponse({"items": [agent_json(agent) for agent in found]})


async def show_agent(request: Request, broker: Broker, _caller: Caller) -> Response:
    """Show one agent."""
    agent = await broker.agents.get(_id(request, "agent_id"))
    return JSONResponse(agent_json(agent))


async def disable_agent(request: Request, broker: Broker, caller: Caller) -> Response:
    """Disable an agent, closing its tasks."""
    await _empty(request, broker)
    agent = await broker.agents.disable(caller, _id(request, "agent_id"))
    return JSONResponse(agent_json(agent))


async def list_tasks(request: Request, broker: Broker, _caller: Caller) -> Response:
    """List tasks."""
    query = validated(TaskQuery, request.query_params)
    found = await broker.reads.tasks(
        state=query.state, agent_id=query.agent_id, limit=query.limit
    )
    return JSONResponse({"items": [task_json(task) for task in found]})


async def show_task(request: Request, broker: Broker, _caller: Caller) -> Response:
    """Show a task with its leases."""
    task, leases = await broker.reads.task(_id(request, "task_id"))
    body = task_json(task)
    body["leases"] = [lease_json(lease) for lease in leases]
    return JSONResponse(body)


async def task_tree(request: Request, broker: Broker, caller: Caller) -> Response:
    """Show the delegation tree a task belongs to, with agents, states and leases."""
    task_id = _id(request, "task_id")
    operator = caller.operator
    # Operators see the trees of their tenants; service tokens see every tenant.
    tenants = (
        None
        if operator is None or "*" in operator.tenants
        else frozenset(operator.tenants)
    )
    nodes = await broker.reads.tree(task_id, tenants=tenants)
    return JSONResponse(task_tree_json(nodes, requested=task_id))


async def list_leases(request: Request, broker: Broker, _caller: Caller) -> Response:
    """List leases."""
    query = validated(LeaseQuery, request.query_params)
    found = await broker.reads.leases(
        state=query.state, task_id=query.task_id, limit=query.limit
    )
    return JSONResponse({"items": [lease_json(lease) for lease in found]})


async def show_lease(request: Request, broker: Broker, _caller: Caller) -> Response:
    """Show one lease."""
    lease = await broker.reads.lease(_id(request, "lease_id"))
    return JSONResponse(lease_json(lease))


async def revoke_lease(request: Request, broker: Broker, caller: Caller) -> Response:
    """Revoke one lease."""
    await _empty(request, broker)
    lease = await broker.closing.revoke_lease(
        _id(request, "lease_id"), actor=caller.actor, reason="revoked by admin"
    )
    return JSONResponse(lease_json(lease))


async def list_targets(_request: Request, broker: Broker, _caller: Caller) -> Response:
    """List configured targets."""
    items = [target_json(target) for target in broker.catalog.all()]
    return JSONResponse({"items": items})


async def policy_status(_request: Request, broker: Broker, _caller: Caller) -> Response:
    """Show the live policy set."""
    return JSONResponse(broker.policy.status())


async def policy_reload(request: Request, broker: Broker, caller: Caller) -> Response:
    """Reload policies from disk."""
    await _empty(request, broker)
    return JSONResponse(await broker.policy.reload(caller.actor))


async def policy_explain(request: Request, broker: Broker, _caller: Caller) -> Response:
    """Decide one request against the live set without issuing (a what-if)."""
    payload = await read_json(request, broker.settings.server.max_body_bytes)
    return JSONResponse(await broker.policy.explain(policy_question(payload)))


async def audit_events(request: Request, broker: Broker, _caller: Caller) -> Response:
    """Page through audit records, or return the newest ones (``?last=N``)."""
    query = validated(AuditQuery, request.query_params)
    match = audit_filter(query)
    if query.last is not None:
        items, next_seq = await broker.audit.page(match, limit=query.last, newest=True)
    else:
        items, next_seq = await broker.audit.page(
            match, limit=query.limit, after=query.after
        )
    return JSONResponse({"items": items, "next": next_seq})


async def audit_checkpoints(
    _request: Request, broker: Broker, _caller: Caller
) -> Response:
    """List signed checkpoints and the audit public key."""
    return JSONResponse(
        {
            "items": await broker.audit.checkpoints(),
            "public_key": broker.audit.public_key,
        }
    )


async def checkpoint_now(request: Request, broker: Broker, _caller: Caller) -> Response:
    """Sign a checkpoint over the current head now (or return the one there is)."""
    await _empty(request, broker)
    checkpoint = await broker.audit.checkpoint_now()
    return JSONResponse(
        {
            "checkpoint": None if checkpoint is None else checkpoint.to_json(),
            "public_key": broker.audit.public_key,
        }
    )


async def reconcile(request: Request, broker: Broker, caller: Caller) -> Response:
    """Re-apply what the anchor journal holds and the database lacks; unseal."""
    await _empty(request, broker)
    return JSONResponse(await broker.audit.reconcile(caller))


async def list_keys(_request: Request, broker: Broker, _caller: Caller) -> Response:
    """List signing keys."""
    return JSONResponse({"items": broker.keys.describe()})


async def rotate_keys(request: Request, broker: Broker, caller: Caller) -> Response:
    """Rotate signing keys."""
    await _empty(request, broker)
    return JSONResponse({"items": await broker.keys.rotate(caller)})


admin_routes = [
    Route("/v1/agents", _changes(add_agent), methods=["POST"]),
    Route("/v1/agents", _reads(list_agents), methods=["GET"]),
    Route("/v1/agents/{agent_id}", _reads(show_agent), methods=["GET"]),
    Route("/v1/agents/{agent_id}/disable", _changes(disable_agent), methods=["POST"]),
    Route("/v1/tasks", _reads(list_tasks), methods=["GET"]),
    Route("/v1/tasks/{task_id}", _reads(show_task), methods=["GET"]),
    Route("/v1/admin/tasks/{task_id}/tree", _reads(task_tree), methods=["GET"]),
    Route("/v1/leases", _reads(list_leases), methods=["GET"]),
    Route("/v1/leases/{lease_id}", _reads(show_lease), methods=["GET"]),
    Route("/v1/leases/{lease_id}/revoke", _changes(revoke_lease), methods=["POST"]),
    Route("/v1/targets", _reads(list_targets), methods=["GET"]),
    Route("/v1/policy", _reads(policy_status), methods=["GET"]),
    Route("/v1/policy/reload", _changes(policy_reload), methods=["POST"]),
    Route("/v1/policy/explain", _reads(policy_explain), methods=["POST"]),
    Route("/v1/audit/events", _reads(audit_events), methods=["GET"]),
    Route("/v1/audit/checkpoints", _reads(audit_checkpoints), methods=["GET"]),
    Route("/v1/audit/checkpoints", _changes(checkpoint_now), methods=["POST"]),
    Route("/v1/audit/reconcile", _changes(reconcile), methods=["POST"]),
    Route("/v1/keys", _reads(list_keys), methods=["GET"]),
    Route("/v1/keys/rotate", _changes(rotate_keys), methods=["POST"]),
]
