"""
Secret engines: one module per kind of target, behind one small protocol.

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

__all__ = [
    "CREDENTIAL_PREFIX",
    "EngineContext",
    "IssueRequest",
    "IssuedCredential",
    "SecretEngine",
    "credential_name",
    "installation_marker",
    "new_installation_id",
]
