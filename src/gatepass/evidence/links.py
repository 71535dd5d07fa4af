"""
Hash-only links: how a bundle chains through records it must not disclose.

A record's chain hash is ``sha256(canonical_bytes(fields))``, and in that
encoding (keys sorted) the previous record's hash sits near the end::

    {"actor":…,"data":…,"outcome":…,"prev_hash":"<hex>","seq":N,"subject":"…"}
    └──── head: absorbed blocks + tail ───────┘└prev┘└────── suffix ──────┘

A :class:`Link` carries the SHA-256 state after the head's whole 64-byte blocks
(``state``, ``absorbed``), the head's remaining bytes (``tail``, 14 to 77 bytes,
always ending ``,"prev_hash":"``), and the record's ``seq`` and ``subject``, from
which the verifier rebuilds the suffix. The verifier finishes the hash with the
*previous* entry's hash in the middle: the link verifies only if the record really
named that hash as its ``prev_hash``. The ``seq`` is bound the same way, because it
is hashed. What a link discloses: seq, subject (an id), the tail (the end of the
kind and the outcome, and when those are short the last bytes of the data), and
the record's length rounded to 64 bytes. Never its time, actor or data.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Self

from gatepass.audit import AuditRecord, canonical_bytes, format_timestamp
from gatepass.errors import AuditIntegrityError
from gatepass.evidence.sha256 import BLOCK_BYTES, midstate, resume

__all__ = ["PREV_HASH_MARKER", "Link", "link_of"]

PREV_HASH_MARKER: Final = b',"prev_hash":"'
_HEX_HASH = re.compile(r"[0-9a-f]{64}")
_MAX_TAIL: Final = len(PREV_HASH_MARKER) + BLOCK_BYTES - 1
_MAX_SUBJECT: Final = 200


def _suffix(seq: int, subject: str) -> bytes:
    # The bytes canonical_bytes writes after the prev_hash value; rebuilt by the
    # verifier, never taken from the bundle.
    subject_json = json.dumps(subject, ensure_ascii=False)
    return f'","seq":{seq},"subject":{subject_json}}}'.encode()


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    return base64.b64decode(padded, altchars=b"-_", validate=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """
    A record represented by what chains it, not by what it says.

    Args:
        seq: the record's seq.
        subject: the record's subject (an id; hashed, so it must be given).
        state: the SHA-256 state after ``absorbed`` bytes, 64 hex characters.
        absorbed: how many leading bytes the state covers (a multiple of 64).
        tail: the bytes between those and the prev_hash value.
        hash: the record's chain hash, as the bundle states it.
    """

    seq: int
    subject: str
    state: str
    absorbed: int
    tail: bytes
    hash: str

    def chained_hash(self, prev_hash: str) -> str:
        """
        Return the hash the record has if its ``prev_hash`` is ``prev_hash``.

        Args:
            prev_hash: the hash of the entry before this one in the bundle.
        """
        words = tuple(
            int(self.state[i : i + 8], 16) for i in range(0, len(self.state), 8)
        )
        rest = self.tail + prev_hash.encode("ascii") + _suffix(self.seq, self.subject)
        return resume(words, self.absorbed, rest).hex()

    def to_json(self) -> dict[str, Any]:
        """Return the link as a JSON object (``tail`` in unpadded base64url)."""
        return {
            "seq": self.seq,
            "subject": self.subject,
            "state": self.state,
            "absorbed": self.absorbed,
            "tail": _b64url(self.tail),
            "hash": self.hash,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Self:
        """
        Read a link written by :meth:`to_json`.

        Raises:
            AuditIntegrityError: a field is missing, of the wrong type or form.
        """
        seq = obj.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise AuditIntegrityError("malformed link: seq is not a positive integer")
        where = f"malformed link at seq {seq}"
        subject, state, absorbed = (
            obj.get("subject"),
            obj.get("state"),
            obj.get("absorbed"),
        )
        if not isinstance(subject, str) or len(subject) > _MAX_SUBJECT:
            raise AuditIntegrityError(f"{where}: subject is not a short string")
        if not isinstance(state, str) or not _HEX_HASH.fullmatch(state):
            raise AuditIntegrityError(f"{where}: state is not 64 hex characters")
        if (
            not isinstance(absorbed, int)
            or isinstance(absorbed, bool)
            or absorbed < 0
            or absorbed % BLOCK_BYTES
        ):
            raise AuditIntegrityError(f"{where}: absorbed is not a multiple of 64")
        hash_, tail_text = obj.get("hash"), obj.get("tail")
        if not isinstance(hash_, str) or not _HEX_HASH.fullmatch(hash_):
            raise AuditIntegrityError(f"{where}: hash is not a sha-256 hex digest")
        if not isinstance(tail_text, str) or len(tail_text) > 2 * _MAX_TAIL:
            raise AuditIntegrityError(f"{where}: tail is not a short string")
        try:
            tail = _unb64url(tail_text)
        except (binascii.Error, ValueError) as exc:
            raise AuditIntegrityError(f"{where}: tail is not base64url") from exc
        # The tail must end just before the top-level prev_hash value; the suffix
        # the verifier appends closes exactly one object, so the hash in the middle
        # can only be the record's own prev_hash.
        if not tail.endswith(PREV_HASH_MARKER) or len(tail) > _MAX_TAIL:
            raise AuditIntegrityError(f"{where}: tail does not end at prev_hash")
        return cls(
            seq=seq,
            subject=subject,
            state=state,
            absorbed=absorbed,
            tail=tail,
            hash=hash_,
        )


def link_of(record: AuditRecord) -> Link:
    """
    Return the hash-only link of a record (the broker's side).

    Args:
        record: a stored record; its fields are hashed, never copied out.

    Raises:
        ValueError: the record's encoding is not the chain's (it could not have
            been chained).
    """
    payload = {
        "seq": record.seq,
        "at": format_timestamp(record.at),
        "kind": record.kind,
        "outcome": record.outcome,
        "actor": record.actor,
        "subject": record.subject,
        "data": dict(record.data),
        "prev_hash": record.prev_hash,
    }
    encoded = canonical_bytes(payload)
    suffix = _suffix(record.seq, record.subject)
    head_end = len(encoded) - len(suffix) - len(record.prev_hash)
    head = encoded[:head_end]
    if (
        not encoded.endswith(suffix)
        or not head.endswith(PREV_HASH_MARKER)
        or encoded[head_end : head_end + 64] != record.prev_hash.encode("ascii")
    ):
        raise ValueError("record does not encode as a chained record")
    # Keep the marker in the tail, so the verifier can check where the hash goes.
    words, absorbed = midstate(head[: len(head) - len(PREV_HASH_MARKER)])
    state = "".join(f"{word:08x}" for word in words)
    return Link(
        seq=record.seq,
        subject=record.subject,
        state=state,
        absorbed=absorbed,
        tail=head[absorbed:],
        hash=record.hash,
    )
