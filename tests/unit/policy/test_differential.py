"""Sliced decisions equal whole-set decisions, field by field (issue 15, aim 2)."""

import tempfile
from pathlib import Path

from hypothesis import event, given
from hypothesis import strategies as st
from tests.unit.policy.multitenant import SCHEMA, policy_files, requests

from gatepass.policy import CedarPolicySet, PolicyRequest
from gatepass.policy.model import prepare
from gatepass.policy.sources import read_sources


class EagerSlicing(CedarPolicySet):
    """Slices every request, however large its slice: the exactness under test."""

    _slice_share = 1.0
    _slice_size = 10**9


def load(files: dict[str, str]) -> tuple[CedarPolicySet, CedarPolicySet]:
    """
    Load one directory twice: deciding with the whole set, and slicing eagerly.

    The default limits only send some requests to the whole set instead of a
    slice, so the eager set checks every slice the default one could use.
    """
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        (directory / "schema.cedarschema").write_text(SCHEMA, encoding="utf-8")
        for file, text in files.items():
            (directory / file).write_text(text, encoding="utf-8")
        sources = read_sources(directory)
    return (
        CedarPolicySet(sources, directory=directory, slicing=False),
        EagerSlicing(sources, directory=directory),
    )


class TestSlicedEqualsWhole:
    """Leaving out the policies a request cannot meet changes nothing it is told."""

    @given(
        files=policy_files(),
        batch=st.lists(requests, min_size=1, max_size=6),
    )
    def test_issue15_sliced_decisions_equal_the_whole_set(
        self, files: dict[str, str], batch: list[PolicyRequest]
    ) -> None:
        """Allowed, TTL cap, deciding ids and errors agree, alone and in a batch."""
        whole, eager = load(files)
        expected = [whole.decide([request])[0] for request in batch]
        assert [eager.decide([request])[0] for request in batch] == expected
        assert eager.decide(batch) == expected
        assert whole.decide(batch) == expected
        event(f"policies left out of some request's slice: {left_out(eager, batch)}")
        failed = any("while evaluating policy" in e for d in expected for e in d.errors)
        event("a policy failed for some request" if failed else "no policy failed")
        delegated = any(request.delegation is not None for request in batch)
        event("a delegated task's request" if delegated else "no delegated request")


def left_out(policy_set: CedarPolicySet, batch: list[PolicyRequest]) -> str:
    """Say how many policies slicing left out, at most, for one request."""
    slicer = policy_set._slicer
    assert slicer is not None
    most = 0
    for request in batch:
        try:
            fits = policy_set._fits(
                request.action, delegated=request.delegation is not None
            )
            keys = prepare(0, request, fits).keys
        except (TypeError, ValueError):
            continue
        selection = None if keys is None else slicer.select([keys])
        if selection is not None:
            most = max(most, policy_set.policy_count - len(selection))
    return "none" if most == 0 else "1-3" if most <= 3 else "4 or more"
