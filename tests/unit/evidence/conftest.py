"""Fixtures of the evidence tests: a freshly built bundle."""

from __future__ import annotations

import pytest

from .bundles import Built, build


@pytest.fixture
def built() -> Built:
    """A freshly built bundle of the story's task."""
    return build()
