"""
Secret engines: one folder per kind of target, behind one small protocol.

``base.py`` is the contract, ``registry.py`` the catalog of built-in engines,
``wrappers.py`` adds timeouts, metrics and error scrubbing around every engine.
"""

from __future__ import annotations

from gatepass.engines.base import (
    CREDENTIAL_PREFIX,
    IssuedCredential,
    IssueRequest,
    SecretEngine,
    credential_name,
)
from gatepass.engines.context import (
    EngineContext,
    installation_marker,
    new_installation_id,
)
from gatepass.engines.registry import BUILTIN_ENGINES, build_engines
from gatepass.engines.wrappers import GuardedEngine

__all__ = [
    "BUILTIN_ENGINES",
    "CREDENTIAL_PREFIX",
    "EngineContext",
    "GuardedEngine",
    "IssueRequest",
    "IssuedCredential",
    "SecretEngine",
    "build_engines",
    "credential_name",
    "installation_marker",
    "new_installation_id",
]
