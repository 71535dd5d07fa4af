"""
The Redis engine: one ACL user per lease.

``settings`` parses the ``[targets.engine]`` table into a :class:`RedisConfig`,
``acl`` holds the ACL rules (and the refusals every restricted grant gets) and the
user names, and ``engine`` is the :class:`RedisEngine` itself.
"""

from __future__ import annotations

from gatepass.engines.redis.acl import RedisGrant
from gatepass.engines.redis.engine import RedisEngine
from gatepass.engines.redis.settings import (
    RedisConfig,
    RedisGrantSettings,
    RedisSettings,
    parse_settings,
)

__all__ = [
    "RedisConfig",
    "RedisEngine",
    "RedisGrant",
    "RedisGrantSettings",
    "RedisSettings",
    "parse_settings",
]
