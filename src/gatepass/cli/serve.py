"""``gatepass serve``: run the broker (and, for the quickstart, the demo resource)."""

from __future__ import annotations

import asyncio
import gc
import sys
from pathlib import Path

import typer
import uvicorn

from gatepass.api import create_app
from gatepass.api.tls import uvicorn_tls_options
from gatepass.broker import build_runtime
from gatepass.cli.startup import Listener, ReadyServer, banner, bind
from gatepass.cli.workers import check_workers, prepare_store, serve_workers
from gatepass.config import load_settings
from gatepass.errors import ConfigurationError, GatepassError
from gatepass.observability import configure_logging, get_logger

__all__ = ["serve"]


async def _serve_all(servers: list[tuple[uvicorn.Server, Listener]]) -> None:
    await asyncio.gather(
        *(server.serve(sockets=[listener.sock]) for server, listener in servers)
    )


def serve(
    config: Path = typer.Option(
        Path("examples/quickstart/gatepass.toml"),
        "--config",
        "-c",
        envvar="GATEPASS_CONFIG",
        help="the broker's TOML configuration",
    ),
    with_demo: bool = typer.Option(
        False, "--with-demo", help="also serve the demo resource server (quickstart)"
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        "-w",
        envvar="GATEPASS_WORKERS",
        help="broker processes sharing the port (more than 1 needs PostgreSQL)",
    ),
) -> None:
    """Run the broker on the configured address."""
    try:
        settings = load_settings(config)
        configure_logging(settings.server.log_level)
        check_workers(settings, workers)
        if workers > 1 and with_demo:
            raise ConfigurationError(
                "--with-demo runs with one worker: drop --with-demo or --workers"
            )
        # Ports first: a taken port is one plain message, before any start-up work.
        listeners = [
            bind(
                settings.server.host,
                settings.server.port,
                setting="[server] port",
                config=config,
            )
        ]
        if with_demo:
            listeners.append(
                bind(
                    settings.server.host,
                    settings.demo.resource_port,
                    setting="[demo] resource_port (or the demo target's uri)",
                    config=config,
                )
            )
        if workers > 1:
            prepare_store(settings)
        else:
            runtime = build_runtime(settings)
    except GatepassError as error:
        typer.echo(f"gatepass: {error.detail}", err=True)
        raise typer.Exit(error.exit_code) from error
    if workers > 1:
        # The port is bound and listening: connections queue until a worker takes them.
        lines = banner(settings, store="postgresql", with_demo=False)
        lines.insert(3, f"  workers      {workers}")
        sys.stderr.write("\n".join(lines) + "\n")
        sys.stderr.flush()
        if not serve_workers(settings, config, listeners[0], workers):
            typer.echo(
                "gatepass: a worker failed to start (its log is above)", err=True
            )
            raise typer.Exit(1)
        return
    log = get_logger("gatepass.serve")
    state = settings.server.state_dir
    waiting = len(listeners)

    def started() -> None:
        # "Broker ready" only once every server listens on its bound socket.
        nonlocal waiting
        waiting -= 1
        if waiting:
            return
        log.info(
            "broker ready",
            issuer=settings.server.issuer,
            listening=f"{settings.server.host}:{settings.server.port}",
            store=runtime.database.dialect,
            admin_file=str(state / "admin.token"),
        )
        lines = banner(settings, store=runtime.database.dialect, with_demo=with_demo)
        sys.stderr.write("\n".join(lines) + "\n")
        sys.stderr.flush()

    servers: list[tuple[uvicorn.Server, Listener]] = [
        (
            ReadyServer(
                uvicorn.Config(
                    create_app(runtime),
                    log_config=None,
                    access_log=False,
                    server_header=False,
                    limit_concurrency=2048,
                    timeout_keep_alive=30,
                    **uvicorn_tls_options(settings),
                ),
                started,
            ),
            listeners[0],
        )
    ]
    if with_demo:
        from gatepass.demo import create_resource_app  # noqa: PLC0415 - optional

        servers.append(
            (
                ReadyServer(
                    uvicorn.Config(
                        create_resource_app(settings),
                        log_config=None,
                        access_log=False,
                        server_header=False,
                    ),
                    started,
                ),
                listeners[1],
            )
        )
    # Everything built so far (policies, keys, modules) lives as long as the process:
    # freezing it keeps the garbage collector's full passes short on the token path.
    gc.collect()
    gc.freeze()
    asyncio.run(_serve_all(servers))
