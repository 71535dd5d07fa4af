"""
Starting ``gatepass serve`` for people: the ports, the banner, "broker ready".

The listening sockets are bound before anything else starts, so a port that is
taken is one plain message naming the setting to change (``[server] port`` or
``[demo] resource_port``) instead of a traceback after the first-start work. The
servers are handed those sockets, and "broker ready" is logged, and the banner
printed on stderr, only once every server has started on them.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from gatepass import __version__
from gatepass.config import Settings
from gatepass.errors import ConfigurationError

__all__ = ["Listener", "ReadyServer", "banner", "bind"]


@dataclass(frozen=True, slots=True)
class Listener:
    """
    A bound socket and the setting that chose its port.

    Attributes:
        sock: the socket, bound and listening.
        setting: where the port is configured, for messages.
    """

    sock: socket.socket
    setting: str


def bind(host: str, port: int, *, setting: str, config: Path) -> Listener:
    """
    Bind and listen on ``host:port`` now.

    Raises:
        ConfigurationError: the port is taken or may not be used; the message
            names the setting and the file to change.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        # SO_REUSEADDR (create_server sets it on POSIX) lets a restart bind
        # while old connections are in TIME_WAIT; it never lets two servers
        # share a port.
        sock = socket.create_server((host, port), family=family, backlog=2048)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            problem = f"port {port} on {host} is already in use"
        elif error.errno == errno.EACCES:
            problem = f"port {port} on {host} may not be used by this user"
        else:
            problem = f"cannot listen on {host}:{port} ({error.strerror})"
        raise ConfigurationError(
            f"{problem}: stop what is listening there, or change {setting} in {config}"
        ) from None
    # Connections accepted on a socket handed to uvicorn do not get TCP_NODELAY
    # (uvicorn sets it only on sockets it binds itself); Linux copies it from the
    # listening socket. Without it a keep-alive client waits ~40 ms per answer
    # (Nagle against delayed ACK) whenever the headers and body go out apart.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return Listener(sock=sock, setting=setting)


class ReadyServer(uvicorn.Server):
    """
    A uvicorn server that reports when it has started on its sockets.

    Args:
        config: the uvicorn configuration.
        on_started: called once, after the lifespan started and the server
            listens.
    """

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        """Keep the callback."""
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start as uvicorn does, then report it."""
        await super().startup(sockets=sockets)
        if self.started:
            self._on_started()


def banner(settings: Settings, *, store: str, with_demo: bool) -> list[str]:
    """
    Return the start-up banner: what a person needs to use the broker.

    Args:
        settings: the broker's configuration.
        store: the store's dialect (``sqlite``, ``postgresql``).
        with_demo: whether the demo resource is served too.

    Returns:
        The lines; they hold paths and URLs, never a secret.
    """
    server = settings.server
    state = server.state_dir
    lines = [
        f"gatepass {__version__}: broker ready",
        f"  issuer       {server.issuer}",
        f"  listening    {server.host}:{server.port}",
        f"  store        {store}"
        + (
            f" ({settings.store_url.removeprefix('sqlite:///')})"
            if store == "sqlite"
            else ""
        ),
        f"  admin token  {state / 'admin.token'} (the CLI reads it with --config)",
    ]
    if with_demo:
        name = settings.demo.resource_target
        uris = [t.uri for t in settings.targets if t.name == name]
        shown = (
            uris[0] if uris else f"http://{server.host}:{settings.demo.resource_port}/"
        )
        lines.append(f"  demo API     {shown} (target {name})")
    if settings.console.enabled:
        lines.append(
            f"  console      {server.issuer}/console/ (sign in: gatepass console login)"
        )
    lines.append(f"  docs         {server.service_documentation}")
    return lines
