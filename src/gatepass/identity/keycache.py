"""
One issuer's keys: cached, refreshed in the background, refetched on an unknown kid.

- The set is refreshed every ``refresh_interval`` (or the SPIFFE bundle's refresh
  hint, if sooner) by :meth:`IssuerKeys.refresh_if_due`, which the broker's job
  loop calls; verification never waits for a scheduled refresh.
- A token whose ``kid`` is not in the set may trigger one refetch, at most once per
  ``min_refetch_interval`` per issuer, so forged kids cannot make the broker hammer
  an issuer (or be used to probe it).
- A failed refresh keeps the last good set for at most ``max_stale`` after its last
  success, and says so in :meth:`IssuerKeys.health`; past that the issuer's tokens
  are refused until a refresh succeeds. Keys are only ever replaced by a complete,
  valid document: a refresh never merges, so a key the issuer removed is gone.

Time comes from the injected clock; nothing here sleeps.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio

from gatepass.clock import Clock
from gatepass.errors import FetchError, InvalidGrantError
from gatepass.identity.keysets import KeySet, VerificationKey
from gatepass.observability import get_logger

__all__ = ["IssuerHealth", "IssuerKeys", "KeyState", "read_key_file"]

_log = get_logger("gatepass.identity")

KeyState = Literal["pending", "ok", "stale", "unavailable"]


async def read_key_file(path: Path, max_bytes: int) -> bytes:
    """
    Read a JWK Set or bundle file, refusing one larger than the fetch cap.

    Args:
        path: the configured file.
        max_bytes: the size cap.

    Returns:
        The file's bytes.

    Raises:
        FetchError: the file cannot be read or is too large.
    """
    try:
        async with await anyio.open_file(path, "rb") as handle:
            data = await handle.read(max_bytes + 1)
    except OSError:
        raise FetchError("key file cannot be read") from None
    if len(data) > max_bytes:
        raise FetchError(f"document is larger than {max_bytes} bytes")
    return data


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuerHealth:
    """
    The state of one issuer's keys, for ``/readyz`` and metrics.

    Attributes:
        issuer: the issuer's configured name.
        state: ``pending`` (never loaded), ``ok`` (the last refresh succeeded),
            ``stale`` (it failed; the last good set is still used) or
            ``unavailable`` (no usable set: tokens of this issuer are refused).
        key_count: keys in the set in use (0 when unavailable).
        last_success_at: when a set was last loaded.
        last_attempt_at: when a load was last tried.
        last_error: why the last attempt failed, if it did (never a secret).
        usable_until: when the set in use stops being used if no refresh succeeds.
        sequence: the SPIFFE bundle sequence number of the set in use, if any.
    """

    issuer: str
    state: KeyState
    key_count: int
    last_success_at: dt.datetime | None
    last_attempt_at: dt.datetime | None
    last_error: str | None
    usable_until: dt.datetime | None
    sequence: int | None

    def to_json(self) -> dict[str, Any]:
        """Return the health as JSON-ready values (times in ISO 8601)."""

        def moment(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "issuer": self.issuer,
            "state": self.state,
            "key_count": self.key_count,
            "last_success_at": moment(self.last_success_at),
            "last_attempt_at": moment(self.last_attempt_at),
            "last_error": self.last_error,
            "usable_until": moment(self.usable_until),
            "sequence": self.sequence,
        }


class IssuerKeys:
    """
    The cached keys of one issuer.

    Args:
        issuer: the issuer's configured name (for messages and health).
        load: reads the document (a fetch of the configured URL, or a file read).
        parse: turns the document into a key set; raises ValueError if unusable.
        clock: the time source.
        refresh_interval: how often the set is reloaded.
        min_refetch_interval: the shortest time between two loads triggered by
            unknown kids (and between retries after a failure).
        max_stale: how long after its last success a set is still used.
    """

    def __init__(
        self,
        *,
        issuer: str,
        load: Callable[[], Awaitable[bytes]],
        parse: Callable[[bytes], KeySet],
        clock: Clock,
        refresh_interval: dt.timedelta = dt.timedelta(minutes=5),
        min_refetch_interval: dt.timedelta = dt.timedelta(minutes=1),
        max_stale: dt.timedelta = dt.timedelta(hours=1),
    ) -> None:
        """Start empty; nothing is loaded until asked."""
        self.issuer = issuer
        self._load = load
        self._parse = parse
        self._clock = clock
        self._refresh_interval = refresh_interval
        self._min_refetch = min_refetch_interval
        self._max_stale = max_stale
        self._set: KeySet | None = None
        self._success_at: dt.datetime | None = None
        self._attempt_at: dt.datetime | None = None
        self._error: str | None = None
        self._next_at: dt.datetime | None = None
        self._lock = anyio.Lock()
        self.loads = 0

    def _usable(self, now: dt.datetime) -> Mapping[str, VerificationKey] | None:
        if self._set is None or self._success_at is None:
            return None
        if now >= self._success_at + self._max_stale:
            return None
        return self._set.keys

    async def key_for(self, kid: str) -> VerificationKey:
        """
        Return the key with this kid, refetching once if it is unknown.

        Args:
            kid: the token's ``kid`` header.

        Returns:
            The key and its pinned algorithm.

        Raises:
            InvalidGrantError: the issuer has no usable key set, or the kid is not
                in it (after the one refetch allowed per interval).
        """
        keys = self._usable(self._clock.now())
        if keys is not None and kid in keys:
            return keys[kid]
        async with self._lock:
            now = self._clock.now()
            keys = self._usable(now)
            if (keys is None or kid not in keys) and self._may_refetch(now):
                await self._refresh(now, reason="unknown kid")
                keys = self._usable(self._clock.now())
        if keys is None:
            raise InvalidGrantError(f"keys of issuer {self.issuer} are unavailable")
        found = keys.get(kid)
        if found is None:
            raise InvalidGrantError(
                f"token key is not in the key set of issuer {self.issuer}"
            )
        return found

    def _may_refetch(self, now: dt.datetime) -> bool:
        attempted = self._attempt_at
        return attempted is None or now >= attempted + self._min_refetch

    def refresh_due(self) -> bool:
        """Tell whether a scheduled refresh is due now."""
        return self._next_at is None or self._clock.now() >= self._next_at

    async def refresh_if_due(self) -> None:
        """Reload the set if its refresh time has come; never raises."""
        if not self.refresh_due():
            return
        async with self._lock:
            if self.refresh_due():
                await self._refresh(self._clock.now(), reason="scheduled")

    async def _refresh(self, now: dt.datetime, *, reason: str) -> None:
        self._attempt_at = now
        self.loads += 1
        try:
            key_set = self._parse(await self._load())
        except FetchError as error:
            self._failed(now, error.detail, reason)
            return
        except ValueError as error:
            self._failed(now, str(error), reason)
            return
        self._set = key_set
        self._success_at = now
        self._error = None
        interval = self._refresh_interval
        hint = key_set.refresh_hint
        if hint is not None:
            # SPIFFE bundle §4.1.2: the hint is advice; it may shorten the
            # interval, never below the refetch floor.
            interval = max(self._min_refetch, min(interval, hint))
        self._next_at = now + interval
        _log.info(
            "issuer keys loaded",
            issuer=self.issuer,
            reason=reason,
            keys=len(key_set.keys),
            skipped=key_set.skipped,
        )

    def _failed(self, now: dt.datetime, message: str, reason: str) -> None:
        self._error = message
        self._next_at = now + self._min_refetch
        _log.warning(
            "issuer keys not refreshed",
            issuer=self.issuer,
            reason=reason,
            error=message,
            serving_stale=self._usable(now) is not None,
        )

    def health(self) -> IssuerHealth:
        """Return the current state of this issuer's keys."""
        now = self._clock.now()
        keys = self._usable(now)
        state: KeyState
        if keys is None:
            state = "pending" if self._attempt_at is None else "unavailable"
        else:
            state = "stale" if self._error is not None else "ok"
        success = self._success_at
        in_use = keys is not None and success is not None
        return IssuerHealth(
            issuer=self.issuer,
            state=state,
            key_count=len(keys) if keys is not None else 0,
            last_success_at=success,
            last_attempt_at=self._attempt_at,
            last_error=self._error,
            usable_until=success + self._max_stale if in_use and success else None,
            sequence=self._set.sequence if in_use and self._set else None,
        )
