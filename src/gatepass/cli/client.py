"""
The admin API client the commands share, and where its address and token come from.

The broker's address is the first of: ``--addr``; the issuer of ``--config FILE``
(the broker's own configuration); ``GATEPASS_ADDR``; the issuer of
``GATEPASS_CONFIG``; ``http://127.0.0.1:8400``. The admin token is
``GATEPASS_TOKEN``, else the ``admin.token`` file the broker wrote in its state
directory: that of ``--config``, else ``GATEPASS_STATE_DIR``, else that of
``GATEPASS_CONFIG``, else ``.gatepass``. A flag beats the environment, and an
address beats a configuration file at the same level. See docs/cli.md.

Tests put a :class:`Connector` in the context object
(``CliRunner.invoke(app, args, obj=Connector(...))``) to hand the commands an
in-process ``httpx.Client`` such as ``starlette.testclient.TestClient``; the root
command group installs it with :func:`use_connector`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from gatepass.clock import Clock, SystemClock
from gatepass.config import Settings, load_settings
from gatepass.errors import AuthenticationError, GatepassError, error_for_code

__all__ = [
    "DEFAULT_ADDR",
    "AdminClient",
    "BrokerUnreachableError",
    "Connector",
    "Location",
    "admin_client",
    "current_connector",
    "locate",
    "resource_path",
    "token_file",
    "use_connector",
]

DEFAULT_ADDR = "http://127.0.0.1:8400"
_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class BrokerUnreachableError(Exception):
    """
    The broker did not answer at all (connection refused, timeout, DNS).

    It stands outside the :class:`~gatepass.errors.GatepassError` tree because no
    broker ever sends it; the CLI alone raises it, with exit code 69 (EX_UNAVAILABLE).

    Args:
        address: the broker address that could not be reached.
    """

    exit_code: ClassVar[int] = 69

    def __init__(self, address: str, source: str = "") -> None:
        """Word the message for the operator: where the address came from, and how."""
        where = f" (from {source})" if source else ""
        self.detail = (
            f"cannot reach the broker at {address}{where}: start it with `make run` "
            "or `gatepass serve --config FILE`, or point the CLI at it with --addr "
            "URL, GATEPASS_ADDR or --config FILE"
        )
        super().__init__(self.detail)


def _open_http(address: str) -> httpx.Client:
    return httpx.Client(base_url=address, timeout=_TIMEOUT)


def _wait(seconds: float) -> None:
    # An Event nobody sets is an interruptible wait: Ctrl-C ends it at once.
    threading.Event().wait(seconds)


@dataclass(frozen=True, slots=True, kw_only=True)
class Connector:
    """
    How commands reach the broker and wait between polls; tests replace both.

    Args:
        open_http: builds the HTTP client for an address. A client it returns is
            used as is; the commands close it only when ``owns_http`` is true.
        owns_http: whether commands close the clients ``open_http`` returns.
        wait: pauses between polls of ``audit tail --follow``.
        clock: the time tables show relative times against (``5m ago``).
    """

    open_http: Callable[[str], httpx.Client] = _open_http
    owns_http: bool = True
    wait: Callable[[float], None] = field(default=_wait)
    clock: Clock = field(default_factory=SystemClock)


def resource_path(collection: str, resource_id: str, *action: str) -> str:
    """
    Return the path of one resource, its id quoted so it stays one path segment.

    Args:
        collection: the collection path, such as ``/v1/agents``.
        resource_id: the id as the operator typed it.
        action: an optional trailing segment, such as ``disable``.

    Returns:
        For example ``/v1/agents/agt_123/disable``.
    """
    return "/".join([collection, quote(resource_id, safe=""), *action])


@dataclass(frozen=True, slots=True, kw_only=True)
class Location:
    """
    Where the broker is, and where its state (the admin token file) lives.

    Attributes:
        address: the broker's base URL.
        source: where the address came from, for messages (``--addr``,
            ``GATEPASS_ADDR``, ``--config FILE``...).
        state_dir: the broker's state directory.
        settings: the broker's configuration, when a file was given.
    """

    address: str
    source: str
    state_dir: Path
    settings: Settings | None = None


def _environment(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


def locate(addr: str | None = None, config: Path | None = None) -> Location:
    """
    Find the broker from the command's flags and the environment.

    Args:
        addr: ``--addr``, if given.
        config: ``--config``, if given: the broker's configuration file.

    Returns:
        The address and state directory, with where the address came from.

    Raises:
        ConfigurationError: the configuration file is missing or invalid.
    """
    env_config = _environment("GATEPASS_CONFIG")
    flag_settings = load_settings(config) if config is not None else None
    env_settings = (
        load_settings(Path(env_config))
        if flag_settings is None and env_config is not None
        else None
    )

    def issuer(settings: Settings | None) -> str | None:
        return None if settings is None else settings.server.issuer

    candidates: list[tuple[str | None, str]] = [
        (addr, "--addr"),
        (issuer(flag_settings), f"--config {config}"),
        (_environment("GATEPASS_ADDR"), "GATEPASS_ADDR"),
        (issuer(env_settings), f"GATEPASS_CONFIG={env_config}"),
        (DEFAULT_ADDR, "the default"),
    ]
    address, source = next((value, why) for value, why in candidates if value)
    env_state = _environment("GATEPASS_STATE_DIR")
    if flag_settings is not None:
        state_dir = flag_settings.server.state_dir
    elif env_state is not None:
        state_dir = Path(env_state)
    elif env_settings is not None:
        state_dir = env_settings.server.state_dir
    else:
        state_dir = Path(".gatepass")
    return Location(
        address=address.rstrip("/"),
        source=source,
        state_dir=state_dir,
        settings=flag_settings or env_settings,
    )


def token_file(location: Location | None = None) -> Path:
    """
    Return where the broker writes its bootstrap admin token.

    Args:
        location: the located broker; the environment's when omitted.

    Returns:
        ``admin.token`` in the broker's state directory.
    """
    return (location or locate()).state_dir / "admin.token"


def _admin_token(location: Location) -> str:
    token = os.environ.get("GATEPASS_TOKEN", "").strip()
    if token:
        return token
    path = token_file(location)
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise AuthenticationError(
            f"no admin token: set GATEPASS_TOKEN, or pass --config FILE (the "
            f"broker's configuration) so the token file is found; looked for {path}"
        ) from exc
    if not token:
        raise AuthenticationError(f"no admin token: {path} is empty")
    return token


def _error_from(response: httpx.Response) -> GatepassError:
    """Rebuild the gatepass error a non-2xx answer carries."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return GatepassError(
            f"unexpected answer from the broker: http {response.status_code}"
        )
    description = body.get("error_description")
    detail = description if isinstance(description, str) else body["error"]
    try:
        return error_for_code(body["error"])(detail)
    except TypeError:
        # A class that needs more than a detail (the DPoP nonce error) cannot come
        # from the admin API; keep the message rather than fail on it.
        return GatepassError(detail)


class AdminClient:
    """
    Calls the admin API and turns its error answers back into gatepass errors.

    Args:
        http: the HTTP client; its ``base_url`` is the broker address.
        token: the admin token, sent as ``Authorization: Bearer``; never printed.
        address: the broker address, for messages.
        source: where the address came from, for messages.
    """

    def __init__(
        self, http: httpx.Client, *, token: str, address: str, source: str = ""
    ) -> None:
        """Keep the client and the credentials."""
        self._http = http
        self._headers = {"Authorization": f"Bearer {token}"}
        self.address = address
        self.source = source

    def __repr__(self) -> str:
        """Name the broker, never the token."""
        return f"AdminClient(address={self.address!r})"

    def get(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:  # noqa: ANN401
        """
        GET an admin resource.

        Args:
            path: the path under the broker, such as ``/v1/agents``.
            params: query parameters; ``None`` values are dropped by the caller.

        Returns:
            The decoded JSON answer.

        Raises:
            GatepassError: the broker refused; the subclass matches its ``error``.
            BrokerUnreachableError: the broker did not answer.
        """
        return self._send("GET", path, params=dict(params or {}))

    def post(self, path: str, body: Mapping[str, Any] | None = None) -> Any:  # noqa: ANN401
        """
        POST to an admin resource.

        Args:
            path: the path under the broker.
            body: the JSON body, if any.

        Returns:
            The decoded JSON answer.

        Raises:
            GatepassError: the broker refused; the subclass matches its ``error``.
            BrokerUnreachableError: the broker did not answer.
        """
        return self._send("POST", path, json=None if body is None else dict(body))

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        json: dict[str, Any] | None = None,
    ) -> Any:  # noqa: ANN401
        try:
            response = self._http.request(
                method, path, params=params, json=json, headers=self._headers
            )
        except httpx.TransportError as exc:
            raise BrokerUnreachableError(self.address, self.source) from exc
        if not response.is_success:
            raise _error_from(response)
        try:
            return response.json()
        except ValueError as exc:
            raise GatepassError("the broker's answer is not json") from exc


_CONNECTOR: ContextVar[Connector | None] = ContextVar("gatepass_cli_connector")


@contextlib.contextmanager
def use_connector(connector: Connector | None) -> Iterator[None]:
    """
    Make ``connector`` the one commands use while the block runs.

    Args:
        connector: the connector from the context object, or ``None`` for the
            default (the environment and a real HTTP client).

    Yields:
        Nothing; the previous connector is restored on exit.
    """
    token = _CONNECTOR.set(connector)
    try:
        yield
    finally:
        _CONNECTOR.reset(token)


def current_connector() -> Connector:
    """
    Return the connector of the running command.

    Returns:
        The connector set by :func:`use_connector`, or a default one.
    """
    found = _CONNECTOR.get(None)
    return found if found is not None else Connector()


@contextlib.contextmanager
def admin_client(
    addr: str | None = None, config: Path | None = None
) -> Iterator[AdminClient]:
    """
    Open an admin client for the running command.

    Args:
        addr: the command's ``--addr``, if given.
        config: the command's ``--config``, if given.

    Yields:
        A client for the located broker with the admin token.

    Raises:
        AuthenticationError: no admin token is configured.
        ConfigurationError: the configuration file is missing or invalid.
    """
    location = locate(addr, config)
    token = _admin_token(location)
    connector = current_connector()
    http = connector.open_http(location.address)
    try:
        yield AdminClient(
            http, token=token, address=location.address, source=location.source
        )
    finally:
        if connector.owns_http:
            http.close()
