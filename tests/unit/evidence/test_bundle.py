"""The bundle parser takes any bytes: a precise integrity error or a typed bundle."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.errors import AuditIntegrityError
from gatepass.evidence import FORMAT, VERSION, inspect_bundle, parse_bundle

from .bundles import TASK, build

BUILT = build()
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


PATHS = [p for p in _paths(json.loads(BUILT.raw)) if p]


class TestParse:
    """Reading never raises anything but AuditIntegrityError."""

    def test_round_trip(self) -> None:
        """A built bundle parses into its parts."""
        bundle = parse_bundle(BUILT.raw)
        assert bundle.task == TASK
        assert bundle.body["format"] == FORMAT
        assert bundle.body["version"] == VERSION
        assert len(bundle.segments) == 2
        assert [c.seq for c in bundle.checkpoints] == [5, 10]

    @given(st.binary(max_size=200))
    def test_any_bytes(self, raw: bytes) -> None:
        """Random bytes are refused with an integrity error."""
        with pytest.raises(AuditIntegrityError):
            parse_bundle(raw)

    @given(_JSON)
    def test_any_json(self, value: object) -> None:
        """Any JSON document that is not a bundle is refused precisely."""
        with pytest.raises(AuditIntegrityError):
            parse_bundle(json.dumps(value).encode())

    @given(st.sampled_from(PATHS), _JSON)
    def test_any_part_replaced(self, path: tuple[Any, ...], value: object) -> None:
        """Any part replaced by any JSON value: an error or problems, never a crash."""
        document = json.loads(BUILT.raw)
        holder = document
        for step in path[:-1]:
            holder = holder[step]
        if holder[path[-1]] == value:
            return
        holder[path[-1]] = value
        raw = json.dumps(document).encode()
        try:
            report = inspect_bundle(raw, public_jwk=BUILT.jwk)
        except AuditIntegrityError:
            return
        assert report.problems

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"format": "other"}, "not a gatepass evidence bundle"),
            ({"version": 2}, "bundle version '2' is not 1"),
            ({"task": 7}, "task is not a string"),
            ({"disclosed": [True]}, "disclosed is not a list of seqs"),
            ({"segments": [{"checkpoint": "x"}]}, "segment checkpoint is not a seq"),
            (
                {"segments": [{"checkpoint": 5, "entries": [{"x": {}}]}]},
                "unexpected 'x'",
            ),
        ],
    )
    def test_malformed_parts_are_named(
        self, change: dict[str, object], message: str
    ) -> None:
        """Each malformed part is named."""
        document = json.loads(BUILT.raw)
        document["evidence"].update(change)
        with pytest.raises(AuditIntegrityError, match=message):
            parse_bundle(json.dumps(document).encode())

    def test_deep_nesting_is_refused(self) -> None:
        """A hostile depth is refused before anything recurses over it."""
        document = json.loads(BUILT.raw)
        deep: object = 1
        for _ in range(100):
            deep = [deep]
        document["evidence"]["tasks"] = [{"x": deep}]
        with pytest.raises(AuditIntegrityError, match="nested too deeply"):
            parse_bundle(json.dumps(document).encode())
