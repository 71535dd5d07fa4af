"""
The issuance bench's broker configuration and the demo agent's two token requests.

The configuration is the quickstart's, with bench lifetimes.

Differences from examples/quickstart/gatepass.toml, all for the bench's sake:

* ``[server]``: a free port and a temporary state directory (fresh SQLite database).
* ``[dpop] max_age_seconds = 600`` (the maximum): proofs are signed right before each
  phase, so the last proof of a 10 s phase is at most ~15 s old anyway; 600 s only
  keeps a slow machine from failing the run.
* ``[tokens] task_max_ttl_seconds = 3600`` and the bench opens its task with
  ``max_ttl_seconds = 3600``, so the task outlives the whole run.

Everything else (ES256, SQLite in WAL mode, the quickstart policies, background jobs
every 2/5/10/30 s, the two targets) is as in the quickstart.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from gatepass.clock import SystemClock
from gatepass.tokens import create_assertion, load_private_key

REPO = Path(__file__).resolve().parents[1]
POLICIES = REPO / "examples" / "quickstart" / "policies"
TARGET_URI = "http://127.0.0.1:8401/"
DPOP_MAX_AGE_SECONDS = 600
TASK_TTL_SECONDS = 3600
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
TXN_TYPE = "urn:ietf:params:oauth:token-type:txn_token"


def render_config(state_dir: Path, port: int) -> str:
    """Return the TOML text of a bench broker on 127.0.0.1:``port``."""
    return f"""\
[server]
issuer = "http://127.0.0.1:{port}"
host = "127.0.0.1"
port = {port}
state_dir = "{state_dir}"

[tokens]
algorithm = "ES256"
task_default_ttl_seconds = 900
task_max_ttl_seconds = {TASK_TTL_SECONDS}
access_default_ttl_seconds = 300
access_max_ttl_seconds = 900

[dpop]
require_nonce = false
max_age_seconds = {DPOP_MAX_AGE_SECONDS}

[policy]
directory = "{POLICIES}"
reload_interval_seconds = 5

[audit]
checkpoint_interval_seconds = 10

[[targets]]
name = "tickets"
uri = "{TARGET_URI}"
environment = "dev"
tenant = "acme"
risk = "low"
actions = ["read", "write"]
max_ttl_seconds = 600

[[targets]]
name = "tickets-prod"
uri = "https://tickets.example.internal/"
environment = "prod"
tenant = "acme"
risk = "high"
actions = ["read", "write", "admin"]
max_ttl_seconds = 300

[demo]
enabled = true
agent_name = "demo-agent"
tenant = "acme"
labels = {{ team = "support" }}
resource_port = 8401
resource_target = "tickets"
"""


def open_task_form(identity: dict[str, Any], issuer: str) -> dict[str, str]:
    """Return the open-task form for the demo agent (tickets, 3600 s)."""
    private_key, _, algorithm = load_private_key(identity["private_jwk"])
    assertion = create_assertion(
        private_key,
        algorithm=algorithm,
        agent_id=identity["agent_id"],
        audience=issuer,
        now=SystemClock().now(),
        lifetime=dt.timedelta(seconds=60),
    )
    details = {
        "type": "agent_task",
        "intent": "benchmark access-token issuance",
        "purpose": "support-triage",
        "environment": "dev",
        "targets": ["tickets"],
        "max_ttl_seconds": TASK_TTL_SECONDS,
    }
    return {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": assertion,
        "subject_token_type": JWT_TYPE,
        "requested_token_type": TXN_TYPE,
        "authorization_details": json.dumps([details]),
    }


def access_body(task_token: str) -> bytes:
    """Return the form body of the measured request: tickets, scope read."""
    return urlencode(
        {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": task_token,
            "subject_token_type": TXN_TYPE,
            "resource": TARGET_URI,
            "scope": "read",
        }
    ).encode("ascii")
