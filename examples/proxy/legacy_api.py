"""
A legacy API that accepts only a static key: the upstream of the README's proxy example.

It answers ``GET /tickets`` (and ``GET /tickets/<id>``, ``POST /tickets``) to requests
carrying ``X-Api-Key: $LEGACY_API_KEY`` and refuses every other request. It never
echoes the key. Run it from the repository root::

    LEGACY_API_KEY=... .venv/bin/python examples/proxy/legacy_api.py [PORT]

The port defaults to 8403, the ``upstream`` of ``examples/proxy/proxy.toml``.
"""

from __future__ import annotations

import hmac
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_TICKETS = [
    {"id": 1, "title": "printer on fire", "state": "open"},
    {"id": 2, "title": "vpn drops every hour", "state": "open"},
]
_LOCK = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server_version = "legacy-api"
    key = b""

    def _authorized(self) -> bool:
        sent = self.headers.get("X-Api-Key", "").encode()
        # Constant time, as any check of a secret should be.
        return bool(self.key) and hmac.compare_digest(sent, self.key)

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - the http.server protocol
        if not self._authorized():
            self._answer(401, {"error": "a valid X-Api-Key is required"})
            return
        with _LOCK:
            if self.path == "/tickets":
                self._answer(200, {"items": _TICKETS})
                return
            for ticket in _TICKETS:
                if self.path == f"/tickets/{ticket['id']}":
                    self._answer(200, ticket)
                    return
        self._answer(404, {"error": "no such ticket"})

    def do_POST(self) -> None:  # noqa: N802 - the http.server protocol
        if not self._authorized():
            self._answer(401, {"error": "a valid X-Api-Key is required"})
            return
        if self.path != "/tickets":
            self._answer(404, {"error": "no such resource"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            sent = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._answer(400, {"error": "the body is not json"})
            return
        with _LOCK:
            ticket = {"id": len(_TICKETS) + 1, "title": str(sent.get("title", ""))}
            ticket["state"] = "open"
            _TICKETS.append(ticket)
        self._answer(201, ticket)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Stay quiet: the example's terminal belongs to the proxy."""


def main() -> None:
    """Serve until interrupted."""
    key = os.environ.get("LEGACY_API_KEY", "")
    if not key:
        sys.exit("legacy_api.py: set LEGACY_API_KEY (the same value the proxy reads)")
    _Handler.key = key.encode()
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8403
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    print(f"legacy API on http://127.0.0.1:{port}/ (X-Api-Key required)", flush=True)  # noqa: T201
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.server_close()


if __name__ == "__main__":
    main()
