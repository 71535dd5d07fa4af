r"""
The evidence bundle's format (version 1): a JSON document, and how it is read.

The file is one JSON object::

    {"evidence": {
        "format": "gatepass.evidence", "version": 1,
        "exported_at": "…Z", "issuer": "https://…", "task": "tsk_…", "tenant": "…",
        "tasks": [ {task summary}, … ],        the task and its descendants
        "leases": [ {lease summary}, … ],      their credentials
        "disclosed": [seq, …],                 every record the bundle discloses
        "checkpoints": [ {checkpoint}, … ],    the checkpoints the segments end at
        "segments": [ {"checkpoint": seq,
                       "entries": [ {"record": {…}} | {"link": {…}}, … ]}, … ],
        "receipts": [ {revocation receipt per target}, … ],
        "audit_keys": {"keys": [ {OKP Ed25519 JWK}, … ]}
     },
     "signature": {"alg": "EdDSA", "kid": "…", "value": "…"}}

``signature.value`` is the audit key's Ed25519 signature over
``b"gatepass evidence bundle v1\\n" + canonical_bytes(evidence)``: the prefix can
never begin a checkpoint's signing input (a JSON object), so a bundle signature
cannot be passed off as a checkpoint or the reverse.

Reading is defensive: the file is untrusted, so every malformed part ends in one
:class:`~gatepass.errors.AuditIntegrityError` that names it, never another
exception.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from gatepass.audit import AuditRecord, Checkpoint
from gatepass.errors import AuditIntegrityError
from gatepass.evidence.links import Link

__all__ = [
    "FORMAT",
    "SIGNING_PREFIX",
    "VERSION",
    "Bundle",
    "Entry",
    "Segment",
    "entry_json",
    "parse_bundle",
    "segments_json",
]

FORMAT: Final = "gatepass.evidence"
VERSION: Final = 1
SIGNING_PREFIX: Final = b"gatepass evidence bundle v1\n"
_MAX_BYTES: Final = 256 * 1024 * 1024
_MAX_DEPTH: Final = 64

Entry = AuditRecord | Link


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """
    A run of consecutive chain entries that ends at a signed checkpoint.

    Args:
        checkpoint: the seq of the checkpoint the run ends at.
        entries: the records and links, as they appear in the file.
    """

    checkpoint: int
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Bundle:
    """
    A parsed bundle: every part typed, nothing verified yet.

    Args:
        body: the ``evidence`` object exactly as read (what the signature covers).
        signature: the ``signature`` object.
        task: the root task id.
        tasks: task summaries.
        leases: lease summaries.
        disclosed: the seqs the bundle says it discloses, in file order.
        checkpoints: the checkpoints, in file order.
        segments: the segments, in file order.
        receipts: the revocation receipts.
        audit_keys: the key set the bundle names.
    """

    body: Mapping[str, Any]
    signature: Mapping[str, Any]
    task: str
    tasks: tuple[Mapping[str, Any], ...]
    leases: tuple[Mapping[str, Any], ...]
    disclosed: tuple[int, ...]
    checkpoints: tuple[Checkpoint, ...]
    segments: tuple[Segment, ...]
    receipts: tuple[Mapping[str, Any], ...]
    audit_keys: Mapping[str, Any]


def _objects(body: Mapping[str, Any], name: str) -> tuple[Mapping[str, Any], ...]:
    value = body.get(name)
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise AuditIntegrityError(f"bundle {name} is not a list of objects")
    return tuple(value)


def _seqs(body: Mapping[str, Any]) -> tuple[int, ...]:
    value = body.get("disclosed")
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise AuditIntegrityError("bundle disclosed is not a list of seqs")
    return tuple(value)


def _entry(index: int, checkpoint: int, obj: Any) -> Entry:  # noqa: ANN401 - untrusted JSON
    where = f"segment ending at checkpoint seq {checkpoint}, entry {index + 1}"
    if not isinstance(obj, dict) or len(obj) != 1:
        raise AuditIntegrityError(f"{where} is not a one-key object")
    ((key, value),) = obj.items()
    if not isinstance(value, dict):
        raise AuditIntegrityError(f"{where}: {key[:32]!r} is not an object")
    if key == "record":
        return AuditRecord.from_json(value)
    if key == "link":
        return Link.from_json(value)
    raise AuditIntegrityError(f"{where} is an unexpected {key[:32]!r}")


def _segment(obj: Mapping[str, Any]) -> Segment:
    checkpoint = obj.get("checkpoint")
    if not isinstance(checkpoint, int) or isinstance(checkpoint, bool):
        raise AuditIntegrityError("bundle segment checkpoint is not a seq")
    entries = obj.get("entries")
    if not isinstance(entries, list):
        raise AuditIntegrityError(
            f"segment ending at checkpoint seq {checkpoint}: entries is not a list"
        )
    return Segment(
        checkpoint=checkpoint,
        entries=tuple(_entry(i, checkpoint, e) for i, e in enumerate(entries)),
    )


def _depth_ok(value: Any, depth: int = 0) -> bool:  # noqa: ANN401 - any JSON
    if depth > _MAX_DEPTH:
        return False
    if isinstance(value, dict):
        return all(_depth_ok(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return all(_depth_ok(v, depth + 1) for v in value)
    return True


def parse_bundle(raw: bytes) -> Bundle:
    """
    Parse a bundle file.

    Args:
        raw: the file's bytes.

    Returns:
        The typed bundle (not yet verified: see :func:`verify_bundle`).

    Raises:
        AuditIntegrityError: the file is not a version 1 gatepass evidence bundle,
            or a part of it is malformed; the message names the part.
    """
    body, signature = _document(raw)
    task = body.get("task")
    if not isinstance(task, str):
        raise AuditIntegrityError("bundle task is not a string")
    keys = body.get("audit_keys")
    if not isinstance(keys, dict):
        raise AuditIntegrityError("bundle audit_keys is not a jwk set")
    return Bundle(
        body=body,
        signature=signature,
        task=task,
        tasks=_objects(body, "tasks"),
        leases=_objects(body, "leases"),
        disclosed=_seqs(body),
        checkpoints=tuple(
            Checkpoint.from_json(c) for c in _objects(body, "checkpoints")
        ),
        segments=tuple(_segment(s) for s in _objects(body, "segments")),
        receipts=_objects(body, "receipts"),
        audit_keys=keys,
    )


def _document(raw: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """Decode the file into its evidence and signature objects."""
    if len(raw) > _MAX_BYTES:
        raise AuditIntegrityError("bundle is larger than 256 MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AuditIntegrityError("bundle is not valid utf-8") from exc
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers too long to convert.
        raise AuditIntegrityError("bundle is not json (truncated?)") from exc
    if not isinstance(document, dict) or set(document) != {"evidence", "signature"}:
        raise AuditIntegrityError(
            "bundle is not an object of exactly evidence and signature"
        )
    body, signature = document["evidence"], document["signature"]
    if not isinstance(body, dict) or not isinstance(signature, dict):
        raise AuditIntegrityError("bundle evidence or signature is not an object")
    if not _depth_ok(body):
        raise AuditIntegrityError("bundle is nested too deeply")
    if body.get("format") != FORMAT:
        raise AuditIntegrityError("file is not a gatepass evidence bundle")
    if body.get("version") != VERSION:
        raise AuditIntegrityError(
            f"bundle version {str(body.get('version'))[:16]!r} is not {VERSION}"
        )
    return body, signature


def entry_json(entry: Entry) -> dict[str, Any]:
    """Return one segment entry as the file holds it."""
    if isinstance(entry, Link):
        return {"link": entry.to_json()}
    return {"record": entry.to_json()}


def segments_json(segments: Sequence[Segment]) -> list[dict[str, Any]]:
    """Return segments as the file holds them."""
    return [
        {
            "checkpoint": segment.checkpoint,
            "entries": [entry_json(entry) for entry in segment.entries],
        }
        for segment in segments
    ]
