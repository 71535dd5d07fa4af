"""
``Idempotency-Key`` on ``POST /v1/credentials`` against a real PostgreSQL.

Issue 7 item 10: a retry gets the same lease and no second role; another request
with the same key is a conflict.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from gatepass.errors import ConflictError, GatepassError
from gatepass.sdk import Credential
from gatepass.store import audit_log

from . import test_engine_credentials as engines
from .test_engine_credentials import RUN, Broker, Databases, gp_roles

# The engine tests' fixtures, reused here: a broker with real PostgreSQL targets.
databases = engines.databases
broker = engines.broker

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def _last_audit(broker: Broker) -> dict[str, Any]:
    with broker.runtime.database.reading() as conn:
        (record,) = audit_log.last_audit(conn, 1)
    return record.to_json()


class TestIdempotencyKey:
    """The same key and request give one lease; a different request is refused."""

    def test_issue7_same_key_same_request_gives_the_same_lease(
        self, broker: Broker, databases: Databases
    ) -> None:
        """A retry returns the first lease without its password; one role exists."""
        target = f"orders-staging-{RUN}"
        before = gp_roles(databases.staging)
        with (
            broker.client() as client,
            client.open_task(
                intent="retry",
                purpose="reporting",
                environment="staging",
                targets=[target],
            ) as task,
        ):
            first = task.postgres(target, "read", idempotency_key="retry-1")
            again = task.postgres(target, "read", idempotency_key="retry-1")
            assert again.lease_id == first.lease_id
            assert first.password is not None
            assert again.password is None
            assert again.fields["username"] == first.fields["username"]
            assert len(gp_roles(databases.staging) - before) == 1
            record = _last_audit(broker)
            assert record["kind"] == "credential.issue"
            assert record["data"]["idempotent_replay"] is True
            with pytest.raises(ConflictError, match="another request"):
                task.postgres(target, "write", idempotency_key="retry-1")
            other = task.postgres(target, "read", idempotency_key="retry-2")
            assert other.lease_id != first.lease_id
        assert gp_roles(databases.staging) - before == set()

    def test_issue7_concurrent_requests_with_one_key_make_one_role(
        self, broker: Broker, databases: Databases
    ) -> None:
        """Eight simultaneous requests with one key: one lease, one role."""
        target = f"orders-staging-{RUN}"
        before = gp_roles(databases.staging)
        with (
            broker.client() as client,
            client.open_task(
                intent="race",
                purpose="reporting",
                environment="staging",
                targets=[target],
            ) as task,
        ):

            def ask(_: int) -> Credential | GatepassError:
                try:
                    return task.postgres(target, "read", idempotency_key="race-1")
                except GatepassError as error:
                    return error

            with ThreadPoolExecutor(max_workers=8) as pool:
                answers = list(pool.map(ask, range(8)))
            leases = {a.lease_id for a in answers if isinstance(a, Credential)}
            refusals = [a for a in answers if not isinstance(a, Credential)]
            assert len(leases) == 1
            assert all(isinstance(error, ConflictError) for error in refusals)
            assert (
                sum(1 for a in answers if isinstance(a, Credential) and a.password) == 1
            )
            assert len(gp_roles(databases.staging) - before) == 1

    def test_issue7_malformed_key_is_refused(self, broker: Broker) -> None:
        """A key with spaces or over 255 characters is a 400, audited."""
        for key in ("has space", "x" * 256, '"unbalanced'):
            response = httpx.post(
                f"{broker.url}/v1/credentials",
                json={"target": "anything", "actions": ["read"]},
                headers={"Idempotency-Key": key},
            )
            assert response.status_code == 400
            assert response.json()["error"] == "invalid_request"
            assert "idempotency-key" in response.json()["error_description"]
            record = _last_audit(broker)
            assert record["outcome"] == "deny"
