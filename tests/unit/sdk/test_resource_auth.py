"""ResourceAuth and the cache fix, against a fake broker and a fake resource server."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.clock import FrozenClock
from gatepass.errors import (
    AccessDeniedError,
    ConfigurationError,
    InsufficientScopeError,
    InvalidGrantError,
    InvalidScopeError,
    TokenRevokedError,
)
from gatepass.sdk import (
    AgentIdentity,
    GatepassClient,
    ResourceAuth,
    Task,
    read_challenge,
)
from gatepass.verify import www_authenticate

from .conftest import BROKER, TARGET, FakeBroker, open_task

METADATA = "https://api.example/.well-known/oauth-protected-resource"
DATA = "https://api.example/data"


@dataclass
class FakeResource:
    """A resource server: GET needs read, POST needs write, revoked tokens fail."""

    broker: FakeBroker
    revoked: set[str] = field(default_factory=set)
    resource: str = TARGET
    authorization_servers: tuple[str, ...] = (BROKER,)
    challenge_metadata: str = METADATA
    refuse_with: str | None = None
    nonce_once: bool = False
    # (url, headers) as each request arrived: httpx resends one Request object.
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def scope_of(self, token: str) -> set[str]:
        """The scope the broker issued a token with (tokens are numbered)."""
        access_forms = [
            form
            for form in self.broker.forms()
            if form["subject_token_type"].endswith(":txn_token")
        ]
        index = int(token.rsplit("-", 1)[1]) - 1
        return set(access_forms[index]["scope"].split())

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer like a gatepass-protected resource."""
        self.seen.append((str(request.url), dict(request.headers)))
        if request.url.path.startswith("/.well-known/oauth-protected-resource"):
            return httpx.Response(
                200,
                json={
                    "resource": self.resource,
                    "authorization_servers": list(self.authorization_servers),
                    "scopes_supported": ["read", "write"],
                },
            )
        authorization = request.headers.get("authorization")
        if authorization is None:
            return self._challenge(401, error=None, scope="read")
        token = authorization.removeprefix("DPoP ")
        if self.nonce_once:
            self.nonce_once = False
            return httpx.Response(
                401,
                headers={
                    "www-authenticate": 'DPoP error="use_dpop_nonce"',
                    "dpop-nonce": "server-nonce",
                },
            )
        if token in self.revoked:
            return self._challenge(401, error=TokenRevokedError("revoked"))
        needed = "read" if request.method == "GET" else "write"
        if self.refuse_with is not None or needed not in self.scope_of(token):
            needed = self.refuse_with or needed
            return self._challenge(
                403, error=InsufficientScopeError("short", scope=needed)
            )
        return httpx.Response(200, json={"token": token})

    def _challenge(
        self,
        status: int,
        *,
        error: TokenRevokedError | InsufficientScopeError | None,
        scope: str | None = None,
    ) -> httpx.Response:
        header = www_authenticate(
            error, scope=scope, resource_metadata=self.challenge_metadata
        )
        return httpx.Response(status, headers={"www-authenticate": header})


@pytest.fixture
def resource(broker: FakeBroker) -> FakeResource:
    """The fake resource server."""
    return FakeResource(broker=broker)


@pytest.fixture
def routed(
    broker: FakeBroker,
    resource: FakeResource,
    identity: AgentIdentity,
    clock: FrozenClock,
) -> tuple[GatepassClient, httpx.Client]:
    """An SDK client and a plain HTTP client, both reaching broker and resource."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "api.example":
            return resource.handle(request)
        return broker.handle(request)

    transport = httpx.MockTransport(handle)
    agent = GatepassClient(
        identity, http=httpx.Client(transport=transport), clock=clock
    )
    return agent, httpx.Client(transport=transport)


def _task(routed: tuple[GatepassClient, httpx.Client]) -> Task:
    task: Task = open_task(routed[0])
    return task


class TestCacheFix:
    """Issue 12: a token the resource refused is not handed out again."""

    def test_issue12_revoked_token_is_dropped_from_the_cache(
        self, routed: tuple[GatepassClient, httpx.Client], resource: FakeResource
    ) -> None:
        """After a 401 invalid_token the next access_token asks the broker."""
        task = _task(routed)
        http = routed[1]
        first = task.access_token(TARGET, "read")
        resource.revoked.add(first.value.reveal())
        assert http.get(DATA, auth=first.auth()).status_code == 401
        assert first.rejected
        second = task.access_token(TARGET, "read")
        assert second is not first
        assert http.get(DATA, auth=second.auth()).status_code == 200

    def test_issue12_the_brokers_denial_surfaces(
        self,
        routed: tuple[GatepassClient, httpx.Client],
        resource: FakeResource,
        broker: FakeBroker,
    ) -> None:
        """A task closed at the broker: the refetch raises the broker's error."""
        task = _task(routed)
        first = task.access_token(TARGET, "read")
        resource.revoked.add(first.value.reveal())
        routed[1].get(DATA, auth=first.auth())
        broker.errors.append(
            (400, {"error": "invalid_grant", "error_description": "task is closed"})
        )
        with pytest.raises(InvalidGrantError, match="task is closed"):
            task.access_token(TARGET, "read")

    def test_other_refusals_keep_the_token(
        self, routed: tuple[GatepassClient, httpx.Client]
    ) -> None:
        """403 insufficient_scope says nothing against the token: it stays cached."""
        task = _task(routed)
        token = task.access_token(TARGET, "read")
        assert routed[1].post(DATA, auth=token.auth()).status_code == 403
        assert not token.rejected
        assert task.access_token(TARGET, "read") is token

    def test_reject_is_idempotent(
        self, routed: tuple[GatepassClient, httpx.Client]
    ) -> None:
        """Rejecting twice drops once and leaves other cached tokens alone."""
        task = _task(routed)
        read = task.access_token(TARGET, "read")
        write = task.access_token(TARGET, "write")
        read.reject()
        read.reject()
        assert task.access_token(TARGET, "write") is write


class TestDiscoveryAndStepUp:
    """ResourceAuth: discovery from the 401, step-up on insufficient_scope."""

    def test_discovers_the_resource_from_the_first_401(
        self, routed: tuple[GatepassClient, httpx.Client], broker: FakeBroker
    ) -> None:
        """Told nothing, the hook learns the resource and the first scope."""
        task = _task(routed)
        auth = ResourceAuth(task)
        response = routed[1].get(DATA, auth=auth)
        assert response.status_code == 200
        assert auth.resource == TARGET
        assert auth.scopes == {"read"}
        assert broker.forms()[-1]["resource"] == TARGET
        # The next request reuses the token: no new discovery, no new token.
        count = len(broker.forms())
        assert routed[1].get(DATA, auth=auth).status_code == 200
        assert len(broker.forms()) == count

    def test_step_up_merges_the_named_scope(
        self, routed: tuple[GatepassClient, httpx.Client], broker: FakeBroker
    ) -> None:
        """403 insufficient_scope write: ask for read+write, retry, succeed."""
        task = _task(routed)
        auth = ResourceAuth(task, resource=TARGET, scopes=["read"])
        assert routed[1].post(DATA, auth=auth).status_code == 200
        assert auth.scopes == {"read", "write"}
        assert broker.forms()[-1]["scope"] == "read write"

    @pytest.mark.parametrize(("demanded", "asks"), [("read", 1), ("write", 2)])
    def test_step_up_never_loops(
        self,
        routed: tuple[GatepassClient, httpx.Client],
        resource: FakeResource,
        broker: FakeBroker,
        demanded: str,
        asks: int,
    ) -> None:
        """A server that refuses whatever it gets is asked at most one step-up."""
        task = _task(routed)
        auth = ResourceAuth(task, resource=TARGET, scopes=["read"])
        resource.refuse_with = demanded
        before = len(broker.forms())
        assert routed[1].get(DATA, auth=auth).status_code == 403
        assert len(broker.forms()) - before == asks

    def test_step_up_denied_returns_the_refusal(
        self,
        routed: tuple[GatepassClient, httpx.Client],
        broker: FakeBroker,
    ) -> None:
        """The policy says no: the 403 comes back and last_error says why."""
        task = _task(routed)
        auth = ResourceAuth(task, resource=TARGET, scopes=["read"])
        assert routed[1].get(DATA, auth=auth).status_code == 200
        broker.errors.append(
            (403, {"error": "access_denied", "error_description": "policy said no"})
        )
        response = routed[1].post(DATA, auth=auth)
        assert response.status_code == 403
        assert isinstance(auth.last_error, AccessDeniedError)
        assert auth.scopes == {"read"}

    def test_revoked_token_is_replaced_once(
        self,
        routed: tuple[GatepassClient, httpx.Client],
        resource: FakeResource,
    ) -> None:
        """401 invalid_token: drop the token, get a new one, retry once."""
        task = _task(routed)
        auth = ResourceAuth(task, resource=TARGET, scopes=["read"])
        first = routed[1].get(DATA, auth=auth).json()["token"]
        resource.revoked.add(first)
        second = routed[1].get(DATA, auth=auth)
        assert second.status_code == 200
        assert second.json()["token"] != first

    def test_closed_task_returns_the_401(
        self,
        routed: tuple[GatepassClient, httpx.Client],
        resource: FakeResource,
    ) -> None:
        """After the task closed, the refusal stands and last_error explains."""
        task = _task(routed)
        auth = ResourceAuth(task, resource=TARGET, scopes=["read"])
        first = routed[1].get(DATA, auth=auth).json()["token"]
        task.close()
        resource.revoked.add(first)
        assert routed[1].get(DATA, auth=auth).status_code == 401
        assert isinstance(auth.last_error, InvalidGrantError)

    def test_nonce_challenge_is_answered(
        self,
        routed: tuple[GatepassClient, httpx.Client],
        resource: FakeResource,
    ) -> None:
        """use_dpop_nonce: retry once with the server's nonce in the proof."""
        task = _task(routed)
        auth = ResourceAuth(task, resource=TARGET, scopes=["read"])
        resource.nonce_once = True
        assert routed[1].get(DATA, auth=auth).status_code == 200
        proofs = [headers["dpop"] for _, headers in resource.seen if "dpop" in headers]
        assert len(proofs) == 2
        assert proofs[0] != proofs[1]

    def test_async_client(
        self,
        resource: FakeResource,
        routed: tuple[GatepassClient, httpx.Client],
    ) -> None:
        """The same flow drives httpx.AsyncClient, broker calls in a thread."""
        task = _task(routed)
        auth = ResourceAuth(task)

        async def handle(request: httpx.Request) -> httpx.Response:
            return resource.handle(request)

        async def go() -> int:
            transport = httpx.MockTransport(handle)
            async with httpx.AsyncClient(transport=transport) as http:
                return (await http.post(DATA, auth=auth)).status_code

        assert anyio.run(go) == 200
        assert auth.scopes == {"read", "write"}
        assert "tsk_" in repr(auth)


class TestDiscoveryRefusals:
    """Metadata the agent must not act on."""

    def test_metadata_for_another_resource(
        self,
        routed: tuple[GatepassClient, httpx.Client],
        resource: FakeResource,
    ) -> None:
        """RFC 9728 §3.3: metadata naming a resource the URL is not within."""
        resource.resource = "https://api.example/other/"
        auth = ResourceAuth(_task(routed))
        assert routed[1].get(DATA, auth=auth).status_code == 401
        assert isinstance(auth.last_error, ConfigurationError)
        assert auth.resource is None

    def test_metadata_naming_another_broker(
        self,
        routed: tuple[GatepassClient, httpx.Client],
        resource: FakeResource,
        broker: FakeBroker,
    ) -> None:
        """A resource guarded by someone else gets no token request."""
        resource.authorization_servers = ("https://other-broker.example",)
        auth = ResourceAuth(_task(routed))
        assert routed[1].get(DATA, auth=auth).status_code == 401
        assert isinstance(auth.last_error, ConfigurationError)
        assert not [f for f in broker.forms() if f.get("resource")]

    def test_metadata_on_another_origin_is_not_fetched(
        self,
        routed: tuple[GatepassClient, httpx.Client],
        resource: FakeResource,
    ) -> None:
        """A challenge pointing elsewhere is ignored; the well-known URL is used."""
        resource.challenge_metadata = "https://evil.example/metadata"
        auth = ResourceAuth(_task(routed))
        assert routed[1].get(DATA, auth=auth).status_code == 200
        fetched = [url for url, _ in resource.seen if "well-known" in url]
        # The path-inserted URL (RFC 9728 §3.1) of the request answered first.
        assert fetched == [METADATA + "/data"]

    def test_no_scope_anywhere(
        self,
        routed: tuple[GatepassClient, httpx.Client],
        resource: FakeResource,
    ) -> None:
        """Without a scope from the agent or the challenge, nothing is asked."""
        auth = ResourceAuth(_task(routed), resource=TARGET)
        original = resource._challenge

        def bare(status: int, *, error: object = None, scope: str | None = None):
            return original(status, error=None)

        resource._challenge = bare  # type: ignore[method-assign]
        assert routed[1].get(DATA, auth=auth).status_code == 401
        assert isinstance(auth.last_error, InvalidScopeError)


_VALUE = st.text(
    alphabet=st.characters(
        min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'
    ),
    max_size=40,
)


class TestReadChallenge:
    """The challenge parser: what gatepass writes, it reads back."""

    @given(
        detail=_VALUE,
        scope=st.lists(st.sampled_from(["read", "write", "admin"]), min_size=1),
    )
    def test_round_trip(self, detail: str, scope: list[str]) -> None:
        """www_authenticate's output parses to the same error, scope and URL."""
        header = www_authenticate(
            InsufficientScopeError(detail or "x"),
            scope=" ".join(scope),
            resource_metadata=METADATA,
        )
        challenge = read_challenge(header)
        assert challenge.scheme == "dpop"
        assert challenge.error == "insufficient_scope"
        assert challenge.params["error_description"] == (detail or "x")
        assert challenge.scopes == set(scope)
        assert challenge.resource_metadata == METADATA

    @given(st.text(max_size=200))
    def test_never_raises(self, header: str) -> None:
        """Any header value reads as some challenge, never an exception."""
        read_challenge(header)

    def test_dpop_challenge_wins(self) -> None:
        """Among several challenges the DPoP one is acted on."""
        challenge = read_challenge(
            'Bearer realm="x", error="bearer_error", DPoP error="invalid_token", '
            'algs="ES256"'
        )
        assert challenge.error == "invalid_token"
        assert read_challenge(None).scheme == ""
        assert read_challenge('Bearer error="x"').error == "x"

    def test_quoted_pairs_are_unquoted(self) -> None:
        """A backslash escapes the next character (RFC 9110 §5.6.4)."""
        assert (
            read_challenge(r'DPoP error_description="a \"b\" c"').params[
                "error_description"
            ]
            == 'a "b" c'
        )


class TestTokenDestination:
    """A token is only ever sent to the resource it names."""

    def test_url_outside_the_resource_gets_no_token(
        self, routed: tuple[GatepassClient, httpx.Client], resource: FakeResource
    ) -> None:
        """A resource of /data/ never sees its token sent to /other."""
        auth = ResourceAuth(_task(routed), resource=DATA + "/", scopes=["read"])
        response = routed[1].get("https://api.example/other", auth=auth)
        assert response.status_code == 401
        assert all("authorization" not in headers for _, headers in resource.seen)
        assert auth.last_error is not None
