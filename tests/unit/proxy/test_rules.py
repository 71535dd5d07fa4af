"""Tests for per-action method and path rules."""

from __future__ import annotations

import pytest

from gatepass.errors import ConfigurationError, InsufficientScopeError
from gatepass.proxy import InvalidRuleError, PathRule, RuleSet
from gatepass.proxy.rules import METHODS

TICKETS = {
    "read": ["GET /v1/tickets/**", "HEAD /v1/tickets/**"],
    "write": ["POST /v1/tickets", "PATCH /v1/tickets/*"],
}


class TestPathRuleValidation:
    """Rules are validated when built."""

    @pytest.mark.parametrize(
        ("method", "pattern", "reason"),
        [
            ("get", "/v1", "upper case"),
            ("CONNECT", "/v1", "never forwarded"),
            ("TRACE", "/v1", "never forwarded"),
            ("trace", "/v1", "never forwarded"),
            ("", "/v1", "upper case"),
            ("GET", "v1/tickets", "must start with /"),
            ("GET", "", "must start with /"),
            ("GET", "/v1/../admin", "dot segment"),
            ("GET", "/v1/./tickets", "dot segment"),
            ("GET", "/v1//tickets", "empty segment"),
            ("GET", "//v1", "empty segment"),
            ("GET", "/v1/**/tickets", "only as its last segment"),
            ("GET", "/**/**", "only as its last segment"),
            ("GET", "/v1/tick*", "whole segments"),
            ("GET", "/v1/***", "whole segments"),
            ("GET", "/v1/%2e%2e/admin", "not a valid request path"),
            ("GET", "/v1/a%2fb", "not a valid request path"),
            ("GET", "/v1/caf\u00e9", "not a valid request path"),
            ("GET", "/v1/a b", "not a valid request path"),
        ],
    )
    def test_invalid_rule_is_a_configuration_error(
        self, method: str, pattern: str, reason: str
    ) -> None:
        """An invalid method or pattern raises InvalidRuleError, a config error."""
        with pytest.raises(ConfigurationError, match=reason) as caught:
            PathRule(method, pattern)
        assert isinstance(caught.value, InvalidRuleError)
        assert isinstance(caught.value, ValueError)

    def test_pattern_is_stored_canonical(self) -> None:
        """Escapes of unreserved characters in a pattern are decoded."""
        assert PathRule("GET", "/v1/%7euser/%2a").pattern == "/v1/~user/%2A"

    @pytest.mark.parametrize(
        "text", ["GET", "GET /v1 extra", "", "/v1/tickets", "GET\t/v1 x"]
    )
    def test_parse_needs_method_and_pattern(self, text: str) -> None:
        """A rule string must be exactly a method and a pattern."""
        with pytest.raises(InvalidRuleError, match="method and a path pattern"):
            PathRule.parse(text)

    def test_parse_builds_the_rule(self) -> None:
        """A rule string parses into its method and pattern."""
        assert PathRule.parse("  PATCH   /v1/tickets/*  ") == PathRule(
            "PATCH", "/v1/tickets/*"
        )


class TestPathRuleMatching:
    """Pattern semantics over canonical paths."""

    @pytest.mark.parametrize(
        ("pattern", "path", "expected"),
        [
            ("/v1/tickets", "/v1/tickets", True),
            ("/v1/tickets", "/v1/tickets/", False),
            ("/v1/tickets", "/v1/tickets/1", False),
            ("/v1/tickets", "/v1/ticketsX", False),
            ("/v1/tickets", "/V1/tickets", False),
            ("/v1/tickets/", "/v1/tickets/", True),
            ("/v1/tickets/", "/v1/tickets", False),
            ("/v1/tickets/*", "/v1/tickets/1", True),
            ("/v1/tickets/*", "/v1/tickets/", False),
            ("/v1/tickets/*", "/v1/tickets", False),
            ("/v1/tickets/*", "/v1/tickets/1/comments", False),
            ("/v1/*/comments", "/v1/7/comments", True),
            ("/v1/*/comments", "/v1/7/other", False),
            ("/v1/tickets/**", "/v1/tickets", True),
            ("/v1/tickets/**", "/v1/tickets/", True),
            ("/v1/tickets/**", "/v1/tickets/1", True),
            ("/v1/tickets/**", "/v1/tickets/1/comments/2", True),
            ("/v1/tickets/**", "/v1/ticketsX", False),
            ("/v1/tickets/**", "/v1/tickets-admin/1", False),
            ("/v1/tickets/**", "/v1", False),
            ("/**", "/", True),
            ("/**", "/anything/at/all", True),
            ("/", "/", True),
            ("/", "/a", False),
        ],
    )
    def test_pattern_semantics(self, pattern: str, path: str, expected: bool) -> None:
        """Literal, *, ** and trailing-slash segments match as documented."""
        assert PathRule("GET", pattern).matches("GET", path) is expected

    @pytest.mark.parametrize(
        "path",
        [
            "/v1/tickets/../admin",
            "/v1/tickets/%2e%2e/admin",
            "/v1/tickets/%2E%2E",
            "/v1/tickets//admin",
            "/v1/tickets/%2fadmin",
            "/v1/tickets\\..\\admin",
            "/v1/tickets/%7e",
            "/v1/tickets/caf\u00e9",
            "v1/tickets/1",
            "",
        ],
    )
    def test_non_canonical_path_matches_nothing(self, path: str) -> None:
        """A path that normalize_path would reject or rewrite matches no rule."""
        assert PathRule("GET", "/v1/tickets/**").matches("GET", path) is False

    def test_method_must_match_exactly(self) -> None:
        """Methods match case-sensitively; HEAD is not implied by GET."""
        rule = PathRule("GET", "/v1/tickets/**")
        assert rule.matches("GET", "/v1/tickets/1")
        assert not rule.matches("get", "/v1/tickets/1")
        assert not rule.matches("HEAD", "/v1/tickets/1")
        assert not rule.matches("POST", "/v1/tickets/1")

    def test_any_method(self) -> None:
        """The * method matches every ordinary method."""
        rule = PathRule("*", "/v1/tickets")
        assert all(rule.matches(method, "/v1/tickets") for method in METHODS)
        assert rule.methods == METHODS

    @pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "get"])
    def test_issue7_4_star_never_covers_trace_or_connect(self, method: str) -> None:
        """``*`` means GET HEAD POST PUT PATCH DELETE OPTIONS and nothing else."""
        rule = PathRule("*", "/**")
        assert not rule.matches(method, "/v1/tickets")
        assert not RuleSet.from_mapping({"read": ["* /**"]}).allows(
            ["read"], method, "/v1/tickets"
        )

    def test_methods_for_a_path(self) -> None:
        """The methods served for a path come from every action's matching rules."""
        rules = RuleSet.from_mapping(TICKETS)
        assert rules.methods_for("/v1/tickets") == {"GET", "HEAD", "POST"}
        assert rules.methods_for("/v1/tickets/9") == {"GET", "HEAD", "PATCH"}
        assert rules.methods_for("/v1/admin") == frozenset()
        assert rules.methods == {"GET", "HEAD", "POST", "PATCH"}


class TestRuleSet:
    """Actions map to rules; deny by default."""

    def test_allows_by_action(self) -> None:
        """Each action grants its own rules and nothing else."""
        rules = RuleSet.from_mapping(TICKETS)
        assert rules.allows(["read"], "GET", "/v1/tickets/1")
        assert rules.allows(["read"], "HEAD", "/v1/tickets")
        assert not rules.allows(["read"], "POST", "/v1/tickets")
        assert rules.allows(["write"], "POST", "/v1/tickets")
        assert rules.allows(["write"], "PATCH", "/v1/tickets/9")
        assert not rules.allows(["write"], "GET", "/v1/tickets/9")
        assert rules.allows(["read", "write"], "POST", "/v1/tickets")

    def test_unknown_or_no_action_grants_nothing(self) -> None:
        """An action the route does not define, or no action, allows nothing."""
        rules = RuleSet.from_mapping(TICKETS)
        assert not rules.allows(["admin"], "GET", "/v1/tickets/1")
        assert not rules.allows([], "GET", "/v1/tickets/1")
        assert rules.rules_for("admin") == ()

    def test_a_string_is_one_action(self) -> None:
        """A bare string is one action name, never its characters."""
        rules = RuleSet.from_mapping({"r": ["GET /x"], "read": ["GET /y"]})
        assert rules.allows("read", "GET", "/y")
        assert not rules.allows("read", "GET", "/x")

    def test_actions_property(self) -> None:
        """The actions property lists the defined actions."""
        assert RuleSet.from_mapping(TICKETS).actions == frozenset({"read", "write"})

    def test_require_raises_insufficient_scope(self) -> None:
        """Require raises InsufficientScopeError when no granted action matches."""
        rules = RuleSet.from_mapping(TICKETS)
        rules.require(["write"], "POST", "/v1/tickets")
        with pytest.raises(InsufficientScopeError):
            rules.require(["read"], "POST", "/v1/tickets")

    @pytest.mark.parametrize(
        ("mapping", "reason"),
        [
            ({"read": "GET /v1"}, "must be a list of strings"),
            ({"read": ["GET /v1", 3]}, "must be a list of strings"),
            ({"": ["GET /v1"]}, "action name"),
            ({" read": ["GET /v1"]}, "action name"),
            ({"read": ["GET /v1/../x"]}, "dot segment"),
            ({"read": ["FETCH /v1"]}, "upper case"),
        ],
    )
    def test_from_mapping_refuses_bad_configuration(
        self, mapping: dict[str, object], reason: str
    ) -> None:
        """Malformed configuration raises InvalidRuleError naming the problem."""
        with pytest.raises(InvalidRuleError, match=reason):
            RuleSet.from_mapping(mapping)  # type: ignore[arg-type]

    def test_action_with_no_rules_grants_nothing(self) -> None:
        """An action with an empty list is defined but allows nothing."""
        rules = RuleSet.from_mapping({"none": []})
        assert rules.actions == frozenset({"none"})
        assert not rules.allows(["none"], "GET", "/")

    def test_repr_lists_rules(self) -> None:
        """The repr shows actions and patterns."""
        text = repr(RuleSet.from_mapping({"write": ["POST /a"], "read": ["GET /b"]}))
        assert text == "RuleSet({'read': [GET /b], 'write': [POST /a]})"

    def test_rules_are_immutable(self) -> None:
        """Changing the source mapping after parsing changes nothing."""
        source = {"read": ["GET /a"]}
        rules = RuleSet.from_mapping(source)
        source["read"].append("GET /b")
        assert not rules.allows(["read"], "GET", "/b")
