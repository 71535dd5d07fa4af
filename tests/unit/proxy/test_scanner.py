"""The response scanner: every spelling of the secret, across chunk boundaries."""

from __future__ import annotations

import base64
import itertools
import pickle
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.proxy.scanner import SecretFoundError, SecretScanner

from .conftest import CANARY, CompartmentFactory

SECRET = b"gp-canary-0123456789abcdef"
secrets_ = st.binary(min_size=8, max_size=48)
filler = st.binary(max_size=40)


def encodings(plaintext: bytes) -> list[bytes]:
    """The whole-string encodings an upstream might reflect."""
    return [
        plaintext,
        base64.b64encode(plaintext),
        base64.urlsafe_b64encode(plaintext).rstrip(b"="),
        plaintext.hex().encode(),
        plaintext.hex().upper().encode(),
    ]


def relay(scanner: SecretScanner, data: bytes, cuts: list[int]) -> tuple[bytes, bool]:
    """Stream data through a scan in pieces; return what was relayed and if it hit."""
    scan = scanner.stream()
    relayed = b""
    bounds = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    try:
        for start, end in itertools.pairwise(bounds):
            relayed += scan.feed(data[start:end])
        relayed += scan.finish()
    except SecretFoundError:
        return relayed, True
    return relayed, False


class TestSpellings:
    """Each encoded form of what was injected is found."""

    @given(secret=secrets_, before=filler, after=filler)
    def test_issue7_2_embedded_encodings_are_found(
        self, secret: bytes, before: bytes, after: bytes
    ) -> None:
        """Base64 (any alignment), base64url and hex of a longer string are found."""
        scanner = SecretScanner([secret])
        for encoded in encodings(before + secret + after):
            assert scanner.found(b"<" + encoded + b">")

    @pytest.mark.parametrize(
        "plaintext",
        [b"Bearer " + SECRET, b"svc:" + SECRET, b"key=" + SECRET],
    )
    def test_issue7_2_injected_forms_are_found(self, plaintext: bytes) -> None:
        """Base64 and hex of "Bearer <secret>" and "user:<secret>" are found."""
        scanner = SecretScanner([SECRET])
        for encoded in encodings(plaintext):
            assert scanner.found(encoded)

    def test_issue7_2_mixed_case_hex_and_percent_are_found(self) -> None:
        """Hex and percent-escapes match in any letter case."""
        secret = b"s3cr3t/with+reserved=chars"
        scanner = SecretScanner([secret])
        mixed = "".join(c.upper() if i % 2 else c for i, c in enumerate(secret.hex()))
        assert scanner.found(mixed.encode())
        assert scanner.found(quote(secret, safe="").lower().encode())
        assert scanner.found(quote(secret).encode())
        assert scanner.found(b'"' + secret.replace(b"/", b"\\/") + b'"')

    def test_percent_encoded_base64_is_found(self) -> None:
        """A base64 form in a URL (its + / = escaped) is found."""
        secret = b"\xfb\xff\xfe-secret-bytes-\xfb\xff"
        scanner = SecretScanner([secret])
        assert scanner.found(quote(base64.b64encode(secret), safe="").encode())

    def test_unrelated_data_is_not_flagged(self) -> None:
        """Text that holds no spelling passes."""
        scanner = SecretScanner([SECRET])
        assert not scanner.found(b"hello world " * 100)
        assert not scanner.found(SECRET[:-1])

    def test_empty_plaintext_is_refused(self) -> None:
        """A scanner needs something to look for."""
        with pytest.raises(ValueError, match="empty"):
            SecretScanner([b""])
        with pytest.raises(ValueError, match="nothing"):
            SecretScanner([])

    def test_repr_and_pickle_hide_the_spellings(self) -> None:
        """The scanner never shows or serializes what it searches for."""
        scanner = SecretScanner([SECRET])
        assert SECRET.decode() not in repr(scanner)
        with pytest.raises(TypeError):
            pickle.dumps(scanner)


class TestStreamScan:
    """A streamed body is scanned across chunks and relayed unchanged otherwise."""

    @given(
        secret=secrets_,
        before=st.binary(max_size=200),
        after=st.binary(max_size=200),
        form=st.integers(min_value=0, max_value=4),
        cuts=st.lists(st.integers(min_value=0), max_size=12),
    )
    def test_issue7_2_split_secret_is_caught_before_any_of_it_is_relayed(
        self, secret: bytes, before: bytes, after: bytes, form: int, cuts: list[int]
    ) -> None:
        """However it is cut, a spelling is found and none of it was relayed."""
        scanner = SecretScanner([secret])
        encoded = encodings(secret)[form]
        relayed, hit = relay(scanner, before + encoded + after, cuts)
        assert hit
        assert not scanner.found(relayed)
        assert encoded not in relayed

    @given(
        data=st.binary(max_size=2000),
        cuts=st.lists(st.integers(min_value=0), max_size=20),
    )
    def test_clean_stream_is_relayed_whole(self, data: bytes, cuts: list[int]) -> None:
        """Data without a spelling comes out exactly as it went in."""
        scanner = SecretScanner([SECRET])
        if scanner.found(data):
            return
        relayed, hit = relay(scanner, data, cuts)
        assert not hit
        assert relayed == data

    def test_only_a_possible_start_is_held_back(self) -> None:
        """An event stream flows: only bytes that could begin a spelling wait."""
        scan = SecretScanner([SECRET]).stream()
        assert scan.feed(b"data: tick\n\n") == b"data: tick\n\n"
        assert scan.feed(b"data: gp-can") == b"data: "
        assert scan.feed(b"yon\n\n") == b"gp-canyon\n\n"
        assert scan.finish() == b""


class TestCompartmentScanning:
    """A compartment scans for its own secret's spellings."""

    @pytest.mark.parametrize("method", ["header", "bearer", "basic", "query"])
    def test_issue7_2_every_method_scans_its_injected_value(
        self, make_compartment: CompartmentFactory, method: str
    ) -> None:
        """The injected value of each method, base64'd or hex'd, is found."""
        compartment = make_compartment(
            method, username="svc" if method == "basic" else None
        )
        headers, query = compartment.apply([], "")
        injected = headers[0][1] if headers else query.encode()
        for encoded in encodings(injected):
            assert compartment.contains_secret(encoded)
        assert compartment.contains_secret(base64.b64encode(b"svc:" + CANARY.encode()))

    def test_redaction_forms_hold_the_secret(
        self, make_compartment: CompartmentFactory
    ) -> None:
        """The forms handed to the log scrubber include the raw and hex secret."""
        exact, folded = make_compartment("query").redaction_forms()
        assert CANARY in exact
        assert CANARY.encode().hex() in folded
