"""
The PostgreSQL engine's admin connections, and the errors they may show.

Each operation opens one admin connection (at most ``admin_connections`` at once)
and closes it. Driver errors are translated into gatepass errors that name the
target and the failing step, never the admin connection string or a password: the
driver's own messages can quote both, so they are not rendered, except for the
server's primary message on statements that carry no secret, with every known
secret replaced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, TypeVar

import psycopg

from gatepass.engines.postgres.settings import PostgresConfig
from gatepass.engines.postgres.sql import Connection
from gatepass.errors import EngineError, EngineUnavailableError

__all__ = ["AdminConnections", "Progress"]

T = TypeVar("T")

# Connection-phase failures whose text says the server answered and refused.
_REFUSALS: Final = (
    "authentication failed",
    "does not exist",
    "permission denied",
    "no pg_hba.conf entry",
)


@dataclass(slots=True)
class Progress:
    """
    The step an operation is in, for error messages that never quote a secret.

    Attributes:
        step: what is being done (``issue gp_…: grant``).
        verbatim: whether the server's primary message may be shown now; off
            while a statement carries a password verifier.
        secrets: values to replace in any message shown.
    """

    step: str
    verbatim: bool = True
    secrets: list[str] = field(default_factory=list)


class AdminConnections:
    """
    Run work on fresh admin connections of one mount, translating driver errors.

    Args:
        config: the mount.
    """

    def __init__(self, config: PostgresConfig) -> None:
        """Open nothing yet."""
        self._config = config
        self._semaphore: asyncio.Semaphore | None = None
        self._semaphore_loop: asyncio.AbstractEventLoop | None = None

    def error(self, detail: str) -> EngineError:
        """Return an engine error naming the mount."""
        return EngineError(f"postgres target {self._config.target}: {detail}")

    def reset(self) -> None:
        """Forget the semaphore (it belongs to the event loop that made it)."""
        self._semaphore = None
        self._semaphore_loop = None

    def _slots(self) -> asyncio.Semaphore:
        # A semaphore belongs to one event loop; tests run several in turn.
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._semaphore_loop is not loop:
            self._semaphore = asyncio.Semaphore(self._config.admin_connections)
            self._semaphore_loop = loop
        return self._semaphore

    async def run(
        self, progress: Progress, work: Callable[[Connection], Awaitable[T]]
    ) -> T:
        """
        Run ``work`` on a fresh admin connection.

        The replacement error is raised outside the ``except`` block so that the
        driver's exception, whose text may quote a password or the connection
        string, is neither its cause nor its context.

        Raises:
            EngineUnavailableError: the server cannot be reached or timed out.
            EngineError: the server refused.
        """
        failure: EngineError
        connected = False
        async with self._slots():
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._config.admin_conninfo.reveal(),
                    autocommit=True,
                    prepare_threshold=None,
                )
                connected = True
                async with conn:
                    return await work(conn)
            except psycopg.Error as exc:
                failure = self._translate(exc, progress, connected=connected)
        raise failure

    def _translate(
        self, exc: psycopg.Error, progress: Progress, *, connected: bool
    ) -> EngineError:
        target = self._config.target
        if not connected:
            text = str(exc)
            if "FATAL" in text and any(words in text for words in _REFUSALS):
                return EngineError(
                    f"postgres target {target}: the server refused the admin login"
                )
            return EngineUnavailableError(
                f"postgres target {target}: cannot connect to the server"
            )
        sqlstate = exc.sqlstate or ""
        # Connection loss, resource shortage, shutdown, timeouts: worth retrying.
        if sqlstate == "" or sqlstate.startswith(("08", "53", "57", "55P03")):
            return EngineUnavailableError(
                f"postgres target {target}: {progress.step}: server unavailable "
                f"or timed out ({sqlstate or 'connection lost'})"
            )
        detail = sqlstate
        if progress.verbatim and exc.diag.message_primary:
            detail = f"{exc.diag.message_primary[:200]} ({sqlstate})"
        hidden = [*progress.secrets, self._config.admin_conninfo.reveal()]
        if self._config.admin_password is not None:
            hidden.append(self._config.admin_password.reveal())
        for value in hidden:
            if value:
                detail = detail.replace(value, "**********")
        return EngineError(f"postgres target {target}: {progress.step}: {detail}")
