"""``gatepass proxy``: run the credential-injecting proxy."""

from __future__ import annotations

import socket
from pathlib import Path

import typer
import uvicorn

from gatepass.errors import GatepassError
from gatepass.observability import configure_logging, get_logger
from gatepass.proxy.app import create_proxy_app
from gatepass.proxy.server import server_config
from gatepass.proxy.settings import load_proxy_settings

__all__ = ["proxy"]


def proxy(
    config: Path = typer.Option(
        Path("proxy.toml"),
        "--config",
        "-c",
        help="the proxy's TOML configuration",
    ),
) -> None:
    """Run the credential-injecting proxy on the configured address."""
    try:
        settings = load_proxy_settings(config)
        # httpx logs every upstream URL at info (a query secret included): the
        # request loggers speak only at debug, and then scrubbed by value.
        configure_logging(settings.proxy.log_level, quiet_libraries=True)
        app = create_proxy_app(settings)
    except GatepassError as error:
        typer.echo(f"gatepass: {error.detail}", err=True)
        raise typer.Exit(error.exit_code) from error
    get_logger("gatepass.proxy").info(
        "proxy ready",
        public_url=settings.public_url,
        broker=settings.broker,
        routes=[route.name for route in settings.routes],
        revocation=settings.proxy.revocation,
    )
    # The feed and the audit shipper start and stop with the ASGI lifespan; the
    # server layer reports its own refusals to the app, which audits them.
    if not settings.proxy.reuse_port:
        uvicorn.Server(server_config(app, settings.proxy)).run()
        return
    # One of several processes on this port: the kernel spreads connections.
    sock = socket.create_server(
        (settings.proxy.host, settings.proxy.port),
        family=socket.AF_INET6 if ":" in settings.proxy.host else socket.AF_INET,
        backlog=2048,
        reuse_port=True,
    )
    uvicorn.Server(server_config(app, settings.proxy)).run(sockets=[sock])
