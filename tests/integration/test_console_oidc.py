"""
Console sign-in with OpenID Connect against a real provider (issue 13).

panva ``oidc-provider`` (OpenID Certified; pinned in ``oidc_provider/package.json``
and installed from the npm registry with ``npm ci``) runs in Node on a free port
with one client registered for the console's redirect URI. Chromium walks the
authorization code flow with PKCE: the provider's login and consent screens, the
callback, the session. Skips without node and npm (fails under CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from gatepass.api import create_app
from gatepass.broker import Caller, OperatorRegistration, Runtime, build_runtime
from gatepass.config import Settings
from gatepass.models import ApiRole, OperatorRole
from gatepass.store import audit_log

from .conftest import free_port, quickstart_settings, start_server
from .console_browser import chromium, context
from .console_kit import run
from .deadline import poll
from .processes import stop

pytestmark = pytest.mark.slow
__all__ = ["chromium", "context"]  # fixtures, used by name

PROVIDER = Path(__file__).parent / "oidc_provider"
CLIENT_ID = "gatepass-console"
CLIENT_SECRET = "console-test-secret-0123456789"


def require_node() -> None:
    """Skip without node and npm; fail under CI, which must run this test."""
    if shutil.which("node") and shutil.which("npm"):
        return
    message = "node and npm are needed for the OIDC provider"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run the OIDC sign-in test", pytrace=False)
    pytest.skip(message)


def install_provider() -> None:
    """Install the pinned provider from the npm registry unless it is there."""
    if (PROVIDER / "node_modules" / "oidc-provider" / "package.json").exists():
        return
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],  # noqa: S607
        cwd=PROVIDER,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-800:]


@dataclass
class SignInSetup:
    """The provider, the broker and its runtime."""

    provider_url: str
    broker_url: str
    runtime: Runtime


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignInSetup]:
    """Start the provider and a broker whose console trusts it."""
    require_node()
    install_provider()
    root = tmp_path_factory.mktemp("oidc")
    provider_port, broker_port = free_port(), free_port()
    provider_url = f"http://127.0.0.1:{provider_port}"
    broker_url = f"http://127.0.0.1:{broker_port}"
    redirect = f"{broker_url}/console/login/oidc/callback"
    process = subprocess.Popen(  # noqa: S603 - fixed arguments
        [  # noqa: S607 - node from PATH, as npm is
            "node",
            "provider.mjs",
            str(provider_port),
            CLIENT_ID,
            CLIENT_SECRET,
            redirect,
        ],
        cwd=PROVIDER,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def ready() -> bool:
        try:
            return httpx.get(f"{provider_url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert poll(ready, within=20), "the OIDC provider did not start"
        secret = root / "client.secret"
        secret.write_text(CLIENT_SECRET + "\n")
        secret.chmod(0o600)
        base = quickstart_settings(
            root / "state", port=broker_port, resource_port=free_port()
        )
        raw = base.model_dump(mode="json")
        raw["console"] = {
            "oidc": {
                "issuer": provider_url,
                "client_id": CLIENT_ID,
                "client_secret_file": str(secret),
                "redirect_uri": redirect,
                "algorithms": ["ES256"],
                "operators": {"ann@example.com": "ann"},
            }
        }
        runtime = build_runtime(Settings.model_validate(raw))
        run(
            runtime.broker.operators.add,
            Caller.of("tok_test", ApiRole.ADMIN),
            OperatorRegistration(
                name="ann",
                roles=frozenset({OperatorRole.AUDITOR}),
                tenants=frozenset({"acme"}),
            ),
        )
        running = start_server(create_app(runtime, background_jobs=False), broker_port)
        try:
            yield SignInSetup(provider_url, running.url, runtime)
        finally:
            running.stop()
            runtime.database.dispose()
    finally:
        stop(process)


def through_provider(context: BrowserContext, setup: SignInSetup, login: str) -> Page:
    """Start the sign-in, log in and consent at the provider; return the page."""
    page = context.new_page()
    page.goto(f"{setup.broker_url}/console/login")
    page.get_by_test_id("oidc-login").click()
    page.wait_for_url(f"{setup.provider_url}/**")
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any")
    page.locator("button[type=submit]").click()
    page.get_by_role("button", name="Continue").click()
    return page


class TestOIDC:
    """Authorization code with PKCE, verified ID token, mapped operator."""

    def test_issue13_oidc_sign_in_opens_a_session(
        self, setup: SignInSetup, context: BrowserContext
    ) -> None:
        """ann@example.com at the provider is operator ann in the console."""
        page = through_provider(context, setup, "ann")

        page.wait_for_url(f"{setup.broker_url}/console/")
        expect(page.get_by_test_id("operator")).to_have_text("ann")
        with setup.runtime.database.reading() as conn:
            logins = [
                r
                for r in audit_log.iter_audit(conn)
                if r.kind == "console.login" and r.outcome == "ok"
            ]
        assert logins[-1].actor == "operator:ann"
        assert logins[-1].data["method"] == "oidc"
        assert logins[-1].data["issuer"] == setup.provider_url

    def test_issue13_unmapped_identity_is_refused(
        self, setup: SignInSetup, context: BrowserContext
    ) -> None:
        """A provider account that maps to no operator gets no session."""
        page = through_provider(context, setup, "mallory")
        expect(page.get_by_test_id("error-code")).to_have_text("unauthenticated")
        assert not [c for c in context.cookies() if c["name"] == "gatepass_console"]
        with setup.runtime.database.reading() as conn:
            last = [r for r in audit_log.iter_audit(conn) if r.kind == "console.login"]
        assert last[-1].outcome == "deny"
        assert last[-1].data["value"] == "mallory@example.com"
