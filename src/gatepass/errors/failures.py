"""
Failures of a part gatepass depends on.

An upstream, an engine, a key fetch, the audit log, the store, the configuration.
"""

from __future__ import annotations

from gatepass.errors.base import GatepassError

__all__ = [
    "AuditIntegrityError",
    "ConfigurationError",
    "EngineError",
    "EngineUnavailableError",
    "FetchError",
    "SealedError",
    "StoreError",
    "UpstreamError",
    "UpstreamTimeoutError",
]


class UpstreamError(GatepassError):
    """The proxy's upstream could not be reached or its answer cannot be relayed."""

    code = "bad_gateway"
    http_status = 502
    exit_code = 69


class UpstreamTimeoutError(UpstreamError):
    """The proxy's upstream did not answer in time."""

    code = "upstream_timeout"
    http_status = 504


class EngineError(GatepassError):
    """A target system refused or failed while minting or revoking a credential."""

    code = "engine_error"
    http_status = 502
    exit_code = 69


class EngineUnavailableError(EngineError):
    """A target system could not be reached (or timed out)."""

    code = "engine_unavailable"
    http_status = 503


class FetchError(GatepassError):
    """
    A document could not be fetched safely from a configured URL.

    Raised by the key fetcher (JWKS, SPIFFE bundles) for a refused address, scheme,
    redirect, size or timeout; the message names the rule, never the document.
    """

    code = "fetch_failed"
    http_status = 502
    exit_code = 69


class AuditIntegrityError(GatepassError):
    """The audit log or its checkpoints were edited, reordered, deleted or truncated."""

    code = "audit_integrity"
    http_status = 500
    exit_code = 65


class SealedError(GatepassError):
    """
    The broker is sealed and issues nothing until an operator reconciles it.

    A broker seals itself when its database is behind its external audit anchor
    journal (restored from an old snapshot, records deleted or rewritten) or when it
    cannot write that journal. Revocation, introspection, reads and the admin API keep
    working; the detail names the reason and the recovery command.
    """

    code = "sealed"
    http_status = 503
    exit_code = 69


class StoreError(GatepassError):
    """The database could not be reached or refused the write."""

    code = "store_unavailable"
    http_status = 503
    exit_code = 69


class ConfigurationError(GatepassError):
    """The configuration is invalid; the broker refuses to start."""

    code = "misconfigured"
    http_status = 500
    exit_code = 78
