"""
The web console's page render time with a full store.

    .venv/bin/python bench/console.py

Builds a broker on SQLite (the embedded default) in a temporary directory and fills
it through the store's own functions: 2,000 tasks, 10,000 leases (a fifth of them
live) and 100,000 audit records appended through the broker's audit trail (so the
chain and its MACs are real). It signs in with a one-time login link and then
requests each page ``ITERATIONS`` times through the whole ASGI app in-process
(httpx over ASGI: routing, session lookup, the broker's reads, the template, the
security headers; no socket, so the figure is the broker's work, not the
network's). The table shows p50 and p95 per page; the aim (issue 13) is p50 <= 150
ms for the tasks list and the audit explorer, first page and a deep keyset page.
Results go to ``bench/results/console.json``. Nothing outside the temporary
directory is touched; it is deleted at the end.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from gatepass.api import create_app
from gatepass.audit import AuditEntry, Outcome
from gatepass.broker import AuditFilter, Caller, TaskFilter, build_runtime
from gatepass.config import Settings
from gatepass.ids import OperatorId, new_lease_id, new_task_id
from gatepass.models import (
    ApiRole,
    Lease,
    LeaseState,
    Operator,
    OperatorRole,
    Task,
    TaskState,
)
from gatepass.store import agents as agent_rows
from gatepass.store import leases as lease_rows
from gatepass.store import tasks as task_rows
from harness import machine

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results" / "console.json"
TASKS = 2_000
LEASES = 10_000
EVENTS = 100_000
ITERATIONS = 40
AIM_MS = 150.0
KINDS = ("task.open", "credential.issue", "lease.revoke", "task.close", "token.access")


def settings(state: Path) -> Settings:
    """A quickstart-like broker with the console's bootstrap operator."""
    return Settings.model_validate(
        {
            "server": {"issuer": "http://127.0.0.1:8400", "state_dir": str(state)},
            "policy": {
                "directory": str(REPO / "examples" / "quickstart" / "policies"),
                "reload_interval_seconds": 0,
            },
            "demo": {"enabled": True, "tenant": "acme"},
            "console": {"bootstrap_operator": "admin"},
        }
    )


def fill(runtime: Any, now: dt.datetime) -> str:  # noqa: ANN401
    """Write the tasks, leases and audit records; return a task id in the middle."""
    with runtime.database.reading() as conn:
        agent = agent_rows.list_agents(conn)[0]
    task_ids: list[str] = []
    with runtime.database.transaction() as conn:
        for index in range(TASKS):
            opened = now - dt.timedelta(seconds=TASKS - index)
            task = Task(
                id=new_task_id(),
                agent_id=agent.id,
                tenant="acme",
                environment="dev",
                purpose=("support-triage", "billing", "deploy")[index % 3],
                intent="bench task",
                targets=("tickets",),
                jkt=secrets.token_hex(16),
                token_jti=secrets.token_hex(16),
                state=TaskState.OPEN if index % 5 == 0 else TaskState.CLOSED,
                created_at=opened,
                expires_at=opened + dt.timedelta(minutes=15),
            )
            task_rows.insert_task(conn, task)
            task_ids.append(task.id)
        for index in range(LEASES):
            issued = now - dt.timedelta(seconds=LEASES - index)
            live = index % 5 == 0
            lease_rows.insert_lease(
                conn,
                Lease(
                    id=new_lease_id(),
                    task_id=task_ids[index % TASKS],
                    agent_id=agent.id,
                    target="tickets",
                    kind="access_token",
                    actions=("read",),
                    handle=secrets.token_hex(16),
                    state=LeaseState.ACTIVE if live else LeaseState.REVOKED,
                    issued_at=issued,
                    expires_at=issued + dt.timedelta(minutes=5),
                    revoked_at=None if live else issued + dt.timedelta(seconds=30),
                ),
            )
    trail = runtime.context.trail
    batch = 5_000
    for start in range(0, EVENTS, batch):
        entries = [
            AuditEntry(
                at=now - dt.timedelta(milliseconds=(EVENTS - i) * 30),
                kind=KINDS[i % len(KINDS)],
                outcome=Outcome.DENY if i % 11 == 0 else Outcome.OK,
                actor=agent.id,
                subject=task_ids[i % TASKS],
                data={"task_id": task_ids[i % TASKS], "n": i},
            )
            for i in range(start, start + batch)
        ]
        asyncio.run(trail.append(*entries))
    return task_ids[TASKS // 2]


async def measure(runtime: Any, pages: dict[str, str]) -> dict[str, dict[str, float]]:  # noqa: ANN401
    """Sign in, then time each page ITERATIONS times (after one warm-up)."""
    app = create_app(runtime, background_jobs=False)
    transport = httpx.ASGITransport(app=app)
    found: dict[str, dict[str, float]] = {}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1:8400"
    ) as client:
        link = await runtime.broker.console.make_link(
            Caller.of("tok_bench", ApiRole.ADMIN), None
        )
        signed = await client.post("/console/login/link", data={"token": link.token})
        assert signed.status_code == 303, signed.text
        for name, path in pages.items():
            warm = await client.get(path)
            assert warm.status_code == 200, (path, warm.text[-300:])
            times: list[float] = []
            for _ in range(ITERATIONS):
                started = time.perf_counter()
                answer = await client.get(path)
                times.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200
            times.sort()
            found[name] = {
                "p50_ms": round(statistics.median(times), 2),
                "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
                "bytes": len(warm.content),
            }
    return found


def main() -> None:
    """Fill a store, time the pages, print the table, write the results."""
    root = Path(tempfile.mkdtemp(prefix="gatepass-console-bench-"))
    try:
        runtime = build_runtime(settings(root / "state"))
        now = runtime.context.clock.now()
        started = time.perf_counter()
        middle_task = fill(runtime, now)
        filled_s = time.perf_counter() - started
        records, _, _ = asyncio.run(
            runtime.broker.console_views.audit(
                _root_operator(runtime),
                AuditFilter(),
                before=None,
                until=None,
                limit=1,
            )
        )
        head = records[0]["seq"]
        pages = {
            "tasks list": "/console/tasks",
            "tasks list, page 20": _deep_tasks(runtime),
            "audit explorer": "/console/audit",
            "audit explorer, deep page": f"/console/audit?before={head // 2}",
            "audit explorer, one task": f"/console/audit?task={middle_task}",
            "audit explorer, kind filter": "/console/audit?kind=lease&outcome=deny",
            "leases list": "/console/leases?state=active",
            "overview": "/console/",
            "task page": f"/console/tasks/{middle_task}",
        }
        found = asyncio.run(measure(runtime, pages))
        runtime.database.dispose()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    aimed = {
        "tasks list",
        "tasks list, page 20",
        "audit explorer",
        "audit explorer, deep page",
    }
    print(
        f"console pages, SQLite, {TASKS:,} tasks, {LEASES:,} leases, "
        f"{EVENTS:,} audit records (filled in {filled_s:.1f} s), "
        f"{ITERATIONS} requests each"
    )
    print(f"{'page':32} {'p50 ms':>8} {'p95 ms':>8}  {'aim':>12}  verdict")
    verdicts: dict[str, str] = {}
    for name, figures in found.items():
        aim = f"p50 <= {AIM_MS:.0f}" if name in aimed else "-"
        verdict = ""
        if name in aimed:
            verdict = "PASS" if figures["p50_ms"] <= AIM_MS else "MISS"
            verdicts[name] = verdict
        print(
            f"{name:32} {figures['p50_ms']:8.1f} {figures['p95_ms']:8.1f}  "
            f"{aim:>12}  {verdict}"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    report = {
        "bench": "console",
        "store": "sqlite",
        "rows": {"tasks": TASKS, "leases": LEASES, "audit_events": EVENTS},
        "iterations": ITERATIONS,
        "aim": {"p50_ms": AIM_MS, "pages": sorted(aimed)},
        "results": found,
        "verdicts": verdicts,
        "machine": machine(),
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def _root_operator(runtime: Any) -> Operator:  # noqa: ANN401
    return Operator(
        id=OperatorId("opr_bench"),
        name="bench",
        roles=frozenset({OperatorRole.ADMIN}),
        tenants=frozenset({"*"}),
        created_at=runtime.context.clock.now(),
    )


def _deep_tasks(runtime: Any) -> str:  # noqa: ANN401
    """The tasks list's 20th page, reached by its keyset cursor."""
    views = runtime.broker.console_views
    wanted = TaskFilter(limit=50 * 19)
    found = asyncio.run(views.tasks(_root_operator(runtime), wanted))
    last = found[-1]
    stamp = last.created_at.astimezone(dt.UTC).isoformat()
    cursor = re.sub(r"\+", "%2B", f"{stamp}~{last.id}")
    return f"/console/tasks?before={cursor}"


if __name__ == "__main__":
    main()
