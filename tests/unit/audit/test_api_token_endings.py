"""A revoked API token stays revoked across a database restore (issue 17)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatepass.broker import Caller, Permission, ServiceTokenRequest
from gatepass.errors import AuthenticationError
from gatepass.models import ApiRole
from gatepass.store import api_tokens

from .brokers import Brokers, seal_expected

ADMIN = Caller.of("tok_test", ApiRole.ADMIN)


class TestIssue17RevokedApiToken:
    """Revoking an API token is an irreversible fact in the anchor journal."""

    def test_issue17_restore_keeps_the_token_revoked_and_reconcile_deletes_it(
        self, brokers: Brokers, tmp_path: Path
    ) -> None:
        """A restored row seals the broker, is refused while sealed, and is revoked."""
        broker = brokers.start()
        uses = broker.runtime.broker
        issued = broker.run(
            uses.api_tokens.create,
            ADMIN,
            ServiceTokenRequest(role=ApiRole.INTROSPECT, description="orders-api"),
        )
        record = issued.record
        header = f"Bearer {issued.token.reveal()}"
        needs = Permission.INTROSPECT
        assert broker.run(uses.callers.authenticate, header, needs=needs).token_id == (
            record.id
        )
        snapshot = tmp_path / "snapshot.db"
        broker.snapshot(snapshot)
        broker.run(uses.api_tokens.revoke, ADMIN, record.id)
        brokers.restore(snapshot)

        broker = brokers.start()
        uses = broker.runtime.broker
        seal_expected(broker, "behind the anchor journal")
        with broker.runtime.database.reading() as conn:
            restored = api_tokens.get_api_token(conn, record.id)
        assert restored is not None
        assert restored.revoked_at is None
        with pytest.raises(AuthenticationError, match="unknown api token"):
            broker.run(uses.callers.authenticate, header, needs=needs)

        summary = broker.run(broker.runtime.anchoring.reconcile, "admin:test")
        assert summary["reapplied"]["api_tokens"] == 1
        assert not broker.runtime.context.seal.sealed
        with broker.runtime.database.reading() as conn:
            revoked = api_tokens.get_api_token(conn, record.id)
        assert revoked is not None
        assert revoked.revoked_at is not None
        with pytest.raises(AuthenticationError, match="unknown api token"):
            broker.run(uses.callers.authenticate, header, needs=needs)

    def test_issue17_a_revoked_row_put_back_is_found_at_start(
        self, brokers: Brokers
    ) -> None:
        """Re-inserting a revoked token's row by hand seals the next start."""
        broker = brokers.start()
        uses = broker.runtime.broker
        record = broker.run(
            uses.api_tokens.create,
            ADMIN,
            ServiceTokenRequest(role=ApiRole.PROXY, description="edge"),
        ).record
        broker.run(uses.api_tokens.revoke, ADMIN, record.id)
        brokers.stop()
        with broker.runtime.database.transaction() as conn:
            conn.exec_driver_sql(
                "UPDATE gp_api_tokens SET revoked_at = NULL WHERE id = ?",
                (record.id,),
            )
        broker.runtime.database.dispose()
        broker = brokers.start()
        seal_expected(broker, "1 api_tokens ended that the database shows live")
