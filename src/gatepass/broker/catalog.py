"""The configured targets, found by resource URI or by name."""

from __future__ import annotations

from collections.abc import Iterable

from gatepass.errors import InvalidTargetError
from gatepass.models import Target

__all__ = ["TargetCatalog"]


def _normal(uri: str) -> str:
    return uri.rstrip("/")


_SHOWN = 100


def _shown(reference: str) -> str:
    """Quote a reference for an error message, cut to a readable length."""
    if len(reference) > _SHOWN:
        return repr(reference[:_SHOWN] + "...")
    return repr(reference)


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
