"""
``gatepass serve --workers N``: several broker processes behind one port.

The parent binds the port, runs the first-start work once (keys, tokens, schema)
so the workers never race on it, then hands the listening socket to ``N`` worker
processes under uvicorn's supervisor (it restarts a worker that dies and stops
them all on ``SIGINT``/``SIGTERM``). Each worker builds its own broker from the
same configuration file: its own pool of connections, its own caches, its own
background jobs. Everything the workers must agree on lives in the database
(single-use proof and assertion ids claimed in the transaction of their effect,
task and lease states, the outbox), which is why only PostgreSQL may serve more
than one worker: SQLite allows one writer per file and the broker keeps one
process to a SQLite store.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from gatepass.api import create_app
from gatepass.api.tls import uvicorn_tls_options
from gatepass.broker import build_runtime
from gatepass.cli.startup import Listener
from gatepass.config import Settings, load_settings
from gatepass.errors import ConfigurationError
from gatepass.observability import configure_logging

__all__ = ["CONFIG_ENV", "check_workers", "serve_workers", "worker_app"]

# How a worker (a spawned interpreter) learns which configuration to load.
CONFIG_ENV = "GATEPASS_WORKER_CONFIG"


def check_workers(settings: Settings, workers: int) -> None:
    """
    Refuse a number of workers the configuration cannot serve safely.

    Args:
        settings: the broker's configuration.
        workers: the requested number of worker processes.

    Raises:
        ConfigurationError: fewer than one worker; several on SQLite; several
            with an SSH target (its KRL file is written by one process).
    """
    if workers < 1:
        raise ConfigurationError("--workers must be at least 1")
    if workers == 1:
        return
    if settings.store_url.startswith("sqlite"):
        raise ConfigurationError(
            "--workers > 1 needs PostgreSQL: a SQLite store serves one broker "
            'process; set [store] url = "postgresql+psycopg://..." or use --workers 1'
        )
    ssh = [target.name for target in settings.targets if target.kind == "ssh"]
    if ssh:
        raise ConfigurationError(
            "--workers > 1 cannot serve ssh targets (one process writes their KRL "
            f"files): {', '.join(sorted(ssh))}"
        )


def prepare_store(settings: Settings) -> None:
    """
    Run the first-start work once, before any worker starts.

    Creates the schema, the signing and audit keys and the API token files, so
    that ``N`` workers starting together find them made.

    Raises:
        ConfigurationError: as :func:`gatepass.broker.build_runtime`.
        StoreError: the database cannot be reached.
    """
    runtime = build_runtime(settings)
    runtime.database.dispose()


def worker_app() -> object:
    """
    Build one worker's application (uvicorn calls it in each worker process).

    Returns:
        The broker's ASGI application.
    """
    settings = load_settings(Path(os.environ[CONFIG_ENV]))
    configure_logging(settings.server.log_level)
    app = create_app(build_runtime(settings))
    # As in one process: what start-up built lives as long as the worker.
    gc.collect()
    gc.freeze()
    return app


def serve_workers(
    settings: Settings, config: Path, listener: Listener, workers: int
) -> bool:
    """
    Serve the broker from ``workers`` processes sharing ``listener``'s socket.

    Args:
        settings: the broker's configuration (already checked).
        config: its file, which each worker loads again.
        listener: the bound, listening socket.
        workers: how many worker processes.

    Returns:
        False when the supervisor stopped because a worker failed to start (the
        same failure would repeat on every restart), True after a shutdown.
    """
    os.environ[CONFIG_ENV] = str(config.resolve())
    uvicorn_config = uvicorn.Config(
        "gatepass.cli.workers:worker_app",
        factory=True,
        workers=workers,
        log_config=None,
        access_log=False,
        server_header=False,
        limit_concurrency=2048,
        timeout_keep_alive=30,
        # A worker builds its broker before it answers: give it time on a busy host.
        timeout_worker_healthcheck=30,
        **uvicorn_tls_options(settings),
    )
    supervisor = Multiprocess(uvicorn_config, sockets=[listener.sock])
    supervisor.run()
    return not any(
        process.exitcode == STARTUP_FAILURE for process in supervisor.processes
    )
