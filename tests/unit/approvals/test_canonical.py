"""The canonical request hash: any changed field changes it; order does not."""

from __future__ import annotations

import dataclasses
import random

from hypothesis import given
from hypothesis import strategies as st

from gatepass.approvals import CanonicalRequest, request_hash

texts = st.text(min_size=1, max_size=20)
requests = st.builds(
    CanonicalRequest,
    agent_id=texts,
    task_id=texts,
    target=texts,
    kind=st.sampled_from(["access_token", "postgres", "redis", "ssh"]),
    actions=st.lists(texts, min_size=1, max_size=4, unique=True).map(tuple),
    requested_ttl_seconds=st.none() | st.integers(1, 10**6),
    policy_digest=texts,
)


@given(requests, st.data())
def test_any_changed_field_changes_the_hash(
    request: CanonicalRequest, data: st.DataObject
) -> None:
    """Change one field to a different value: a different hash, a new approval."""
    field = data.draw(
        st.sampled_from([f.name for f in dataclasses.fields(CanonicalRequest)])
    )
    current = getattr(request, field)
    other: object
    if field == "actions":
        other = data.draw(
            st.lists(texts, min_size=1, max_size=4, unique=True)
            .map(tuple)
            .filter(lambda value: set(value) != set(current))
        )
    elif field == "requested_ttl_seconds":
        other = data.draw(
            (st.none() | st.integers(1, 10**6)).filter(lambda value: value != current)
        )
    elif field == "kind":
        other = data.draw(
            st.sampled_from(["access_token", "postgres", "redis", "ssh"]).filter(
                lambda value: value != current
            )
        )
    else:
        other = data.draw(texts.filter(lambda value: value != current))
    changed = dataclasses.replace(request, **{field: other})  # type: ignore[arg-type]
    assert request_hash(changed) != request_hash(request)


@given(requests, st.randoms())
def test_action_order_and_repeats_do_not_matter(
    request: CanonicalRequest,
    rng: random.Random,
) -> None:
    """``read write`` and ``write read read`` are the same request."""
    actions = [*request.actions, request.actions[0]]
    rng.shuffle(actions)
    same = dataclasses.replace(request, actions=tuple(actions))
    assert request_hash(same) == request_hash(request)


def test_hash_is_hex_sha256() -> None:
    """64 lower-case hex digits."""
    value = request_hash(
        CanonicalRequest(
            agent_id="agt_a",
            task_id="tsk_a",
            target="db",
            kind="postgres",
            actions=("read",),
            requested_ttl_seconds=None,
            policy_digest="sha256:00",
        )
    )
    assert len(value) == 64
    assert int(value, 16) >= 0
