"""
The PostgreSQL engine: one temporary login role per lease.

``settings`` parses the ``[targets.engine]`` table into a :class:`PostgresConfig`,
``sql`` composes the statements, ``admin`` runs them on admin connections whose
errors never show a secret, and ``engine`` is the :class:`PostgresEngine` itself.
"""

from __future__ import annotations

from gatepass.engines.postgres.engine import REAP_GRACE, PostgresEngine
from gatepass.engines.postgres.settings import (
    PostgresConfig,
    PostgresGrant,
    PostgresSettings,
    parse_settings,
)

__all__ = [
    "REAP_GRACE",
    "PostgresConfig",
    "PostgresEngine",
    "PostgresGrant",
    "PostgresSettings",
    "parse_settings",
]
