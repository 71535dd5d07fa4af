"""
The database schema, in SQLAlchemy Core.

One schema serves SQLite (the embedded default) and PostgreSQL (many replicas). Times
are stored as UTC; tokens are never stored, only their ``jti`` and SHA-256 hashes.

Older schema versions are upgraded in place at start (``store/upgrades.py``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

__all__ = [
    "SCHEMA_VERSION",
    "UNKEYED_THROUGH",
    "UTCDateTime",
    "agents",
    "api_tokens",
    "approval_redemptions",
    "approval_votes",
    "approvals",
    "audit_checkpoints",
    "audit_events",
    "audit_head",
    "console_links",
    "console_sessions",
    "context_signals",
    "idempotency_keys",
    "leases",
    "metadata",
    "operators",
    "outbox",
    "reuse_events",
    "seen_values",
    "settings_kv",
    "signing_keys",
    "ssf_events",
    "ssf_receivers",
    "ssf_streams",
    "tasks",
]

SCHEMA_VERSION = 6
# The settings row naming the last record written before records had MACs.
UNKEYED_THROUGH = "audit_unkeyed_through"


class UTCDateTime(TypeDecorator[dt.datetime]):
    """
    An aware UTC datetime on every backend.

    SQLite has no time zone type and hands back naive values; this stores naive UTC
    there and re-attaches UTC on the way out, so comparisons and ordering agree with
    PostgreSQL's ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        """Convert an aware datetime to what the backend stores."""
        if value is None:
            return None
        if value.tzinfo is None:
            msg = "naive datetime given to the store"
            raise ValueError(msg)
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self,
        value: Any,  # noqa: ANN401 - whatever the driver returns
        dialect: Dialect,  # noqa: ARG002 - part of the TypeDecorator contract
    ) -> dt.datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        if not isinstance(value, dt.datetime):  # pragma: no cover - driver contract
            msg = "unexpected datetime value from the database"
            raise TypeError(msg)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


metadata = MetaData()

settings_kv = Table(
    "gp_settings",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)

agents = Table(
    "gp_agents",
    metadata,
    Column("id", String(40), primary_key=True),
    # Federated agents are named by their platform (a SPIFFE ID, a service account,
    # a repository and environment), which can be long and holds ':' and '/'.
    Column("name", String(255), nullable=False, unique=True),
    Column("tenant", String(64), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("public_jwk", JSON, nullable=False),
    Column("algorithm", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime),
    # The one issuer whose tokens prove a federated agent; None for an agent with
    # a registered key.
    Column("issuer", String(2048)),
    # Names of the operators responsible for the agent (a JSON list).
    Column("owners", JSON),
)

tasks = Table(
    "gp_tasks",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("agent_id", String(40), nullable=False, index=True),
    Column("tenant", String(64), nullable=False),
    Column("environment", String(64), nullable=False),
    Column("purpose", String(64), nullable=False),
    Column("intent", Text, nullable=False),
    Column("targets", JSON, nullable=False),
    Column("jkt", String(64), nullable=False),
    Column("token_jti", String(64), nullable=False, unique=True),
    Column("state", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime),
    Column("close_reason", String(200)),
    # The agent's labels as its identity proved them when the task opened (a
    # federated agent's come from its token); None: the agent record's labels.
    Column("agent_labels", JSON),
    # Delegation: the task this one was delegated from, the root of its tree, and
    # how deep it is (0 for a task an agent opened itself).
    Column("parent_id", String(40), index=True),
    Column("lineage_id", String(40), index=True),
    Column("depth", Integer, nullable=False, default=0),
    # The verified actor chain (RFC 8693 ``act``), outermost first.
    Column("actors", JSON),
    # RFC 8705: the thumbprint of the client certificate its tokens are bound to.
    Column("x5t", String(64)),
    # The actions a delegated task may be granted (a JSON list); NULL: any its
    # targets offer.
    Column("actions", JSON),
    # A delegated task's root task purpose (context.delegation.root_purpose).
    Column("root_purpose", String(64)),
    Index("ix_gp_tasks_state_expires", "state", "expires_at"),
    # The newest recorded time at start (store/clocks.py) reads max(created_at).
    Index("ix_gp_tasks_created_at", "created_at"),
)

leases = Table(
    "gp_leases",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("task_id", String(40), nullable=False, index=True),
    Column("agent_id", String(40), nullable=False),
    Column("target", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("actions", JSON, nullable=False),
    Column("handle", String(128), nullable=False, unique=True),
    Column("state", String(16), nullable=False),
    Column("issued_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Column("policy_ids", JSON, nullable=False),
    # Revocation that a target refused is retried with backoff (never given up).
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime),
    Column("last_error", String(200)),
    Index("ix_gp_leases_state_expires", "state", "expires_at"),
    Index("ix_gp_leases_target_state", "target", "state"),
    Index("ix_gp_leases_revoked_at", "revoked_at"),
    # max(issued_at) at start, and the console's issuances of the last hour.
    Index("ix_gp_leases_issued_at", "issued_at"),
)

audit_events = Table(
    "gp_audit_events",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("actor", String(80), nullable=False),
    Column("subject", String(80), nullable=False),
    Column("data", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # HMAC-SHA256 of ``hash`` under a key derived from the sealed audit key; NULL
    # only for records written before schema 3, until the broker MACs them.
    Column("mac", String(64)),
    # Time ranges (the console's last hour, audit filters by time) and max(at) at
    # start: without it each is a scan of the whole log.
    Index("ix_gp_audit_events_at", "at"),
)

# One row (id = 1) holding the chain head; updating it serialises appends across
# processes and replicas (row lock on PostgreSQL, the write lock on SQLite).
audit_head = Table(
    "gp_audit_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_checkpoints = Table(
    "gp_audit_checkpoints",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("hash", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("kid", String(64), nullable=False),
    Column("signature", String(200), nullable=False),
)

signing_keys = Table(
    "gp_signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("algorithm", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("sealed_private", LargeBinary, nullable=False),
    Column("public_jwk", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("activated_at", UTCDateTime),
    Column("retired_at", UTCDateTime),
)

api_tokens = Table(
    "gp_api_tokens",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("description", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # The operator the token belongs to (role "operator"); None for the bootstrap
    # and service tokens (admin, introspect, proxy).
    Column("operator_id", String(40), index=True),
    Column("revoked_at", UTCDateTime),
)

operators = Table(
    "gp_operators",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("roles", JSON, nullable=False),
    Column("groups", JSON, nullable=False),
    Column("tenants", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime),
)

approvals = Table(
    "gp_approvals",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("request", JSON, nullable=False),
    Column("agent_id", String(40), nullable=False, index=True),
    Column("task_id", String(40), nullable=False, index=True),
    Column("tenant", String(64), nullable=False),
    Column("environment", String(64), nullable=False),
    Column("target", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("actions", JSON, nullable=False),
    Column("groups", JSON, nullable=False),
    Column("quorum", Integer, nullable=False),
    Column("exclude_owners", Integer, nullable=False),
    Column("max_uses", Integer, nullable=False),
    Column("uses", Integer, nullable=False, default=0),
    Column("ttl_seconds", Integer),
    Column("policy_ids", JSON, nullable=False),
    Column("justification", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("approved_at", UTCDateTime),
    Column("redeem_by", UTCDateTime),
    Column("ended_at", UTCDateTime),
    Column("end_reason", String(200)),
    Index("ix_gp_approvals_state_expires", "state", "expires_at"),
    Index("ix_gp_approvals_task_hash", "task_id", "request_hash"),
)

approval_votes = Table(
    "gp_approval_votes",
    metadata,
    Column("approval_id", String(40), primary_key=True),
    # One vote per operator: a quorum counts distinct operators by construction.
    Column("operator_id", String(40), primary_key=True),
    Column("operator_name", String(64), nullable=False),
    Column("choice", String(16), nullable=False),
    Column("reason", String(500), nullable=False),
    # The approver groups (of the approval's) the voter held when voting: what the
    # vote counts towards.
    Column("groups", JSON, nullable=False),
    Column("at", UTCDateTime, nullable=False),
)

# One row per credential an approval was redeemed for (which lease spent which use).
approval_redemptions = Table(
    "gp_approval_redemptions",
    metadata,
    Column("lease_id", String(40), primary_key=True),
    Column("approval_id", String(40), nullable=False, index=True),
    Column("at", UTCDateTime, nullable=False),
)

# Notifications to deliver (approver webhooks), written in the transaction of the
# change they announce and delivered, with retries, by a background job.
outbox = Table(
    "gp_outbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("destination", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    Column("failed_at", UTCDateTime),
    Column("last_error", String(200)),
    Index("ix_gp_outbox_pending", "delivered_at", "failed_at", "next_attempt_at"),
)

# Single-use values (assertion and DPoP jti) shared by replicas.
seen_values = Table(
    "gp_seen_values",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
)

# Idempotency-Key of POST /v1/credentials: one row per (task, key), pointing at the
# lease the first request made, with the credential's non-secret fields (never the
# password) to answer a retry.
idempotency_keys = Table(
    "gp_idempotency_keys",
    metadata,
    Column("task_id", String(40), primary_key=True),
    Column("key_hash", String(64), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("lease_id", String(40), nullable=False),
    Column("response", JSON),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
)

# --- signals-in (issue 14) -----------------------------------------------------------
# Context signals in force: an agent's risk, a frozen environment, a tenant's
# incident. One row per (kind, scope); clearing a signal deletes its row.
context_signals = Table(
    "gp_context_signals",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("scope", String(255), primary_key=True),
    Column("value", String(16), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("source", String(255), nullable=False),
    Column("set_at", UTCDateTime, nullable=False),
    Column("until", UTCDateTime),
)

# credential.reuse events, counted per agent in the windows of [[reuse.rules]].
reuse_events = Table(
    "gp_reuse_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("agent_id", String(40), nullable=False),
    Column("task_id", String(40), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_gp_reuse_events_agent", "agent_id", "at"),
)
# --- end signals-in ------------------------------------------------------------------


# --- SSF transmitter (issue 14, signals out) ---------------------------------------
# The audiences (target names) each SSF receiver token may subscribe to.
ssf_receivers = Table(
    "gp_ssf_receivers",
    metadata,
    Column("token_id", String(40), primary_key=True),
    Column("audiences", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# One row per SSF stream (OpenID SSF 1.0 §8): the receiver's validated
# configuration (never its push authorization, which is sealed apart), its
# status, and the revocation time up to which its events were made.
ssf_streams = Table(
    "gp_ssf_streams",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("token_id", String(40), nullable=False, index=True),
    Column("config", JSON, nullable=False),
    Column("sealed_authorization", LargeBinary),
    Column("status", String(16), nullable=False),
    Column("reason", String(200)),
    Column("cursor", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("active_at", UTCDateTime, nullable=False),
)

# Signed SETs of each stream, pushed with retries (the outbox pattern) or held
# until a poll acknowledges them. (stream, event, subject) is unique, so two
# replicas making the same event store it once.
ssf_events = Table(
    "gp_ssf_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("stream_id", String(40), nullable=False),
    Column("jti", String(64), nullable=False, unique=True),
    Column("event", String(128), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("token", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    Column("failed_at", UTCDateTime),
    Column("last_error", String(200)),
    UniqueConstraint("stream_id", "event", "subject", name="uq_gp_ssf_events_subject"),
    Index("ix_gp_ssf_events_open", "stream_id", "delivered_at", "failed_at"),
    Index("ix_gp_ssf_events_created", "created_at"),
)


# --- console (issue 13): browser sessions and one-time login links. Only SHA-256
# hashes of the cookie values and link tokens are stored.
console_sessions = Table(
    "gp_console_sessions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("operator_id", String(40), nullable=False, index=True),
    Column("method", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
    Column("ended_at", UTCDateTime),
)

console_links = Table(
    "gp_console_links",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("operator_id", String(40), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
    Column("used_at", UTCDateTime),
)
