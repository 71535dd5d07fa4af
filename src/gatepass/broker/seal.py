"""
The seal: a broker that cannot trust its own database issues nothing.

A broker seals itself when its database is behind the anchor journal kept outside
it (restored from an old snapshot, records deleted or rewritten) or when it cannot
write that journal. Sealed, every issuance (open a task, an access token, an engine
credential, a renewal) answers ``503 sealed`` naming the recovery; ``/readyz``
answers 503 with the reason; revocation, introspection, reads and the admin API keep
working, and introspection answers ``active: false`` for everything the journal says
ended, although the restored rows say otherwise. Only ``gatepass audit reconcile``
(or a restart that finds the database and journal in agreement) unseals.

Separately, a record whose MAC does not verify raises the *integrity alarm*: the
broker refuses to sign checkpoints and ``/readyz`` answers 503 ``audit_integrity``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge

from gatepass.errors import SealedError
from gatepass.observability import Metrics, get_logger

__all__ = ["RECOVERY", "Seal"]

RECOVERY: Final = "run `gatepass audit reconcile` (see docs/audit.md)"

_log = get_logger("gatepass.seal")


class Seal:
    """
    Whether the broker may issue, and why not.

    Args:
        metrics: where ``gatepass_sealed`` and
            ``gatepass_audit_integrity_failures_total`` are registered.
    """

    def __init__(self, metrics: Metrics | None = None) -> None:
        """Start unsealed, with no alarm."""
        self._reason: str | None = None
        self._ended: frozenset[str] = frozenset()
        self._alarm: str | None = None
        # A private registry without metrics, never the process-wide default one.
        registry = CollectorRegistry() if metrics is None else metrics.registry
        self._sealed_gauge = Gauge(
            "gatepass_sealed",
            "1 while the broker is sealed and issues nothing",
            registry=registry,
        )
        self._integrity_failures = Counter(
            "gatepass_audit_integrity_failures",
            "Audit records found whose hash chain or MAC does not verify",
            registry=registry,
        )

    @property
    def sealed(self) -> bool:
        """Tell whether issuance is refused."""
        return self._reason is not None

    @property
    def reason(self) -> str | None:
        """Why the broker is sealed, or None."""
        return self._reason

    @property
    def alarm(self) -> str | None:
        """Why the audit log failed verification, or None."""
        return self._alarm

    def close(
        self, reason: str, *, ended: Mapping[str, Iterable[str]] | None = None
    ) -> None:
        """
        Seal: refuse every issuance until :meth:`open`.

        Args:
            reason: one lower-case line naming what was found (never a secret).
            ended: ids the journal says ended while the database shows them live;
                introspection answers ``active: false`` for them.
        """
        if self._reason is None:
            _log.error("broker sealed", reason=reason)
        self._reason = reason
        if ended is not None:
            self._ended = frozenset(i for ids in ended.values() for i in ids)
        self._sealed_gauge.set(1)

    def journal_failed(self, reason: str) -> None:
        """Seal because the anchor journal cannot be written (the journal's hook)."""
        self.close(f"the audit anchor journal failed: {reason}")

    def open(self) -> None:
        """Unseal after a reconcile; the journal and the database agree again."""
        if self._reason is not None:
            _log.warning("broker unsealed", was=self._reason)
        self._reason = None
        self._ended = frozenset()
        self._sealed_gauge.set(0)

    def raise_alarm(self, detail: str) -> None:
        """Record that a record failed verification (error log and metric)."""
        _log.error("audit log failed verification", detail=detail)
        self._integrity_failures.inc()
        self._alarm = detail

    def clear_alarm(self) -> None:
        """Clear the alarm once the log verifies again."""
        self._alarm = None

    def require_unsealed(self) -> None:
        """
        Refuse to issue while sealed.

        Raises:
            SealedError: the broker is sealed; the detail names the reason and the
                recovery.
        """
        if self._reason is not None:
            raise SealedError(f"broker is sealed: {self._reason}; {RECOVERY}")

    def ended(self, *ids: str) -> bool:
        """Tell whether the journal says any of ``ids`` ended (while sealed)."""
        return any(i in self._ended for i in ids)

    def unready(self) -> tuple[str, str] | None:
        """Return ``(error code, reason)`` while not ready to serve, else None."""
        if self._reason is not None:
            return "sealed", f"{self._reason}; {RECOVERY}"
        if self._alarm is not None:
            return "audit_integrity", self._alarm
        return None
