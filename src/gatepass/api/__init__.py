"""The broker's HTTP face (Starlette). Only this package imports the ASGI framework."""

from __future__ import annotations

from gatepass.api.app import create_app

__all__ = ["create_app"]
