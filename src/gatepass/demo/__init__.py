"""
The quickstart demo: a tickets API protected by gatepass, and a guided tour of it.

This package is part of the server install; unlike the SDK it may use the broker's
settings and Starlette.
"""

from __future__ import annotations

from gatepass.demo.resource import create_resource_app, demo_target
from gatepass.demo.tour import run_tour

__all__ = ["create_resource_app", "demo_target", "run_tour"]
