"""Content codings: what the proxy asks for and how answers are decoded."""

from __future__ import annotations

import gzip
import itertools
import zlib

import brotli
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.proxy.encodings import (
    PIECE,
    BodyDecoder,
    UndecodableBodyError,
    accept_encoding,
)


def raw_deflate(data: bytes) -> bytes:
    """Deflate without the zlib wrapper, as some servers send it."""
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


CODERS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
}


def decode(header: bytes, encoded: bytes, cuts: list[int]) -> bytes:
    """Decode a body delivered in pieces cut at the given offsets."""
    decoder = BodyDecoder.for_headers([(b"content-encoding", header)])
    bounds = sorted({0, len(encoded), *(c % (len(encoded) + 1) for c in cuts)})
    out = [
        piece
        for start, end in itertools.pairwise(bounds)
        for piece in decoder.feed(encoded[start:end])
    ]
    out.extend(decoder.flush())
    return b"".join(out)


class TestAcceptEncoding:
    """The proxy asks for identity unless the route allows more."""

    def test_identity_by_default(self) -> None:
        """No allowed coding means identity only (RFC 9110 §12.5.3)."""
        assert accept_encoding([]) == b"identity"

    def test_allowed_codings(self) -> None:
        """Allowed codings are listed in order."""
        assert accept_encoding(["gzip", "br"]) == b"gzip, br"


class TestDecoding:
    """Whatever coding comes back is undone before scanning."""

    @given(
        data=st.binary(max_size=5000),
        coding=st.sampled_from(sorted(CODERS)),
        cuts=st.lists(st.integers(min_value=0), max_size=10),
    )
    def test_issue7_1_any_cut_decodes_to_the_body(
        self, data: bytes, coding: str, cuts: list[int]
    ) -> None:
        """gzip, x-gzip, deflate and br decode whatever the read boundaries."""
        assert decode(coding.encode(), CODERS[coding](data), cuts) == data

    def test_raw_deflate_and_stacked_codings(self) -> None:
        """Raw deflate is accepted; stacked codings are undone last first."""
        body = b"stacked " * 1000
        assert decode(b"deflate", raw_deflate(body), [5, 100]) == body
        stacked = brotli.compress(gzip.compress(body))
        assert decode(b"gzip, br", stacked, [3]) == body
        assert decode(b"identity", body, []) == body

    def test_gzip_members_are_all_decoded_and_trailing_bytes_dropped(self) -> None:
        """Every gzip member is read; bytes after the last are never relayed."""
        encoded = gzip.compress(b"one ") + gzip.compress(b"two") + b"junk"
        for cut in range(len(encoded)):
            assert decode(b"gzip", encoded, [cut]) == b"one two"

    def test_output_comes_in_bounded_pieces(self) -> None:
        """A small bomb decodes in pieces, never all at once."""
        bomb = gzip.compress(b"\x00" * (20 * PIECE))
        decoder = BodyDecoder.for_headers([(b"content-encoding", b"gzip")])
        pieces = list(decoder.feed(bomb))
        assert len(pieces) >= 20
        assert max(len(piece) for piece in pieces) <= PIECE

    @pytest.mark.parametrize(
        "header", [b"zstd", b"compress", b"gzip, zstd", b"gzip, gzip, gzip, gzip"]
    )
    def test_issue7_1_undecodable_codings_are_refused(self, header: bytes) -> None:
        """A coding the proxy cannot read is refused before any byte is read."""
        with pytest.raises(UndecodableBodyError):
            BodyDecoder.for_headers([(b"content-encoding", header)])

    @pytest.mark.parametrize("coding", [b"gzip", b"deflate", b"br"])
    def test_corrupt_bytes_are_refused(self, coding: bytes) -> None:
        """Bytes that are not valid for their coding raise, never pass through."""
        with pytest.raises(UndecodableBodyError):
            decode(coding, b"\x00 this is not compressed " * 4, [])

    def test_truncated_body_yields_what_was_decoded(self) -> None:
        """A body cut short decodes as far as it goes; the rest never existed."""
        body = b"truncated answer " * 50
        encoded = zlib.compress(body)[:-8]
        decoded = decode(b"deflate", encoded, [])
        assert body.startswith(decoded)

    def test_unencoded_answer_is_passed_through(self) -> None:
        """Without Content-Encoding the decoder changes nothing."""
        decoder = BodyDecoder.for_headers([(b"content-type", b"text/plain")])
        assert not decoder.encoded
        assert list(decoder.feed(b"plain")) == [b"plain"]
