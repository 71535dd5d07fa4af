"""
The SDK's conversation with the broker: discovery, DPoP-signed posts, errors.

Every broker answer that is not a success becomes the gatepass error of its
``error`` code, so agents catch the same classes the broker raised.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from gatepass.clock import Clock
from gatepass.clock import sleep as pause
from gatepass.errors import (
    ApprovalPendingError,
    ConfigurationError,
    DPoPNonceRequiredError,
    GatepassError,
    error_for_code,
)
from gatepass.tokens import DPoPKey

__all__ = ["BrokerMetadata", "BrokerSession", "error_from_response"]

_METADATA_PATH = "/.well-known/oauth-authorization-server"
_MAX_DESCRIPTION = 300


def error_from_response(response: httpx.Response) -> GatepassError:
    """
    Return the gatepass error a broker answer stands for.

    Args:
        response: a non-2xx response.

    Returns:
        The error of the answer's ``error`` code, with its description.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    code = body.get("error") if isinstance(body, dict) else None
    if not isinstance(code, str):
        return GatepassError(f"broker answered http {response.status_code}")
    description = body.get("error_description") if isinstance(body, dict) else None
    detail = description[:_MAX_DESCRIPTION] if isinstance(description, str) else code
    cls = error_for_code(code)
    if cls is DPoPNonceRequiredError:
        return DPoPNonceRequiredError(
            detail, nonce=response.headers.get("dpop-nonce", "")
        )
    if cls is ApprovalPendingError:
        return _pending(detail, body)
    return cls(detail)


def _pending(detail: str, body: dict[str, object]) -> GatepassError:
    """An ``authorization_pending`` answer, with its polling fields checked."""
    approval_id = body.get("approval_id")
    interval = body.get("interval")
    expires_in = body.get("expires_in")
    if (
        not isinstance(approval_id, str)
        or type(interval) is not int
        or type(expires_in) is not int
    ):
        return GatepassError("broker answered authorization_pending without its fields")
    return ApprovalPendingError(
        detail, approval_id=approval_id, interval=interval, expires_in=expires_in
    )


class BrokerMetadata:
    """
    The parts of the RFC 8414 metadata the SDK uses.

    Args:
        issuer: the broker's issuer URL.
        token_endpoint: where token exchanges go.
    """

    __slots__ = ("issuer", "token_endpoint")

    def __init__(self, issuer: str, token_endpoint: str) -> None:
        """Keep the endpoints."""
        self.issuer = issuer
        self.token_endpoint = token_endpoint


class BrokerSession:
    """
    Talk to one broker: discover its endpoints and send DPoP-signed posts.

    The latest ``DPoP-Nonce`` the broker sent is remembered and put in every proof;
    a ``use_dpop_nonce`` challenge is answered by retrying once (RFC 9449 §8).

    Args:
        broker_url: the broker's issuer URL.
        http: the HTTP client.
        clock: the time source for proofs.
        sleep: pauses between polls for an approval (tests pass a fake).
    """

    def __init__(
        self,
        broker_url: str,
        *,
        http: httpx.Client,
        clock: Clock,
        sleep: Callable[[float], None] = pause,
    ) -> None:
        """Keep the configuration; nothing is fetched yet."""
        self.broker_url = broker_url.rstrip("/")
        self.http = http
        self.clock = clock
        self.sleep = sleep
        self._metadata: BrokerMetadata | None = None
        self._nonce: str | None = None
        self._lock = threading.Lock()

    @property
    def nonce(self) -> str | None:
        """The latest ``DPoP-Nonce`` the broker sent, if any."""
        return self._nonce

    def metadata(self) -> BrokerMetadata:
        """
        Return the broker's endpoints, fetching them once.

        Raises:
            ConfigurationError: the metadata is missing or names another issuer.
            GatepassError: the broker cannot be reached.
        """
        with self._lock:
            if self._metadata is None:
                self._metadata = self._discover()
            return self._metadata

    def _discover(self) -> BrokerMetadata:
        response = self._send(
            lambda: self.http.get(
                self.broker_url + _METADATA_PATH,
                headers={"Accept": "application/json"},
            )
        )
        if response.status_code != httpx.codes.OK:
            raise ConfigurationError(
                f"broker metadata unavailable (http {response.status_code})"
            )
        try:
            document = response.json()
        except ValueError:
            raise ConfigurationError("broker metadata is not json") from None
        if not isinstance(document, dict):
            raise ConfigurationError("broker metadata is not a json object")
        issuer = document.get("issuer")
        endpoint = document.get("token_endpoint")
        # RFC 8414 §3.3: the issuer must be the URL the metadata was fetched for, or
        # an attacker's metadata could redirect the agent's credentials.
        if not isinstance(issuer, str) or issuer.rstrip("/") != self.broker_url:
            raise ConfigurationError("broker metadata names another issuer")
        if not isinstance(endpoint, str) or not endpoint.startswith(
            ("https://", "http://")
        ):
            raise ConfigurationError("broker metadata has no valid token endpoint")
        return BrokerMetadata(issuer=issuer, token_endpoint=endpoint)

    def _send(self, request: Callable[[], httpx.Response]) -> httpx.Response:
        try:
            response = request()
        except httpx.HTTPError as error:
            raise GatepassError(
                f"broker unreachable ({type(error).__name__})"
            ) from error
        fresh = response.headers.get("dpop-nonce")
        if fresh:
            self._nonce = fresh
        return response

    def post(
        self,
        url: str,
        key: DPoPKey,
        *,
        data: Callable[[], Mapping[str, str]] | None = None,
        access_token: str | None = None,
        json_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """
        Post a DPoP-signed request, answering one nonce challenge.

        Args:
            url: the endpoint.
            key: the task's DPoP key.
            data: builds the form body; called again for the retry, so single-use
                values such as assertions are fresh each time.
            access_token: sent as ``Authorization: DPoP`` and bound with ``ath``.
            json_body: a JSON body, instead of a form.
            headers: extra request headers (``Idempotency-Key``).

        Returns:
            The successful response.

        Raises:
            GatepassError: the error class of the broker's answer.
        """
        extra = dict(headers or {})
        response = self._post_once(url, key, data, access_token, json_body, extra=extra)
        if response.is_success:
            return response
        error = error_from_response(response)
        if not isinstance(error, DPoPNonceRequiredError) or not error.nonce:
            raise error
        # RFC 9449 §8: retry once with the nonce the challenge carried.
        self._nonce = error.nonce
        response = self._post_once(url, key, data, access_token, json_body, extra=extra)
        if not response.is_success:
            raise error_from_response(response)
        return response

    def _post_once(
        self,
        url: str,
        key: DPoPKey,
        data: Callable[[], Mapping[str, str]] | None,
        access_token: str | None,
        json_body: Mapping[str, Any] | None = None,
        *,
        extra: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        headers = {
            **(extra or {}),
            "Accept": "application/json",
            "DPoP": key.proof(
                "POST",
                url,
                access_token=access_token,
                nonce=self._nonce,
                now=self.clock.now(),
            ),
        }
        if access_token is not None:
            headers["Authorization"] = f"DPoP {access_token}"
        if json_body is not None:
            body = dict(json_body)
            return self._send(lambda: self.http.post(url, json=body, headers=headers))
        form = dict(data()) if data is not None else None
        return self._send(lambda: self.http.post(url, data=form, headers=headers))
