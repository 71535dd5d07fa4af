"""
The revocation stream follower, which lives in :mod:`gatepass.verify`.

The proxy and every resource server follow the broker's push stream with the same
:class:`~gatepass.verify.RevocationFeed`; this module keeps the proxy's old import
path working.
"""

from __future__ import annotations

from gatepass.verify.revocations import RevocationFeed

__all__ = ["RevocationFeed"]
