"""``gatepass serve``: run the broker (and, for the quickstart, the demo resource)."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import typer
import uvicorn

from gatepass.api import create_app
from gatepass.api.tls import uvicorn_tls_options
from gatepass.broker import build_runtime
from gatepass.config import load_settings
from gatepass.errors import GatepassError
from gatepass.observability import configure_logging, get_logger

__all__ = ["serve"]


async def _serve_all(servers: list[uvicorn.Server]) -> None:
    await asyncio.gather(*(server.serve() for server in servers))


def serve(
    config: Path = typer.Option(
        Path("examples/quickstart/gatepass.toml"),
        "--config",
        "-c",
        help="the broker's TOML configuration",
    ),
    with_demo: bool = typer.Option(
        False, "--with-demo", help="also serve the demo resource server (quickstart)"
    ),
) -> None:
    """Run the broker on the configured address."""
    try:
        settings = load_settings(config)
        configure_logging(settings.server.log_level)
        runtime = build_runtime(settings)
    except GatepassError as error:
        typer.echo(f"gatepass: {error.detail}", err=True)
        raise typer.Exit(error.exit_code) from error
    log = get_logger("gatepass.serve")
    state = settings.server.state_dir
    log.info(
        "broker ready",
        issuer=settings.server.issuer,
        store=runtime.database.dialect,
        admin_file=str(state / "admin.token"),
    )
    servers = [
        uvicorn.Server(
            uvicorn.Config(
                create_app(runtime),
                host=settings.server.host,
                port=settings.server.port,
                log_config=None,
                access_log=False,
                server_header=False,
                limit_concurrency=2048,
                timeout_keep_alive=30,
                **uvicorn_tls_options(settings),
            )
        )
    ]
    if with_demo:
        from gatepass.demo import create_resource_app  # noqa: PLC0415 - optional

        servers.append(
            uvicorn.Server(
                uvicorn.Config(
                    create_resource_app(settings),
                    host=settings.server.host,
                    port=settings.demo.resource_port,
                    log_config=None,
                    access_log=False,
                    server_header=False,
                )
            )
        )
    # Everything built so far (policies, keys, modules) lives as long as the process:
    # freezing it keeps the garbage collector's full passes short on the token path.
    gc.collect()
    gc.freeze()
    asyncio.run(_serve_all(servers))
