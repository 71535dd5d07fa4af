"""
The SSH engine: OpenSSH user certificates of the agent's own key, and a KRL.

``settings`` parses the ``[targets.engine]`` table into an :class:`SSHConfig`,
``ca`` keeps the per-target CA key (sealed) and checks the agents' public keys,
``krl`` records issued certificates and builds the revocation list, and ``engine``
is the :class:`SSHEngine` itself.
"""

from __future__ import annotations

from gatepass.engines.ssh.ca import CLOCK_SKEW
from gatepass.engines.ssh.engine import SSHEngine
from gatepass.engines.ssh.settings import SSHConfig, SSHSettings, parse_settings

__all__ = ["CLOCK_SKEW", "SSHConfig", "SSHEngine", "SSHSettings", "parse_settings"]
