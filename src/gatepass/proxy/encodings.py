"""
Content codings: what the proxy asks its upstream for, and how it undoes them.

The proxy scans every answer for its route's secret before the agent sees it. A
scanner that reads gzip bytes sees nothing, while the agent's client decompresses
the secret in clear. So the proxy controls ``Accept-Encoding`` toward the upstream
(``identity`` unless the route lists codings it may ask for), and whatever coding
comes back anyway is decoded *before* scanning: the agent receives the decoded
bytes, without ``Content-Encoding``, so it sees exactly what was scanned. A coding
the proxy cannot decode is refused, never relayed unread.

Decoding is incremental and bounded: each step yields a piece of about
:data:`PIECE` bytes, so a small compressed body cannot make one step allocate
gigabytes (a
decompression bomb still streams, but through the same size limits as any body).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

import brotli

__all__ = [
    "DECODABLE_ENCODINGS",
    "PIECE",
    "BodyDecoder",
    "UndecodableBodyError",
    "accept_encoding",
]

Header = tuple[bytes, bytes]

# RFC 9110 §8.4.1: gzip (and its old alias x-gzip) and deflate; RFC 7932: br.
DECODABLE_ENCODINGS = frozenset({"gzip", "deflate", "br"})
_ALIASES = {"x-gzip": "gzip"}
# More stacked codings than this are not something a real server sends.
MAX_LAYERS = 3
PIECE = 65_536
_GZIP_MAGIC = b"\x1f\x8b"


class UndecodableBodyError(Exception):
    """The answer uses a coding the proxy cannot decode, or its bytes are corrupt."""


def accept_encoding(allowed: Sequence[str]) -> bytes:
    """
    Return the ``Accept-Encoding`` value the proxy sends upstream.

    Args:
        allowed: the codings the route lets the proxy ask for (all decodable).

    Returns:
        ``identity`` when the route allows none (RFC 9110 §12.5.3: only the
        unencoded form is acceptable), otherwise the allowed codings.
    """
    return ", ".join(allowed).encode("ascii") if allowed else b"identity"


class _Layer(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...

    def flush(self) -> Iterator[bytes]: ...


class _ZlibLayer:
    """gzip (every member) or deflate (zlib-wrapped, or raw as some servers send)."""

    def __init__(self, coding: str) -> None:
        self._gzip = coding == "gzip"
        self._wbits = 16 + zlib.MAX_WBITS if self._gzip else zlib.MAX_WBITS
        self._state: zlib._Decompress | None = zlib.decompressobj(self._wbits)
        self._started = False
        self._done = False
        self._between = b""

    def feed(self, data: bytes) -> Iterator[bytes]:
        while not self._done:
            if self._state is None:
                data = self._next_member(data)
                if self._state is None:
                    return
            out, data, ended = self._step(self._state, data)
            if out:
                yield out
            if not ended and not data and len(out) < PIECE:
                # All input consumed and no output left over for now.
                return

    def _next_member(self, data: bytes) -> bytes:
        # Between two gzip members: another member, or the end. The magic number
        # may arrive split across reads.
        data, self._between = self._between + data, b""
        if len(data) < len(_GZIP_MAGIC):
            self._between = data
        elif data.startswith(_GZIP_MAGIC):
            self._state = zlib.decompressobj(self._wbits)
        else:
            self._done = True
        return data

    def _step(self, state: zlib._Decompress, data: bytes) -> tuple[bytes, bytes, bool]:
        try:
            out = state.decompress(data, PIECE)
        except zlib.error:
            if self._gzip or self._started:
                raise UndecodableBodyError from None
            # RFC 9110 §8.4.1.2 says zlib format, but some servers send raw
            # deflate: read the first bytes again as raw.
            self._started = True
            self._wbits = -zlib.MAX_WBITS
            self._state = zlib.decompressobj(self._wbits)
            return b"", data, False
        self._started = True
        rest = state.unconsumed_tail
        if not state.eof:
            return out, rest, False
        # What follows the last gzip member (or a deflate stream) is never decoded,
        # so it is never relayed either.
        self._state = None
        self._done = not self._gzip
        return out, state.unused_data + rest, True

    def flush(self) -> Iterator[bytes]:
        if self._state is not None and not self._done:
            try:
                rest = self._state.flush()
            except zlib.error:
                raise UndecodableBodyError from None
            if rest:
                yield rest


class _BrotliLayer:
    """Brotli (RFC 7932)."""

    def __init__(self) -> None:
        self._state = brotli.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            out: bytes = self._state.process(data, output_buffer_limit=PIECE)
            # The limit is where the output buffer stops growing; what did not fit
            # comes from further calls without input.
            while out:
                yield out
                out = self._state.process(b"", output_buffer_limit=PIECE)
        except brotli.error:
            raise UndecodableBodyError from None

    def flush(self) -> Iterator[bytes]:
        return iter(())


def _codings(headers: Iterable[Header]) -> list[str]:
    codings: list[str] = []
    for name, value in headers:
        if name.lower() != b"content-encoding":
            continue
        for part in value.decode("latin-1").split(","):
            coding = part.strip().lower()
            if coding and coding != "identity":
                codings.append(_ALIASES.get(coding, coding))
    return codings


class BodyDecoder:
    """
    Undoes an answer's content codings, in pieces of about :data:`PIECE` bytes.

    Build it with :meth:`for_headers`.

    Args:
        codings: the codings in the order the upstream applied them.
    """

    __slots__ = ("_codings", "_layers")

    def __init__(self, codings: Sequence[str]) -> None:
        """Set up one decoder per coding, last applied first undone."""
        self._codings = tuple(codings)
        self._layers: list[_Layer] = [
            _BrotliLayer() if coding == "br" else _ZlibLayer(coding)
            for coding in reversed(codings)
        ]

    @classmethod
    def for_headers(cls, headers: Iterable[Header]) -> BodyDecoder:
        """
        Return the decoder for an answer's ``Content-Encoding``.

        Args:
            headers: the upstream's response headers.

        Returns:
            The decoder; one that passes bytes through for an unencoded answer.

        Raises:
            UndecodableBodyError: a coding the proxy cannot decode, or more than
                :data:`MAX_LAYERS` of them.
        """
        codings = _codings(headers)
        if len(codings) > MAX_LAYERS or not set(codings) <= DECODABLE_ENCODINGS:
            raise UndecodableBodyError
        return cls(codings)

    @property
    def encoded(self) -> bool:
        """Whether the answer had a content coding (its headers must change)."""
        return bool(self._codings)

    def feed(self, data: bytes) -> Iterator[bytes]:
        """
        Decode the next part of the body.

        Args:
            data: the next raw bytes from the upstream.

        Yields:
            Decoded pieces.

        Raises:
            UndecodableBodyError: the bytes are not valid for their coding.
        """
        yield from self._through(0, [data])

    def flush(self) -> Iterator[bytes]:
        """
        Decode what the decoders still hold at the end of the body.

        Yields:
            The last decoded pieces.

        Raises:
            UndecodableBodyError: the bytes are not valid for their coding.
        """
        for index, layer in enumerate(self._layers):
            yield from self._through(index + 1, layer.flush())

    def _through(self, start: int, pieces: Iterable[bytes]) -> Iterator[bytes]:
        # Chained generators: each piece goes through the remaining layers lazily,
        # so no layer ever holds more than a piece of output at once.
        stream: Iterable[bytes] = pieces
        for layer in self._layers[start:]:
            stream = _feed_all(layer, stream)
        yield from stream


def _feed_all(layer: _Layer, pieces: Iterable[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield from layer.feed(piece)
