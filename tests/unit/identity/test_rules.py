"""Tests for claim rules: templates, patterns and mapping a token to an agent."""

from __future__ import annotations

import contextlib
import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.errors import InvalidGrantError
from gatepass.identity.rules import (
    ClaimRule,
    Pattern,
    Template,
    claim_text,
    escape_template,
    map_claims,
    parse_claim_path,
)

NAME_CHARS = string.ascii_letters + string.digits + "_.:-"
claim_names = st.text(NAME_CHARS, min_size=1, max_size=12)
literals = st.text(max_size=20)
values = st.text(min_size=1, max_size=20)


def rule(**kwargs: Any) -> ClaimRule:
    """A rule with defaults for what a test does not care about."""
    kwargs.setdefault("match", {})
    kwargs.setdefault("name", "{sub}")
    kwargs.setdefault("tenant", "acme")
    kwargs.setdefault("labels", {})
    return ClaimRule.compile(**kwargs)


class TestTemplate:
    """Templates substitute string and integer claims, or render nothing."""

    @given(
        parts=st.lists(
            st.one_of(
                literals.map(lambda text: ("literal", text)),
                st.tuples(claim_names, values).map(lambda p: ("claim", p)),
            ),
            max_size=6,
        )
    )
    def test_render_is_concatenation(self, parts: list[tuple[str, Any]]) -> None:
        """A template renders to its literals and claim values, in order."""
        source, expected, claims = "", "", {}
        for index, (kind, value) in enumerate(parts):
            if kind == "literal":
                source += escape_template(value)
                expected += value
            else:
                name = f"{value[0]}{index}"
                source += f"{{{name}}}"
                expected += value[1]
                claims[name] = value[1]
        assert Template.parse(source).render(claims, {}) == expected

    @given(text=st.text(max_size=40))
    def test_escaped_text_renders_itself(self, text: str) -> None:
        """Any text, escaped, is a template without placeholders."""
        template = Template.parse(escape_template(text))
        assert list(template.paths) == []
        assert template.render({}, {}) == text

    @given(text=st.text(max_size=40))
    def test_parse_never_raises_anything_else(self, text: str) -> None:
        """Any text is a template or a ValueError."""
        with contextlib.suppress(ValueError):
            Template.parse(text)

    def test_nested_and_derived_claims(self) -> None:
        """'/' reaches into objects (names may hold dots); '$' reads derived values."""
        claims = {
            "kubernetes.io": {"namespace": "prod", "serviceaccount": {"name": "a"}}
        }
        template = Template.parse(
            "{kubernetes.io/namespace}:{kubernetes.io/serviceaccount/name}:{$path}"
        )
        assert template.render(claims, {"$path": "x/y"}) == "prod:a:x/y"

    @pytest.mark.parametrize(
        "claims",
        [{}, {"a": None}, {"a": True}, {"a": 1.5}, {"a": ["x"]}, {"a": {"b": "c"}}],
    )
    def test_missing_or_non_scalar_claim_renders_nothing(
        self, claims: dict[str, Any]
    ) -> None:
        """Only strings and integers are substituted."""
        assert Template.parse("x-{a}").render(claims, {}) is None

    def test_path_through_a_scalar_renders_nothing(self) -> None:
        """A path cannot reach below a string claim."""
        assert Template.parse("{a/b}").render({"a": "text"}, {}) is None

    def test_integers_render_in_decimal(self) -> None:
        """An integer claim renders as its decimal text."""
        assert Template.parse("{id}").render({"id": 42}, {}) == "42"

    @pytest.mark.parametrize(
        "text", ["{", "}", "{a", "a}", "{}", "{a b}", "{{a}", "{a}}", "{/a}", "{a/}"]
    )
    def test_malformed_templates_are_refused(self, text: str) -> None:
        """Unbalanced braces and bad paths are configuration errors."""
        with pytest.raises(ValueError, match=r"brace|claim path"):
            Template.parse(text)

    def test_derived_values_have_no_members(self) -> None:
        """A derived value is a string; it has no path below it."""
        assert claim_text({}, parse_claim_path("$path"), {"$path": "p"}) == "p"
        assert claim_text({}, ("$path", "x"), {"$path": "p"}) is None


class TestPattern:
    """'*' matches one segment, '**' anything, everything else itself."""

    @given(text=st.text(min_size=1, max_size=30).filter(lambda t: "*" not in t))
    def test_exact_pattern_matches_only_itself(self, text: str) -> None:
        """A pattern without wildcards matches exactly its own text."""
        pattern = Pattern.parse(text)
        assert pattern.is_exact
        assert pattern.matches(text)
        assert not pattern.matches(text + "x")
        assert not pattern.matches("x" + text)

    @given(
        prefix=st.text("ab.-_", max_size=8),
        middle=st.text("ab/:", max_size=8),
        suffix=st.text("ab.-_", max_size=8),
    )
    def test_star_never_crosses_a_separator(
        self, prefix: str, middle: str, suffix: str
    ) -> None:
        """'*' matches a run without '/' or ':'; '**' matches any run."""
        value = f"{prefix}{middle}{suffix}"
        star = Pattern.parse(f"{prefix}*{suffix}")
        double = Pattern.parse(f"{prefix}**{suffix}")
        assert double.matches(value)
        assert star.matches(value) is ("/" not in middle and ":" not in middle)

    @pytest.mark.parametrize(
        ("pattern", "value", "expected"),
        [
            ("repo:acme/*:environment:prod", "repo:acme/app:environment:prod", True),
            (
                "repo:acme/*:environment:prod",
                "repo:acme/a:ref:x:environment:prod",
                False,
            ),
            ("repo:acme/*", "repo:acme-evil/app", False),
            ("acme*", "acme-evil/app", False),
            ("refs/heads/**", "refs/heads/feature/x", True),
            ("refs/heads/*", "refs/heads/feature/x", False),
            ("a.b", "aXb", False),
        ],
    )
    def test_examples(self, pattern: str, value: str, expected: bool) -> None:
        """The documented examples hold."""
        assert Pattern.parse(pattern).matches(value) is expected

    @pytest.mark.parametrize("text", ["", "a***b"])
    def test_malformed_patterns_are_refused(self, text: str) -> None:
        """Empty patterns and runs of three stars are configuration errors."""
        with pytest.raises(ValueError, match="pattern"):
            Pattern.parse(text)


class TestClaimRule:
    """Rules match conditions and map the first matching token to an agent."""

    def test_first_matching_rule_maps(self) -> None:
        """The first rule whose conditions all hold decides."""
        rules = [
            rule(match={"env": "prod"}, tenant="prod-tenant"),
            rule(match={"env": ["dev", "staging"]}, tenant="{team}"),
        ]
        mapped = map_claims(
            rules, {"sub": "w1", "env": "dev", "team": "t1"}, {}, issuer="k"
        )
        assert (mapped.name, mapped.tenant, mapped.rule) == ("w1", "t1", 1)

    def test_no_rule_matches(self) -> None:
        """A token no rule matches is refused, naming the issuer."""
        with pytest.raises(InvalidGrantError, match="no claim rule of issuer k"):
            map_claims([rule(match={"env": "prod"})], {"env": "dev"}, {}, issuer="k")

    def test_absent_claim_never_matches(self) -> None:
        """Even '**' does not match an absent claim."""
        assert not rule(match={"env": "**"}).matches({}, {})

    def test_labels_skip_absent_claims(self) -> None:
        """A label whose claim is absent is left out, not empty."""
        compiled = rule(labels={"environment": "{environment}", "ref": "{ref}"})
        mapped = map_claims([compiled], {"sub": "s", "ref": "main"}, {}, issuer="k")
        assert mapped.labels == {"ref": "main"}

    @pytest.mark.parametrize(
        ("claims", "message"),
        [
            ({}, "no valid agent name"),
            ({"sub": "has space"}, "no valid agent name"),
            ({"sub": "x" * 256}, "no valid agent name"),
            ({"sub": "s", "team": "Upper"}, "no valid tenant"),
            ({"sub": "s"}, "no valid tenant"),
            ({"sub": "s", "team": "t", "ref": "a\nb"}, "label ref"),
        ],
    )
    def test_unmappable_tokens_are_refused(
        self, claims: dict[str, Any], message: str
    ) -> None:
        """A matching rule that cannot produce a valid agent refuses the token."""
        compiled = rule(tenant="{team}", labels={"ref": "{ref}"})
        with pytest.raises(InvalidGrantError, match=message):
            map_claims([compiled], claims, {}, issuer="k")

    def test_exact_claims(self) -> None:
        """Only claims pinned without wildcards count as exact."""
        compiled = rule(match={"owner": "acme", "repo": "acme/*", "id": ["1", "2"]})
        assert compiled.exact_claims() == frozenset({"owner", "id"})

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"match": {"a": []}}, "1 to 32"),
            ({"match": {"bad path!": "x"}}, "claim path"),
            ({"labels": {"Bad": "x"}}, "label key"),
            ({"name": "{"}, "brace"),
        ],
    )
    def test_invalid_rules_are_configuration_errors(
        self, kwargs: dict[str, Any], message: str
    ) -> None:
        """Bad paths, patterns, label keys and templates fail to compile."""
        with pytest.raises(ValueError, match=message):
            rule(**kwargs)
