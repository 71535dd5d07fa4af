"""The resumable SHA-256 is SHA-256."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.evidence.sha256 import INITIAL_STATE, midstate, resume


class TestResumableSha256:
    """Stopping at any block and resuming gives hashlib's digest."""

    @given(st.binary(max_size=400), st.integers(min_value=0, max_value=400))
    def test_resume_equals_hashlib(self, data: bytes, cut: int) -> None:
        """midstate(prefix) then resume(rest) is sha256(data) for every cut."""
        prefix = data[: min(cut, len(data))]
        state, absorbed = midstate(prefix)
        assert absorbed % 64 == 0
        assert absorbed <= len(prefix)
        assert resume(state, absorbed, data[absorbed:]) == hashlib.sha256(data).digest()

    def test_refuses_a_misaligned_length(self) -> None:
        """A state claimed after a partial block is refused."""
        with pytest.raises(ValueError, match="multiple of 64"):
            resume(INITIAL_STATE, 63, b"")

    def test_refuses_a_malformed_state(self) -> None:
        """A state that is not eight 32-bit words is refused."""
        with pytest.raises(ValueError, match="eight 32-bit words"):
            resume((1, 2, 3), 0, b"")
        with pytest.raises(ValueError, match="eight 32-bit words"):
            resume((2**32,) * 8, 0, b"")
