"""Context signals as policy facts: principal.risk and the context booleans (#14)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.policy.test_cedar import SCHEMA_VARIANT

from gatepass.policy import CedarPolicySet
from gatepass.policy.model import NO_SIGNALS, SignalFeatures, entity_json

PERMIT_ALL = "permit (principal, action, resource);"
OLD_SCHEMA = SCHEMA_VARIANT


class TestFeatures:
    """A schema decides which signal facts requests carry."""

    def test_quickstart_schema_declares_all(self, quickstart: CedarPolicySet) -> None:
        """The quickstart schema declares risk and both context booleans."""
        assert quickstart.signal_features == SignalFeatures(
            risk=True, environment_frozen=True, tenant_incident=True
        )

    def test_a_schema_without_them_still_decides(
        self, make_policy_dir, make_request
    ) -> None:
        """A schema written before signals existed loads, and decides as before."""
        directory = make_policy_dir({"all.cedar": PERMIT_ALL}, schema=OLD_SCHEMA)
        policy_set = CedarPolicySet.from_directory(directory)
        assert policy_set.signal_features == NO_SIGNALS
        request = dataclasses.replace(
            make_request(), environment_frozen=True, tenant_incident=True
        )
        (decision,) = policy_set.decide([request])
        assert decision.allowed, decision.errors

    def test_only_risk_declared(self, make_policy_dir, make_request) -> None:
        """A schema with only principal.risk gets only that fact."""
        schema = OLD_SCHEMA.replace(
            "entity Agent = { name: String, tenant: String }",
            "entity Agent = { name: String, tenant: String, risk: String }",
        )
        policy = (
            'forbid (principal, action, resource) when { principal.risk == "high" };\n'
            + PERMIT_ALL
        )
        directory = make_policy_dir({"all.cedar": policy}, schema=schema)
        policy_set = CedarPolicySet.from_directory(directory)
        assert policy_set.signal_features == SignalFeatures(risk=True)
        request = make_request()
        high = dataclasses.replace(
            request, agent=dataclasses.replace(request.agent, risk="high")
        )
        allowed, denied = policy_set.decide([request, high])
        assert allowed.allowed
        assert not denied.allowed


class TestQuickstartGuardrails:
    """signals.cedar: frozen environments take no writes; high risk gets nothing."""

    def test_frozen_environment_refuses_writes_only(
        self, quickstart: CedarPolicySet, make_request
    ) -> None:
        """A write in a frozen environment is denied by its guardrail; reads pass."""
        write = dataclasses.replace(
            make_request(action="write"), environment_frozen=True
        )
        read = dataclasses.replace(make_request(action="read"), environment_frozen=True)
        denied, allowed = quickstart.decide([write, read])
        assert denied.policy_ids == ("frozen-environment-no-writes",)
        assert allowed.allowed

    @pytest.mark.parametrize("action", ["OpenTask", "read", "write"])
    def test_high_risk_agent_gets_nothing(
        self, quickstart: CedarPolicySet, make_request, action: str
    ) -> None:
        """Every action of a high-risk agent is denied."""
        request = make_request(action=action)
        high = dataclasses.replace(
            request, agent=dataclasses.replace(request.agent, risk="high")
        )
        (decision,) = quickstart.decide([high])
        assert "high-risk-agent-nothing" in decision.policy_ids
        assert not decision.allowed

    def test_incident_is_read_only(
        self, quickstart: CedarPolicySet, make_request
    ) -> None:
        """Under a tenant incident a write is denied and a read allowed."""
        write = dataclasses.replace(make_request(action="write"), tenant_incident=True)
        read = dataclasses.replace(make_request(action="read"), tenant_incident=True)
        denied, allowed = quickstart.decide([write, read])
        assert denied.policy_ids == ("tenant-incident-read-only",)
        assert allowed.allowed

    # make_request is a pure factory: sharing it between examples is safe.
    @settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        signals=st.tuples(
            st.sampled_from(["low", "medium", "high"]), st.booleans(), st.booleans()
        ),
        action=st.sampled_from(["OpenTask", "read", "write"]),
    )
    def test_decisions_follow_the_guardrails(
        self,
        quickstart: CedarPolicySet,
        make_request,
        signals: tuple[str, bool, bool],
        action: str,
    ) -> None:
        """Signals only ever take permissions away, exactly as the guardrails say."""
        risk, frozen, incident = signals
        base = make_request(action=action)
        request = dataclasses.replace(
            base,
            agent=dataclasses.replace(base.agent, risk=risk),
            environment_frozen=frozen,
            tenant_incident=incident,
        )
        (without,) = quickstart.decide([base])
        (decision,) = quickstart.decide([request])
        blocked = risk == "high" or (action == "write" and (frozen or incident))
        assert decision.allowed == (without.allowed and not blocked)


class TestEntityDescriptions:
    """Agent entities described without the risk fact still serialise."""

    def test_six_part_description_has_no_risk(self) -> None:
        """An agent described without risk (other request kinds) omits it."""
        document = json.loads(entity_json(("A", "a1", "a", "acme", (), None)))
        assert "risk" not in document["attrs"]
        with_risk = json.loads(entity_json(("A", "a1", "a", "acme", (), None, "high")))
        assert with_risk["attrs"]["risk"] == "high"
