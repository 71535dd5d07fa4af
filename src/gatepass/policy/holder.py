"""
The live policy set and its hot reload.

:class:`PolicyHolder` keeps the set the broker decides with. ``reload()`` swaps in
a freshly loaded set only when it loads cleanly; a broken set on disk is refused,
the old one keeps deciding, and the error is recorded for the operator. The swap
is one reference assignment under a lock, so readers never see a half-built set.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from pathlib import Path

from gatepass.clock import Clock
from gatepass.errors import ConfigurationError
from gatepass.policy.cedar import CedarPolicySet
from gatepass.policy.sources import SCHEMA_FILE

__all__ = ["PolicyHolder", "ReloadResult"]

_Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReloadResult:
    """
    The outcome of :meth:`PolicyHolder.reload`.

    Attributes:
        changed: True when a new set with a different digest is now live.
        error: why the new set was refused, or None.
        digest: the digest of the live set after the reload.
    """

    changed: bool
    error: str | None
    digest: str


class PolicyHolder:
    """
    Holds the live :class:`CedarPolicySet` and reloads it from its directory.

    Args:
        directory: the policy directory.
        clock: the source of ``loaded_at``.

    Raises:
        ConfigurationError: the directory does not load at construction.
    """

    def __init__(self, directory: Path, *, clock: Clock) -> None:
        """Load the directory once; a broken directory stops startup."""
        self._directory = directory
        self._clock = clock
        self._lock = threading.Lock()
        self._fingerprint = fingerprint(directory)
        self._current = CedarPolicySet.from_directory(directory)
        self._loaded_at = clock.now()
        self._last_error: str | None = None

    @property
    def directory(self) -> Path:
        """The policy directory this holder reads."""
        return self._directory

    @property
    def current(self) -> CedarPolicySet:
        """The live policy set."""
        return self._current

    @property
    def loaded_at(self) -> dt.datetime:
        """When the live set was loaded."""
        return self._loaded_at

    @property
    def last_error(self) -> str | None:
        """Why the last reload was refused; None after a successful load."""
        return self._last_error

    def changed_on_disk(self) -> bool:
        """
        Tell whether the files differ from those last loaded or attempted.

        Compares names, modification times and sizes only; cheap enough to poll.

        Returns:
            True when a reload would read something new.
        """
        return fingerprint(self._directory) != self._fingerprint

    def reload(self) -> ReloadResult:
        """
        Load the directory again and swap the new set in if it is sound.

        Returns:
            Whether the live set changed, the error if the new set was refused, and
            the live digest. A broken set never raises: the old set stays live.
        """
        with self._lock:
            # Fingerprint before reading: a file written during the load then
            # shows up as a change on the next poll.
            self._fingerprint = fingerprint(self._directory)
            try:
                fresh = CedarPolicySet.from_directory(self._directory)
            except ConfigurationError as exc:
                self._last_error = exc.detail
                return ReloadResult(
                    changed=False, error=exc.detail, digest=self._current.digest
                )
            self._last_error = None
            changed = fresh.digest != self._current.digest
            if changed:
                self._current = fresh
                self._loaded_at = self._clock.now()
            return ReloadResult(changed=changed, error=None, digest=fresh.digest)


def fingerprint(directory: Path) -> _Fingerprint:
    """
    Return names, mtimes and sizes of the files a policy directory is built from.

    Args:
        directory: the policy directory.

    Returns:
        A comparable fingerprint; files that cannot be read are left out.
    """
    entries = []
    for path in sorted([*directory.glob("*.cedar"), directory / SCHEMA_FILE]):
        try:
            stat = path.stat()
        except OSError:
            continue
        entries.append((path.name, stat.st_mtime_ns, stat.st_size))
    return tuple(entries)
