"""
Per-action rules: which methods and path patterns a token's scope allows.

A route maps each action a token may carry (``read``, ``write``) to rules such as
``GET /v1/tickets/**``. Matching is deny-by-default: an action the route does not
define grants nothing, and a path that is not in canonical form
(:func:`~gatepass.proxy.paths.normalize_path`) matches no rule.

Pattern syntax, over canonical paths:

- a literal segment matches itself (case-sensitively);
- ``*`` matches exactly one non-empty segment;
- ``**`` matches zero or more segments and may only be the last segment;
- a single trailing slash is literal: ``/v1/tickets/`` matches only that path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from gatepass.errors import ConfigurationError, InsufficientScopeError
from gatepass.proxy.paths import PathRejectedError, normalize_path

__all__ = ["METHODS", "NEVER_FORWARDED", "InvalidRuleError", "PathRule", "RuleSet"]

# RFC 9110 §9.3 and RFC 5789, without CONNECT and TRACE. These are the only methods
# a rule can name, and what ``*`` means.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# TRACE echoes the request it received, injected secret included, back to the
# caller (RFC 9110 §9.3.8 warns against forwarding credentials in it); CONNECT
# turns the proxy into a tunnel past every check (§9.3.6). Neither ever goes
# upstream, not even when a rule names it.
NEVER_FORWARDED = frozenset({"CONNECT", "TRACE"})
_ANY_METHOD = "*"
_ONE_SEGMENT = "*"
_ANY_SEGMENTS = "**"


class InvalidRuleError(ConfigurationError, ValueError):
    """
    A rule or pattern is malformed.

    It is also a ``ValueError`` so that a pydantic validator that builds a
    :class:`RuleSet` reports it at the setting's location.
    """


def _validate_method(method: str) -> None:
    if method.upper() in NEVER_FORWARDED:
        raise InvalidRuleError(
            f"rule method {method!r} is never forwarded: TRACE would echo the "
            "injected secret and CONNECT would open a tunnel past every check"
        )
    if method != _ANY_METHOD and method not in METHODS:
        allowed = ", ".join(sorted(METHODS))
        raise InvalidRuleError(
            f"rule method {method!r} is not one of {allowed} or * (upper case)"
        )


def _validate_pattern(pattern: str) -> str:
    if not pattern.startswith("/"):
        raise InvalidRuleError(f"rule pattern {pattern!r} must start with /")
    segments = pattern[1:].split("/")
    last = len(segments) - 1
    for position, segment in enumerate(segments):
        if segment in {".", ".."}:
            raise InvalidRuleError(f"rule pattern {pattern!r} has a dot segment")
        if not segment and position != last:
            raise InvalidRuleError(f"rule pattern {pattern!r} has an empty segment")
        if segment == _ANY_SEGMENTS and position != last:
            raise InvalidRuleError(
                f"rule pattern {pattern!r} may use ** only as its last segment"
            )
        if "*" in segment and segment not in {_ONE_SEGMENT, _ANY_SEGMENTS}:
            raise InvalidRuleError(
                f"rule pattern {pattern!r} may use * and ** only as whole segments"
            )
    try:
        return normalize_path(pattern.encode("ascii"))
    except (UnicodeEncodeError, PathRejectedError):
        raise InvalidRuleError(
            f"rule pattern {pattern!r} is not a valid request path"
        ) from None


def _is_canonical(path: str) -> bool:
    if not path.isascii():
        return False
    try:
        return normalize_path(path.encode("ascii")) == path
    except PathRejectedError:
        return False


@dataclass(frozen=True, slots=True)
class PathRule:
    """
    One method and path pattern, validated when built.

    A pattern with percent escapes is stored in canonical form, so
    ``/v1/%7Euser`` becomes ``/v1/~user``.

    Args:
        method: an upper-case method from :data:`METHODS`, or ``*`` for any of
            them (never TRACE, CONNECT or another method).
        pattern: a path pattern (see the module docstring).

    Raises:
        InvalidRuleError: the method or the pattern is invalid (a
            ``ConfigurationError``).
    """

    method: str
    pattern: str
    _segments: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Validate the method and canonicalize the pattern."""
        _validate_method(self.method)
        canonical = _validate_pattern(self.pattern)
        object.__setattr__(self, "pattern", canonical)
        object.__setattr__(self, "_segments", tuple(canonical[1:].split("/")))

    @classmethod
    def parse(cls, rule: str) -> PathRule:
        """
        Build a rule from its configuration spelling, ``"GET /v1/tickets/**"``.

        Args:
            rule: a method and a pattern separated by whitespace.

        Returns:
            The rule.

        Raises:
            InvalidRuleError: the text is not a method and a pattern, or either is
                invalid.
        """
        parts = rule.split()
        if len(parts) != 2:
            raise InvalidRuleError(
                f"rule {rule!r} must be a method and a path pattern, "
                "such as 'GET /v1/tickets/**'"
            )
        return cls(parts[0], parts[1])

    def matches(self, method: str, path: str) -> bool:
        """
        Tell whether this rule covers a request.

        Args:
            method: the request method; methods are case-sensitive (RFC 9110 §9.1).
            path: the canonical request path; any other spelling matches nothing.

        Returns:
            True if the method and the path both match.
        """
        if not self.covers_method(method):
            return False
        return self.matches_path(path)

    def covers_method(self, method: str) -> bool:
        """
        Tell whether this rule's method covers a request method.

        Args:
            method: the request method (case-sensitive, RFC 9110 §9.1).

        Returns:
            True for the rule's own method, and for ``*`` any of :data:`METHODS`.
        """
        if self.method == _ANY_METHOD:
            return method in METHODS
        return self.method == method

    def matches_path(self, path: str) -> bool:
        """
        Tell whether this rule's pattern covers a path, whatever the method.

        Args:
            path: the canonical request path; any other spelling matches nothing.

        Returns:
            True if the pattern matches.
        """
        if not _is_canonical(path):
            return False
        return self._matches_segments(path[1:].split("/"))

    @property
    def methods(self) -> frozenset[str]:
        """The request methods this rule covers."""
        return METHODS if self.method == _ANY_METHOD else frozenset({self.method})

    def _matches_segments(self, segments: list[str]) -> bool:
        for position, expected in enumerate(self._segments):
            if expected == _ANY_SEGMENTS:
                return True
            if position >= len(segments):
                return False
            actual = segments[position]
            if expected == _ONE_SEGMENT:
                if not actual:
                    return False
            elif actual != expected:
                return False
        return len(segments) == len(self._segments)


class RuleSet:
    """
    The rules of one route, by action; unknown actions grant nothing.

    Args:
        rules: the rules of each action.
    """

    __slots__ = ("_rules",)

    def __init__(self, rules: Mapping[str, Iterable[PathRule]]) -> None:
        """Keep an immutable copy of the rules."""
        self._rules: Mapping[str, tuple[PathRule, ...]] = MappingProxyType(
            {action: tuple(action_rules) for action, action_rules in rules.items()}
        )

    @classmethod
    def from_mapping(cls, rules: Mapping[str, Sequence[str]]) -> RuleSet:
        """
        Parse rules from configuration.

        Args:
            rules: action name to rule strings, e.g.
                ``{"read": ["GET /v1/tickets/**"], "write": ["POST /v1/tickets"]}``.

        Returns:
            The rule set.

        Raises:
            InvalidRuleError: an action name is empty, its rules are a single string
                rather than a list, or a rule is invalid (a ``ConfigurationError``).
        """
        parsed: dict[str, tuple[PathRule, ...]] = {}
        for action, texts in rules.items():
            if not action or action != action.strip():
                raise InvalidRuleError(f"action name {action!r} is not valid")
            # A bare string is a Sequence[str] of characters: refuse it explicitly.
            if isinstance(texts, str):
                raise InvalidRuleError(
                    f"the rules of action {action!r} must be a list of strings"
                )
            if not all(isinstance(text, str) for text in texts):
                raise InvalidRuleError(
                    f"the rules of action {action!r} must be a list of strings"
                )
            parsed[action] = tuple(PathRule.parse(text) for text in texts)
        return cls(parsed)

    @property
    def actions(self) -> frozenset[str]:
        """The action names this rule set defines."""
        return frozenset(self._rules)

    def rules_for(self, action: str) -> tuple[PathRule, ...]:
        """
        Return the rules of one action.

        Args:
            action: an action name.

        Returns:
            Its rules; empty for an unknown action.
        """
        return self._rules.get(action, ())

    @property
    def methods(self) -> frozenset[str]:
        """Every method some rule of some action covers."""
        return frozenset(
            method
            for action_rules in self._rules.values()
            for rule in action_rules
            for method in rule.methods
        )

    def methods_for(self, path: str) -> frozenset[str]:
        """
        Return the methods the rules serve for a path, whatever the token's scope.

        Args:
            path: the canonical request path.

        Returns:
            The methods of every rule, of any action, whose pattern matches; empty
            when no rule covers the path at all.
        """
        return frozenset(
            method
            for action_rules in self._rules.values()
            for rule in action_rules
            if rule.matches_path(path)
            for method in rule.methods
        )

    def allows(self, actions: Iterable[str], method: str, path: str) -> bool:
        """
        Tell whether any of the granted actions covers a request.

        Args:
            actions: the actions the token grants; a single string counts as one
                action, not as its characters.
            method: the request method.
            path: the canonical request path.

        Returns:
            True if some rule of some granted, known action matches.
        """
        granted = (actions,) if isinstance(actions, str) else actions
        return any(
            rule.matches(method, path)
            for action in granted
            for rule in self._rules.get(action, ())
        )

    def require(self, actions: Iterable[str], method: str, path: str) -> None:
        """
        Refuse a request that no granted action covers.

        Args:
            actions: the actions the token grants.
            method: the request method.
            path: the canonical request path.

        Raises:
            InsufficientScopeError: no rule of a granted action matches.
        """
        if not self.allows(actions, method, path):
            raise InsufficientScopeError(
                "the token's scope does not allow this method and path"
            )

    def __repr__(self) -> str:
        """Show the actions and their patterns."""
        body = ", ".join(
            f"{action!r}: [{', '.join(f'{r.method} {r.pattern}' for r in rules)}]"
            for action, rules in sorted(self._rules.items())
        )
        return f"RuleSet({{{body}}})"
