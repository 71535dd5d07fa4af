"""Gatepass-Signature: what gatepass signs verifies, and nothing else does."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.approvals.webhooks import signature_header, verify_signature
from gatepass.errors import WebhookSignatureError
from gatepass.secret import Secret

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
T = int(NOW.timestamp())
secrets = st.text(min_size=1, max_size=40)
bodies = st.binary(max_size=300)
times = st.integers(min_value=0, max_value=10**12 - 1)


class TestRoundTrip:
    """A header gatepass made verifies with the same secret."""

    @given(secrets, bodies, times)
    def test_sign_then_verify(self, secret: str, body: bytes, at: int) -> None:
        """Any secret, body and time: the header verifies and names its time."""
        header = signature_header(Secret(secret), body, at)
        assert verify_signature(secret, header, body, at) == at
        assert verify_signature(secret.encode(), header, body, float(at)) == at

    def test_format(self) -> None:
        """The header is t=<seconds>,v1=<64 hex digits>."""
        header = signature_header("k", b"{}", NOW)
        t, v1 = header.split(",")
        assert t == f"t={T}"
        assert v1.startswith("v1=")
        assert len(v1) == 3 + 64

    def test_several_v1_one_good(self) -> None:
        """A header with an old and a new signature verifies with either secret."""
        body = b'{"event":"approval.requested"}'
        old = signature_header("old", body, NOW)
        new = signature_header("new", body, NOW)
        header = f"{old},{new.split(',')[1]}"
        assert verify_signature("old", header, body, NOW) == T
        assert verify_signature("new", header, body, NOW) == T

    def test_unknown_schemes_are_ignored(self) -> None:
        """A future v2 beside v1 does not break the check."""
        header = signature_header("k", b"x", NOW) + ",v2=whatever"
        assert verify_signature("k", header, b"x", NOW) == T


class TestRefusals:
    """Every way a delivery can be forged or replayed is refused."""

    @given(secrets, bodies.filter(bool), st.data())
    def test_tampered_body_fails(
        self, secret: str, body: bytes, data: st.DataObject
    ) -> None:
        """Changing any byte of the body breaks the signature."""
        header = signature_header(secret, body, NOW)
        index = data.draw(st.integers(0, len(body) - 1))
        flip = data.draw(st.integers(1, 255))
        tampered = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
        with pytest.raises(WebhookSignatureError):
            verify_signature(secret, header, tampered, NOW)

    @given(secrets, secrets, bodies)
    def test_wrong_secret_fails(self, secret: str, other: str, body: bytes) -> None:
        """Another secret never verifies."""
        if other == secret:
            return
        header = signature_header(secret, body, NOW)
        with pytest.raises(WebhookSignatureError):
            verify_signature(other, header, body, NOW)

    @given(st.integers(301, 10**8), st.sampled_from([-1, 1]))
    def test_stale_or_future_timestamp_fails(self, distance: int, sign: int) -> None:
        """A timestamp beyond the tolerance, past or future, is refused."""
        header = signature_header("k", b"x", T + sign * distance)
        with pytest.raises(WebhookSignatureError, match="tolerance"):
            verify_signature("k", header, b"x", NOW)

    @given(st.integers(-300, 300))
    def test_within_tolerance_passes(self, distance: int) -> None:
        """Clocks up to five minutes apart agree."""
        header = signature_header("k", b"x", T + distance)
        assert verify_signature("k", header, b"x", NOW) == T + distance

    def test_replayed_with_a_fresh_timestamp_fails(self) -> None:
        """Swapping t for a current one breaks the signature (t is signed)."""
        header = signature_header("k", b"x", T - 3600)
        forged = f"t={T}," + header.split(",")[1]
        with pytest.raises(WebhookSignatureError, match="does not match"):
            verify_signature("k", forged, b"x", NOW)

    @pytest.mark.parametrize(
        "header",
        [
            None,
            "",
            "garbage",
            f"t={T}",
            "v1=" + "0" * 64,
            f"t={T},t={T},v1=" + "0" * 64,
            f"t=-{T},v1=" + "0" * 64,
            f"t={T}.5,v1=" + "0" * 64,
            f"t={T},=x",
            f"t={T},v1=" + "A" * 64,
            f"t={T},v1=" + "0" * 63,
            f"t={T}," + ",".join(["v1=" + "0" * 64] * 40),
        ],
    )
    def test_malformed_headers_fail(self, header: str | None) -> None:
        """Missing, malformed, oversized or unsigned headers are refused."""
        with pytest.raises(WebhookSignatureError):
            verify_signature("k", header, b"x", NOW)

    @given(st.text(max_size=200))
    def test_arbitrary_header_never_verifies(self, header: str) -> None:
        """Any text is refused with WebhookSignatureError, never another error."""
        with pytest.raises(WebhookSignatureError):
            verify_signature("k", header, b"x", NOW)

    def test_error_carries_no_secret(self) -> None:
        """The refusal's message names neither the secret nor the expected MAC."""
        expected = signature_header("hunter2-secret", b"x", NOW).split("v1=")[1]
        with pytest.raises(WebhookSignatureError) as caught:
            verify_signature("hunter2-secret", f"t={T},v1=" + "0" * 64, b"x", NOW)
        assert "hunter2" not in str(caught.value)
        assert expected not in str(caught.value)
        assert caught.value.code == "invalid_signature"
        assert caught.value.http_status == 401
