"""Typed views of verified task and access token claims."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from gatepass.errors import TokenError
from gatepass.tokens import AccessTokenClaims, TaskTokenClaims

NOW = 1_800_000_000


def task_claims(**changes: Any) -> dict[str, Any]:
    """Return task token claims as the broker signs them."""
    claims: dict[str, Any] = {
        "sub": "agt_1",
        "txn": "tsk_1",
        "jti": "j1",
        "cnf": {"jkt": "thumb"},
        "iat": NOW,
        "exp": NOW + 60,
        "tenant": "acme",
        "env": "dev",
        "purpose": "triage",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def access_claims(**changes: Any) -> dict[str, Any]:
    """Return access token claims as the broker signs them."""
    claims: dict[str, Any] = {
        "sub": "agt_1",
        "client_id": "agt_1",
        "aud": "https://api.example/",
        "scope": "read write",
        "txn": "tsk_1",
        "jti": "j2",
        "cnf": {"jkt": "thumb"},
        "iat": NOW,
        "exp": NOW + 60,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


class TestTaskTokenClaims:
    """A task token names its agent, task and key."""

    def test_reads_every_field(self) -> None:
        """The view carries the claims under their meanings."""
        view = TaskTokenClaims.from_claims(task_claims())
        assert (view.agent_id, view.task_id, view.jkt) == ("agt_1", "tsk_1", "thumb")
        assert view.expires_at == dt.datetime.fromtimestamp(NOW + 60, dt.UTC)
        assert (view.tenant, view.environment, view.purpose) == (
            "acme",
            "dev",
            "triage",
        )

    @pytest.mark.parametrize(
        "changes",
        [
            {"sub": None},
            {"txn": "lse_1"},
            {"txn": None},
            {"jti": ""},
            {"cnf": None},
            {"cnf": {"jkt": 3}},
            {"exp": "soon"},
            {"iat": True},
        ],
    )
    def test_refuses_a_malformed_shape(self, changes: dict[str, Any]) -> None:
        """A missing or mistyped claim is a token error."""
        with pytest.raises(TokenError):
            TaskTokenClaims.from_claims(task_claims(**changes))


class TestAccessTokenClaims:
    """An access token names one audience, its scope, task and key."""

    def test_reads_every_field(self) -> None:
        """The scope is split into actions; a one-element audience list is read."""
        view = AccessTokenClaims.from_claims(access_claims(aud=["https://api/"]))
        assert view.audience == "https://api/"
        assert view.scope == ("read", "write")
        assert view.task_id == "tsk_1"

    @pytest.mark.parametrize(
        "changes",
        [
            {"aud": ["a", "b"]},
            {"aud": None},
            {"scope": ["read"]},
            {"txn": None},
            {"cnf": {}},
        ],
    )
    def test_refuses_a_malformed_shape(self, changes: dict[str, Any]) -> None:
        """Two audiences, a non-string scope or a missing binding are refused."""
        with pytest.raises(TokenError):
            AccessTokenClaims.from_claims(access_claims(**changes))
