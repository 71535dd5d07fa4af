"""The configured targets, found by resource URI or by name."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from gatepass.errors import InvalidTargetError
from gatepass.models import Target

__all__ = ["TargetCatalog"]


def _normal(uri: str) -> str:
    return uri.rstrip("/")


_SHOWN = 100
_NAME_LIKE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_URI_CHARACTERS = re.compile(r"[A-Za-z0-9._~:/%-]+")
# A long unbroken run of letters and digits is a key or a token, not a name.
_OPAQUE = re.compile(r"[A-Za-z0-9]{25,}")
_SCHEMES = frozenset({"http", "https", "postgresql", "redis", "rediss", "ssh"})


def _shown(reference: str) -> str:
    """
    Name the target asked for in an error, when it can only be a name or a URI.

    Errors and their audit records never repeat what a client sent if it could be
    a secret pasted in the wrong place (a token as the ``resource``): such a
    reference is described, not shown.
    """
    hidden = "(not shown: it is not a target name or URI)"
    if len(reference) > _SHOWN or _OPAQUE.search(reference):
        return hidden
    if _NAME_LIKE.fullmatch(reference):
        return repr(reference)
    parts = urlsplit(reference)
    plain = (
        parts.scheme in _SCHEMES
        and bool(parts.hostname)
        and not (parts.username or parts.password or parts.query or parts.fragment)
        and _URI_CHARACTERS.fullmatch(reference) is not None
    )
    return repr(reference) if plain else hidden


class TargetCatalog:
    """
    Look targets up by their resource indicator or their name.

    Args:
        targets: the configured targets.
    """

    def __init__(self, targets: Iterable[Target]) -> None:
        """Index the targets."""
        self._by_name = {target.name: target for target in targets}
        self._by_uri = {_normal(t.uri): t for t in self._by_name.values()}

    def all(self) -> list[Target]:
        """Return every target."""
        return list(self._by_name.values())

    def resolve(self, reference: str) -> Target:
        """
        Return the target named by a URI (RFC 8707 resource) or a name.

        A trailing slash does not distinguish two resources.

        Raises:
            InvalidTargetError: no target matches; the message names the
                reference asked for (shortened), which is a name or a URI the
                caller sent, never a secret.
        """
        target = self._by_uri.get(_normal(reference)) or self._by_name.get(reference)
        if target is None:
            raise InvalidTargetError(f"unknown target {_shown(reference)}")
        return target

    def get(self, name: str) -> Target | None:
        """Return the target with this name, or None."""
        return self._by_name.get(name)

    def scopes(self) -> list[str]:
        """Return every action any target offers, sorted."""
        return sorted({action for t in self._by_name.values() for action in t.actions})
