"""
The broker's background work.

Sweep expired tasks and leases, checkpoint the audit chain, hot-reload policies,
pick up keys rotated by another replica, deliver approver notifications, make and push
SSF events (``broker/ssf_delivery.py``).

Each job runs on its own interval and logs, never raises: one failing job (a
database blip) must not stop the others, and each retries on its next tick.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import anyio

from gatepass.broker.facade import Broker
from gatepass.errors import GatepassError
from gatepass.observability import get_logger

__all__ = ["run_jobs"]

_log = get_logger("gatepass.jobs")


async def _every(
    seconds: float, name: str, job: Callable[[], Awaitable[object]]
) -> None:
    while True:
        # anyio.sleep is the scheduler's wait between ticks, not a wait for state.
        await anyio.sleep(seconds)
        try:
            await job()
        except GatepassError as error:
            _log.warning("job failed", job=name, error=error.code, detail=error.detail)
        except Exception as error:  # noqa: BLE001 - a job must never kill the loop
            _log.error("job crashed", job=name, error=type(error).__name__)


async def _reload_if_changed(broker: Broker) -> None:
    try:
        await broker.policy.reload_if_changed()
    except GatepassError as error:
        _log.error("policy reload refused", detail=error.detail)


async def run_jobs(broker: Broker) -> None:
    """
    Run every background job until cancelled.

    Args:
        broker: the broker to maintain.
    """
    settings = broker.settings
    async with anyio.create_task_group() as group:
        group.start_soon(_every, 2.0, "sweep", broker.sweeper.sweep)
        # Other replicas' and workers' revocations reach this process's streams.
        group.start_soon(broker.feed.follow_other_processes)
        group.start_soon(
            _every,
            float(settings.audit.checkpoint_interval_seconds),
            "checkpoint",
            broker.audit.checkpoint,
        )
        group.start_soon(_every, 30.0, "keys", broker.keys.refresh)
        if settings.console.enabled:
            group.start_soon(
                _every, 300.0, "console-sessions", broker.console.forget_expired
            )
        if settings.identity.issuers:
            group.start_soon(
                _every, 10.0, "identity-keys", broker.health.refresh_identity_keys
            )
        if settings.targets and any(t.kind != "http" for t in settings.targets):
            group.start_soon(_every, 2.0, "revocations", broker.revocations.run)
            group.start_soon(
                _every,
                float(settings.engines.reap_interval_seconds),
                "reap",
                broker.revocations.reap,
            )
        # Context signals another replica set reach this one's decisions within
        # a second (this replica's own are on its board at once).
        group.start_soon(_every, 1.0, "signals", broker.context_signals.refresh)
        if settings.signals.transmitters:
            group.start_soon(
                _every, 30.0, "ssf-keys", broker.context_signals.refresh_keys
            )
        if broker.notifier.enabled:
            group.start_soon(_every, 1.0, "notifications", broker.notifier.deliver_due)
        if settings.ssf.enabled:
            # Its own loop: it wakes on this process's revocations, not on a tick.
            group.start_soon(broker.ssf_delivery.run)
        interval = settings.policy.reload_interval_seconds
        if interval > 0:
            group.start_soon(
                _every,
                float(interval) if interval else math.inf,
                "policy",
                lambda: _reload_if_changed(broker),
            )
