"""The framework report: the catalog, each live check, the renderings."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from gatepass.frameworks import (
    CHECKS,
    Facts,
    Status,
    TargetFact,
    build_report,
    load_catalog,
    render_html,
    render_markdown,
)

NOW = dt.datetime(2026, 1, 6, 10, 0, tzinfo=dt.UTC)


def _target(name: str = "tickets", **changes: Any) -> TargetFact:
    base = TargetFact(
        name=name,
        kind="http",
        tenant="acme",
        environment="dev",
        uri=f"https://{name}.example/",
        risk="low",
        max_ttl_seconds=600,
        ttl_set=True,
    )
    return dataclasses.replace(base, **changes)


def make_facts(**changes: Any) -> Facts:
    """A deployment that meets every check it can; ``changes`` make it worse."""
    base = Facts(
        access_max_ttl_seconds=900,
        task_max_ttl_seconds=3600,
        dpop_nonce_required=True,
        targets=(_target(), _target("ledger", kind="postgres", risk="high")),
        policy_count=5,
        policy_digest="a" * 64,
        policy_error=None,
        audit_unready=None,
        audit_head_seq=100,
        audit_checkpoint_seq=100,
        audit_checkpoint_age_seconds=3.0,
        audit_checkpoint_interval_seconds=10,
        revoking=0,
        revoking_failed=0,
        active_agents=2,
        agents_without_owners=(),
        approval_groups=1,
        approval_policies=1,
        federated_issuers=("k8s",),
        delegation_max_depth=4,
        signals={"receivers": ["idp"]},
        reuse={"rules": ["revoke"]},
        master_key_source="environment",
        tls=True,
        issuer="https://broker.example",
    )
    return dataclasses.replace(base, **changes)


def _items(facts: Facts) -> dict[str, dict[str, Any]]:
    report = build_report(facts, generated_at=NOW)
    return {i["id"]: i for f in report["frameworks"] for i in f["items"]}


def _check(facts: Facts, name: str) -> Status:
    return CHECKS[name](facts).status


class TestCatalog:
    """The packaged catalog covers the five frameworks, cited by id and title."""

    def test_frameworks_and_items(self) -> None:
        """ASI01-10, NHI1-10, MCP01-10, MAESTRO L1-L7 and the four RMF functions."""
        catalog = load_catalog()
        ids = {f.id: [i.id for i in f.items] for f in catalog.frameworks}
        assert ids["owasp-asi"] == [f"ASI{n:02d}" for n in range(1, 11)]
        assert ids["owasp-nhi"] == [f"NHI{n}" for n in range(1, 11)]
        assert ids["owasp-mcp"] == [f"MCP{n:02d}" for n in range(1, 11)]
        assert ids["csa-maestro"] == [f"L{n}" for n in range(1, 8)]
        assert ids["nist-ai-rmf"] == ["GOVERN", "MAP", "MEASURE", "MANAGE"]

    def test_every_check_backs_a_control(self) -> None:
        """No check is unused and every control has one."""
        catalog = load_catalog()
        used = {check for c in catalog.controls.values() for check in c.checks}
        assert used == set(CHECKS)


class TestChecks:
    """Each check reads the fact it names and flips when it changes."""

    def test_a_model_deployment_meets_every_full_item(self) -> None:
        """With every fact good, full-coverage items are met and partial ones partly."""
        catalog = load_catalog()
        items = _items(make_facts())
        for framework in catalog.frameworks:
            for item in framework.items:
                expected = "partly met" if item.partial and item.controls else "met"
                if not item.controls:
                    expected = "not met"
                assert items[item.id]["status"] == expected, item.id

    @pytest.mark.parametrize(
        ("ttl", "status"),
        [(900, Status.MET), (1800, Status.PARTLY_MET), (7200, Status.NOT_MET)],
    )
    def test_raising_the_access_ttl_flips_nhi7(self, ttl: int, status: Status) -> None:
        """NHI7 Long-Lived Secrets follows tokens.access_max_ttl_seconds."""
        facts = make_facts(access_max_ttl_seconds=ttl, targets=())
        assert _check(facts, "access_ttl") is status
        assert _items(facts)["NHI7"]["status"] == status.value

    def test_a_target_without_a_cap(self) -> None:
        """A target relying on the default cap is named."""
        facts = make_facts(targets=(_target("legacy", ttl_set=False),))
        finding = CHECKS["target_ttl_caps"](facts)
        assert finding.status is Status.PARTLY_MET
        assert "legacy" in finding.reason

    def test_ownerless_agents(self) -> None:
        """Some agents without owners: partly; all of them: not met."""
        some = make_facts(agents_without_owners=("a",))
        every = make_facts(agents_without_owners=("a", "b"))
        assert _check(some, "agent_owners") is Status.PARTLY_MET
        assert _check(every, "agent_owners") is Status.NOT_MET

    def test_failing_revocations(self) -> None:
        """A revocation failing right now is not met, and NHI1 is not fully met."""
        facts = make_facts(revoking=3, revoking_failed=2)
        assert _check(facts, "revocations") is Status.NOT_MET
        assert _items(facts)["NHI1"]["status"] == "partly met"

    def test_sealed_audit(self) -> None:
        """A sealed broker or an integrity alarm is not met."""
        facts = make_facts(audit_unready="record seq 4 mac does not verify")
        assert _check(facts, "audit_chain") is Status.NOT_MET
        assert _items(facts)["MCP08"]["status"] == "not met"

    def test_stale_checkpoint(self) -> None:
        """Records waiting past three checkpoint intervals are partly met."""
        facts = make_facts(audit_checkpoint_seq=90, audit_checkpoint_age_seconds=60.0)
        assert _check(facts, "audit_chain") is Status.PARTLY_MET

    def test_missing_sections_are_not_configured(self) -> None:
        """Without signals or reuse configuration the report says so."""
        facts = make_facts(signals=None, reuse=None)
        finding = CHECKS["signals"](facts)
        assert finding.status is Status.NOT_MET
        assert finding.reason.startswith("not configured")
        assert _check(facts, "reuse") is Status.NOT_MET

    def test_no_policies(self) -> None:
        """An empty policy set governs nothing."""
        assert _check(make_facts(policy_count=0), "policy") is Status.NOT_MET

    def test_approvals(self) -> None:
        """High-risk targets without approval policies are not met."""
        facts = make_facts(approval_policies=0)
        assert _check(facts, "approvals") is Status.NOT_MET
        calm = make_facts(approval_policies=0, targets=(_target(),))
        assert _check(calm, "approvals") is Status.PARTLY_MET

    def test_plain_http(self) -> None:
        """Plain http on loopback is partly met, on a network not met."""
        loop = make_facts(tls=False, issuer="http://127.0.0.1:8400")
        wide = make_facts(tls=False, issuer="http://broker.internal")
        assert _check(loop, "tls") is Status.PARTLY_MET
        assert _check(wide, "tls") is Status.NOT_MET

    def test_shared_uri(self) -> None:
        """One URI in two environments is partly isolated."""
        facts = make_facts(
            targets=(
                _target("a"),
                _target("b", environment="prod", uri="https://a.example/"),
            )
        )
        assert _check(facts, "environment_isolation") is Status.PARTLY_MET


class TestRendering:
    """Operator text is escaped in both renderings."""

    HOSTILE = "<script>alert(1)</script>|[x](javascript:y)"

    def _report(self) -> dict[str, Any]:
        facts = make_facts(targets=(_target(self.HOSTILE, ttl_set=False),))
        return build_report(facts, generated_at=NOW)

    def test_html_escapes_everything(self) -> None:
        """No tag of the hostile name survives; no script at all."""
        page = render_html(self._report())
        assert "<script" not in page
        assert "&lt;script&gt;" in page

    def test_markdown_escapes_cells(self) -> None:
        """Pipes, brackets and angle brackets are escaped, so no cell or link breaks."""
        text = render_markdown(self._report())
        assert "<script>" not in text
        assert "](javascript" not in text
        assert "\\|\\[x\\]" in text
