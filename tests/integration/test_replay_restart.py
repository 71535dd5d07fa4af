"""
Single use survives a crash (issue 7 item 14).

A proof or assertion accepted just before ``kill -9`` is refused after the restart.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .agents import ProtocolAgent
from .conftest import free_port, quickstart_settings
from .processes import kill, serve, stop, write_config

pytestmark = pytest.mark.slow


def test_issue7_replay_protection_survives_kill_9(tmp_path: Path) -> None:
    """A DPoP proof and an assertion jti accepted before kill -9 stay spent."""
    port = free_port()
    state = tmp_path / "state"
    config = tmp_path / "gatepass.toml"
    write_config(
        config, quickstart_settings(state, port=port, resource_port=free_port())
    )
    url = f"http://127.0.0.1:{port}"
    broker = serve(config, url)
    identity = json.loads((state / "demo-agent.json").read_text())
    with ProtocolAgent(url, identity) as agent:
        try:
            open_form = agent.open_form()
            open_proof = agent.proof()
            opened = agent.post_token(open_form, proof=open_proof)
            assert opened.status_code == 200, opened.text
            task_token = opened.json()["access_token"]
            access_form = agent.access_form(task_token)
            access_proof = agent.proof()
            granted = agent.post_token(access_form, proof=access_proof)
            assert granted.status_code == 200, granted.text
        finally:
            kill(broker)
        broker = serve(config, url)
        try:
            # The very same requests, as an attacker who recorded them would send.
            replayed_open = agent.post_token(open_form, proof=open_proof)
            assert replayed_open.status_code == 400
            assert replayed_open.json()["error"] == "invalid_dpop_proof"
            replayed_access = agent.post_token(access_form, proof=access_proof)
            assert replayed_access.status_code == 400
            assert replayed_access.json()["error"] == "invalid_dpop_proof"
            # A fresh proof does not make the spent assertion usable again.
            reused_assertion = agent.post_token(open_form)
            assert reused_assertion.status_code == 400
            assert reused_assertion.json()["error"] == "invalid_grant"
            assert "replayed" in reused_assertion.json()["error_description"]
            # Honest fresh requests still work after the restart.
            assert agent.post_token(access_form).status_code == 200
            assert agent.post_token(agent.open_form()).status_code == 200
        finally:
            stop(broker)
