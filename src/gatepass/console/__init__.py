"""
The web console: the broker's own pages for operators, at ``/console``.

Server-rendered (Jinja2) over the broker's use cases, with htmx vendored for a few
live parts; no build step. Sign-in by one-time link (``gatepass console login``) or
OpenID Connect; sessions in HttpOnly SameSite=Strict cookies; CSRF tokens on every
form; a strict CSP. See docs/console.md.
"""

from __future__ import annotations

from gatepass.console.app import console_app, console_mount

__all__ = ["console_app", "console_mount"]
