r"""
Finding a route's secret in what the upstream answers, however it is spelled.

An upstream that reflects the credential it received (an echo endpoint, an error
page quoting the request, a debug header) hands the secret to the agent. The
reflection is rarely raw: it is base64 in a JSON field, hex in a log excerpt,
percent-encoded in a redirect. :class:`SecretScanner` searches for every spelling
of each *plaintext* it is given (the secret, and what was injected when that is not
a superstring of it, such as basic auth's base64 credentials):

- raw, and JSON-string escaped (``\"``, ``\\``, ``\/``);
- percent-encoded, fully (``safe=""``), as a path (``safe="/"``) and as a form
  (``+`` for space), in either case of hex digit; and each base64 form below
  percent-encoded too;
- base64 and base64url, in each of the three alignments: a plaintext inside a
  longer encoded string shows as one of three substrings (RFC 4648 §4 and §5 encode
  3 bytes in 4 characters), which is exactly what is searched, so
  ``base64("Bearer " + secret)`` and ``base64("user:" + secret)`` are found too;
- hex, in any mix of upper and lower case (RFC 4648 §8).

A streamed body is scanned with :class:`StreamScan`, which holds back only the
bytes at the end of a chunk that could begin a spelling, so a secret split across
chunks is found before any of its bytes are relayed, while ordinary data (an
event stream) flows without delay.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = ["MIN_ENCODED_FORM", "SecretFoundError", "SecretScanner", "StreamScan"]

# Encoded forms shorter than this are not searched: they would match ordinary
# text. A secret of at least 8 bytes has every form longer than this.
MIN_ENCODED_FORM = 6
# RFC 4648 §4: the characters of encoded bytes, before and after a plaintext that
# starts at offset 0, 1 or 2 of a 3-byte group, depend on the neighbouring bytes;
# these are how many characters to drop at the start ...
_LEADING_MIXED = (0, 2, 3)
# ... and how many characters of the last, partial group depend only on the
# plaintext, by the number of plaintext bytes in it.
_TRAILING_PURE = (0, 1, 2)
_URL_SAFE = bytes.maketrans(b"+/", b"-_")


class SecretFoundError(Exception):
    """A spelling of the secret was found; the data must not be relayed."""


def _base64_forms(plaintext: bytes) -> set[bytes]:
    forms: set[bytes] = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\x00" * offset + plaintext).rstrip(b"=")
        total = offset + len(plaintext)
        end = (total // 3) * 4 + _TRAILING_PURE[total % 3]
        form = encoded[_LEADING_MIXED[offset] : end]
        forms.add(form)
        forms.add(form.translate(_URL_SAFE))
    return forms


def _text(plaintext: bytes) -> str:
    # Secrets are UTF-8 (compartments load them so); other bytes map one to one.
    try:
        return plaintext.decode("utf-8")
    except UnicodeDecodeError:
        return plaintext.decode("latin-1")


def _json_forms(text: str) -> set[bytes]:
    # RFC 8259 §7: escaped quotes, backslashes and controls, non-ASCII as \u
    # escapes or not, and "\/" as some encoders write "/".
    forms = {json.dumps(text, ensure_ascii=flag)[1:-1] for flag in (True, False)}
    forms |= {form.replace("/", "\\/") for form in forms}
    return {form.encode() for form in forms}


def _percent_forms(text: str) -> set[bytes]:
    spelled = {quote(text, safe=""), quote(text), quote_plus(text)}
    return {form.lower().encode() for form in spelled if form != text}


class SecretScanner:
    """
    Every spelling of some plaintexts; tells whether data holds one.

    Args:
        plaintexts: the secret and the injected values that do not contain it.

    Raises:
        ValueError: no plaintext, or an empty one.
    """

    __slots__ = ("_exact", "_folded", "_longest")

    def __init__(self, plaintexts: Iterable[bytes]) -> None:
        """Compute the spellings once, at start."""
        raw: set[bytes] = set()
        exact: set[bytes] = set()
        folded: set[bytes] = set()
        for plaintext in plaintexts:
            if not plaintext:
                raise ValueError("an empty plaintext cannot be scanned for")
            text = _text(plaintext)
            raw.add(plaintext)
            exact.update(_json_forms(text))
            encoded = _base64_forms(plaintext)
            exact.update(encoded)
            folded.add(plaintext.hex().encode())
            folded.update(_percent_forms(text))
            for form in encoded:
                folded.update(_percent_forms(form.decode("ascii")))
        if not raw:
            raise ValueError("nothing to scan for")
        # A raw plaintext is always searched for, however short.
        self._exact = tuple(
            sorted(raw | {form for form in exact if len(form) >= MIN_ENCODED_FORM})
        )
        self._folded = tuple(
            sorted(form for form in folded if len(form) >= MIN_ENCODED_FORM)
        )
        self._longest = max(len(form) for form in (*self._exact, *self._folded))

    def __repr__(self) -> str:
        """Show how many spellings are searched, never one of them."""
        return f"SecretScanner(forms={len(self._exact) + len(self._folded)})"

    def __reduce__(self) -> str:
        """Refuse to be pickled, so the spellings never land in a cache or queue."""
        raise TypeError("secret scanners cannot be pickled")

    @property
    def longest(self) -> int:
        """The length of the longest spelling, in bytes."""
        return self._longest

    def forms(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """
        Return the spellings, for redacting logs by value.

        Returns:
            The case-sensitive spellings and the lower-case spellings that match in
            any case.
        """
        return (
            tuple(_text(form) for form in self._exact),
            tuple(_text(form) for form in self._folded),
        )

    def found(self, data: bytes | str) -> bool:
        """
        Tell whether data holds a spelling of a plaintext.

        Args:
            data: a body, a part of one, or a header name or value.

        Returns:
            True if any spelling occurs in ``data``.
        """
        raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
        return self._hit(raw, raw.lower())

    def stream(self) -> StreamScan:
        """Return a scan for one streamed body."""
        return StreamScan(self)

    def _hit(self, data: bytes, lowered: bytes) -> bool:
        return any(form in data for form in self._exact) or any(
            form in lowered for form in self._folded
        )

    def _safe_end(self, data: bytes, lowered: bytes) -> int:
        # The earliest offset from which the rest of data is the start of some
        # spelling: everything before it can never be part of a match.
        end = len(data)
        for forms, view in ((self._exact, data), (self._folded, lowered)):
            for form in forms:
                low = max(0, len(view) - len(form) + 1)
                position = view.find(form[:1], low, end)
                while position != -1:
                    if form.startswith(view[position:]):
                        end = position
                        break
                    position = view.find(form[:1], position + 1, end)
        return end


class StreamScan:
    """
    Scans one streamed body, chunk by chunk, across chunk boundaries.

    Args:
        scanner: the route's scanner.
    """

    __slots__ = ("_held", "_scanner")

    def __init__(self, scanner: SecretScanner) -> None:
        """Start with nothing held back."""
        self._scanner = scanner
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        """
        Scan the next chunk and return what may be relayed now.

        Args:
            chunk: the next decoded bytes of the body.

        Returns:
            The bytes that can no longer be part of a spelling; the rest is held
            until the next chunk or :meth:`finish`.

        Raises:
            SecretFoundError: the held bytes and this chunk hold a spelling.
        """
        data = self._held + chunk
        lowered = data.lower()
        if self._scanner._hit(data, lowered):  # noqa: SLF001 - one concept, two classes
            self._held = b""
            raise SecretFoundError
        end = self._scanner._safe_end(data, lowered)  # noqa: SLF001
        self._held = data[end:]
        return data[:end]

    def finish(self) -> bytes:
        """
        End the body.

        Returns:
            The bytes still held: the start of a spelling that never completed.
        """
        held, self._held = self._held, b""
        return held
