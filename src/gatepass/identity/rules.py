"""
Claim rules: which verified tokens an issuer may present, and the agent each maps to.

A rule has *match* conditions (claim → patterns) and *templates* for the agent's
name, tenant and labels. The first rule whose conditions all hold maps the token;
a token no rule matches is refused.

Templates are text with ``{claim}`` placeholders: ``gh:{repository}``. A nested
claim is reached with ``/`` (``{kubernetes.io/namespace}``, because claim names may
contain dots); ``{$name}`` reads a value gatepass derives from the token (for a
JWT-SVID: ``$trust_domain`` and ``$path``). ``{{`` and ``}}`` are literal braces.
Only strings and integers are substituted; any other or missing claim leaves the
name or tenant unmapped (the token is refused) and a label absent.

Patterns are exact text except for two wildcards: ``*`` matches any run of
characters other than ``/`` and ``:`` (one segment of a repository, ref or
subject), ``**`` matches anything. ``repo:acme/*:environment:prod`` therefore
matches every repository of ``acme`` in environment ``prod``, but never
``repo:acme/x:ref:refs/heads/main:environment:prod``; ``acme*`` never matches
``acme-evil/...`` across a ``/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gatepass.errors import InvalidGrantError

__all__ = [
    "ClaimRule",
    "MappedAgent",
    "Pattern",
    "Template",
    "claim_text",
    "escape_template",
    "map_claims",
    "parse_claim_path",
]

_PATH_SEGMENT = r"[A-Za-z0-9_.:-]+"
_PATH = re.compile(rf"\$?{_PATH_SEGMENT}(?:/{_PATH_SEGMENT})*")
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]|[^{}]+")
_TENANT = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
# Agent names are printable ASCII without spaces: they appear in audit records,
# policies and logs, where control characters or look-alikes would mislead.
_AGENT_NAME = re.compile(r"[\x21-\x7e]{1,255}")
_MAX_LABEL_VALUE = 256
_MAX_PATTERNS = 32

ClaimPath = tuple[str, ...]


def parse_claim_path(text: str) -> ClaimPath:
    """
    Split a claim path (``kubernetes.io/namespace``) into its segments.

    Args:
        text: the path as written in a template or a match condition.

    Returns:
        The segments; a derived value keeps its ``$`` (``("$path",)``).

    Raises:
        ValueError: the path is empty or has characters outside
            ``A-Z a-z 0-9 _ . : -`` (and a leading ``$``).
    """
    if _PATH.fullmatch(text) is None:
        raise ValueError(f"claim path {text[:64]!r} is not valid")
    return tuple(text.split("/"))


def claim_text(
    claims: Mapping[str, Any], path: ClaimPath, derived: Mapping[str, str]
) -> str | None:
    """
    Return the text of a claim, or None when it is absent or not a scalar.

    Args:
        claims: the verified claims.
        path: the claim path.
        derived: values gatepass derived from the token, by ``$name``.

    Returns:
        The string, or the decimal text of an integer; None otherwise.
    """
    if path[0].startswith("$"):
        return derived.get(path[0]) if len(path) == 1 else None
    value: object = claims
    for segment in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(segment)
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return None


def escape_template(text: str) -> str:
    """
    Return a template that renders ``text`` literally.

    Args:
        text: any text.

    Returns:
        The text with ``{`` and ``}`` doubled.
    """
    return text.replace("{", "{{").replace("}", "}}")


@dataclass(frozen=True, slots=True)
class Template:
    """
    A parsed template: literal parts and claim placeholders.

    Attributes:
        source: the template as written.
        parts: literal strings and claim paths, in order.
    """

    source: str
    parts: tuple[str | ClaimPath, ...]

    @classmethod
    def parse(cls, text: str) -> Template:
        """
        Parse a template.

        Args:
            text: the template text.

        Returns:
            The template.

        Raises:
            ValueError: a brace is unbalanced or a placeholder is not a claim path.
        """
        parts: list[str | ClaimPath] = []
        literal = ""
        for match in _TOKEN.finditer(text):
            piece = match.group(0)
            if piece in {"{{", "}}"}:
                literal += piece[0]
            elif piece in {"{", "}"}:
                raise ValueError(f"template {text[:64]!r} has an unbalanced brace")
            elif match.group(1) is not None:
                if literal:
                    parts.append(literal)
                    literal = ""
                parts.append(parse_claim_path(match.group(1)))
            else:
                literal += piece
        if literal:
            parts.append(literal)
        return cls(text, tuple(parts))

    @property
    def paths(self) -> Iterator[ClaimPath]:
        """Yield the claim paths the template reads."""
        return (part for part in self.parts if isinstance(part, tuple))

    def render(
        self, claims: Mapping[str, Any], derived: Mapping[str, str]
    ) -> str | None:
        """
        Substitute the claims.

        Args:
            claims: the verified claims.
            derived: values derived from the token, by ``$name``.

        Returns:
            The text, or None when a placeholder's claim is absent or not a scalar.
        """
        pieces: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                pieces.append(part)
                continue
            value = claim_text(claims, part, derived)
            if value is None:
                return None
            pieces.append(value)
        return "".join(pieces)


@dataclass(frozen=True, slots=True)
class Pattern:
    """
    A match pattern: exact text with ``*`` (one segment) and ``**`` (anything).

    Attributes:
        source: the pattern as written.
        regex: the compiled, fully anchored expression.
    """

    source: str
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, text: str) -> Pattern:
        """
        Compile a pattern.

        Args:
            text: the pattern text; ``***`` and longer runs are refused.

        Returns:
            The pattern.

        Raises:
            ValueError: the pattern is empty or has a run of three or more ``*``.
        """
        if not text:
            raise ValueError("pattern is empty")
        if "***" in text:
            raise ValueError(f"pattern {text[:64]!r} has a run of three '*'")
        expression = "".join(
            ".*" if piece == "**" else "[^/:]*" if piece == "*" else re.escape(piece)
            for piece in re.split(r"(\*\*|\*)", text)
            if piece
        )
        return cls(text, re.compile(expression, re.DOTALL))

    @property
    def is_exact(self) -> bool:
        """Tell whether the pattern has no wildcard."""
        return "*" not in self.source

    def matches(self, value: str) -> bool:
        """
        Tell whether a claim value matches.

        Args:
            value: the claim's text.

        Returns:
            True when the whole value matches.
        """
        return self.regex.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class MappedAgent:
    """
    The agent a token maps to.

    Attributes:
        name: the agent name.
        tenant: its tenant.
        labels: its labels (absent claims leave their label out).
        rule: the index of the rule that matched.
    """

    name: str
    tenant: str
    labels: dict[str, str]
    rule: int


@dataclass(frozen=True, slots=True)
class ClaimRule:
    """
    One compiled claim rule.

    Attributes:
        conditions: each claim path with its patterns (any one may match).
        name: the agent name template.
        tenant: the tenant template.
        labels: each label key with its template.
    """

    conditions: tuple[tuple[ClaimPath, tuple[Pattern, ...]], ...]
    name: Template
    tenant: Template
    labels: tuple[tuple[str, Template], ...]

    @classmethod
    def compile(
        cls,
        *,
        match: Mapping[str, str | Sequence[str]],
        name: str,
        tenant: str,
        labels: Mapping[str, str],
    ) -> ClaimRule:
        """
        Compile a rule from its configuration.

        Args:
            match: claim path → a pattern or a list of patterns.
            name: the agent name template.
            tenant: the tenant template (a literal tenant is a template too).
            labels: label key → template.

        Returns:
            The rule.

        Raises:
            ValueError: a path, pattern, template or label key is not valid.
        """
        conditions: list[tuple[ClaimPath, tuple[Pattern, ...]]] = []
        for path, patterns in match.items():
            texts = [patterns] if isinstance(patterns, str) else list(patterns)
            if not 1 <= len(texts) <= _MAX_PATTERNS:
                raise ValueError(f"match.{path} needs 1 to 32 patterns")
            compiled = tuple(Pattern.parse(text) for text in texts)
            conditions.append((parse_claim_path(path), compiled))
        for key in labels:
            if _LABEL_KEY.fullmatch(key) is None:
                raise ValueError(f"label key {key[:64]!r} must match [a-z][a-z0-9_.-]*")
        return cls(
            conditions=tuple(conditions),
            name=Template.parse(name),
            tenant=Template.parse(tenant),
            labels=tuple((key, Template.parse(text)) for key, text in labels.items()),
        )

    def exact_claims(self) -> frozenset[str]:
        """Return the top-level claims this rule pins to exact values only."""
        return frozenset(
            "/".join(path)
            for path, patterns in self.conditions
            if all(pattern.is_exact for pattern in patterns)
        )

    def matches(self, claims: Mapping[str, Any], derived: Mapping[str, str]) -> bool:
        """
        Tell whether every condition holds (an absent claim never matches).

        Args:
            claims: the verified claims.
            derived: values derived from the token.

        Returns:
            True when the rule applies to the token.
        """
        for path, patterns in self.conditions:
            value = claim_text(claims, path, derived)
            if value is None or not any(p.matches(value) for p in patterns):
                return False
        return True


def map_claims(
    rules: Sequence[ClaimRule],
    claims: Mapping[str, Any],
    derived: Mapping[str, str],
    *,
    issuer: str,
) -> MappedAgent:
    """
    Map verified claims to an agent with the first rule that matches.

    Args:
        rules: the issuer's rules, in order.
        claims: the verified claims.
        derived: values derived from the token, by ``$name``.
        issuer: the issuer's configured name, for messages.

    Returns:
        The mapped agent.

    Raises:
        InvalidGrantError: no rule matches, or the matching rule cannot produce a
            valid name or tenant from this token.
    """
    for index, rule in enumerate(rules):
        if not rule.matches(claims, derived):
            continue
        where = f"claim rule {index} of issuer {issuer}"
        name = rule.name.render(claims, derived)
        if name is None or _AGENT_NAME.fullmatch(name) is None:
            raise InvalidGrantError(f"{where} maps the token to no valid agent name")
        tenant = rule.tenant.render(claims, derived)
        if tenant is None or _TENANT.fullmatch(tenant) is None:
            raise InvalidGrantError(f"{where} maps the token to no valid tenant")
        labels: dict[str, str] = {}
        for key, template in rule.labels:
            value = template.render(claims, derived)
            if value is None:
                continue
            if len(value) > _MAX_LABEL_VALUE or not value.isprintable():
                raise InvalidGrantError(f"{where} maps label {key} to an invalid value")
            labels[key] = value
        return MappedAgent(name=name, tenant=tenant, labels=labels, rule=index)
    raise InvalidGrantError(f"no claim rule of issuer {issuer} matches the token")
