"""
The HTTP server layer under the proxy: uvicorn with a stricter, audited parser.

uvicorn's httptools protocol refuses what its parser cannot read (bad framing,
unknown methods, malformed targets) with a bare ``400`` before any application code
runs, so those refusals left no audit trace; and the parser (llhttp) accepts a
request line without an HTTP version as HTTP/0.9 (``GET /path``) and passes it on.
:func:`guarded_protocol` returns a subclass of that protocol which

- refuses any HTTP version other than 1.0 and 1.1 while the headers complete
  (RFC 9112 §2.3; the app refuses it again, should it run under another server);
- answers every parser refusal in the proxy's own error shape and reports it, with
  its :class:`~gatepass.proxy.reasons.RefusalReason`, to
  :meth:`~gatepass.proxy.app.ProxyApp.record_server_refusal`, which audits and
  counts it like any other refusal;
- reports the ``503`` uvicorn answers when the concurrency limit is reached.

WebSocket upgrades reach the app as ``websocket`` scopes, which it closes and
audits. :func:`server_config` is the one place the proxy's uvicorn settings live,
for ``gatepass proxy`` and for tests that run the real server.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Protocol

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from gatepass.errors import InvalidRequestError
from gatepass.proxy.checks import HTTP_VERSIONS
from gatepass.proxy.reasons import RefusalReason
from gatepass.proxy.settings import ProxyServerSettings
from gatepass.verify import error_body

if TYPE_CHECKING:
    from gatepass.proxy.app import ProxyApp

__all__ = ["ServerRefusalSink", "guarded_protocol", "server_config"]

_DESCRIPTIONS = {
    RefusalReason.MALFORMED_REQUEST: "malformed http request",
    RefusalReason.INVALID_METHOD: "unknown http method",
    RefusalReason.INVALID_TARGET: "malformed request target",
    RefusalReason.HTTP_VERSION: "only http/1.0 and http/1.1 are served",
}
_MAX_METHOD = 32


class ServerRefusalSink(Protocol):
    """Where the server layer reports the refusals it makes."""

    def record_server_refusal(
        self, reason: RefusalReason, *, method: str, raw_path: str
    ) -> None:
        """Audit and count one refusal."""


class _VersionRefusedError(Exception):
    """Raised in a parser callback to stop a request with an unserved version."""


def _reason_of(error: BaseException | None) -> RefusalReason:
    if isinstance(error, httptools.HttpParserCallbackError) and isinstance(
        error.__context__, _VersionRefusedError
    ):
        return RefusalReason.HTTP_VERSION
    if isinstance(error, httptools.HttpParserInvalidMethodError):
        return RefusalReason.INVALID_METHOD
    if isinstance(error, httptools.HttpParserInvalidURLError):
        return RefusalReason.INVALID_TARGET
    return RefusalReason.MALFORMED_REQUEST


def guarded_protocol(sink: ServerRefusalSink) -> type[asyncio.Protocol]:
    """
    Return uvicorn's httptools protocol, strict about versions and audited.

    Args:
        sink: what records each server-layer refusal (the proxy app).

    Returns:
        A protocol class for uvicorn's ``http`` setting.
    """

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol, refusing HTTP/0.9 and auditing refusals."""

        def on_headers_complete(self) -> None:
            """Refuse an unserved HTTP version, report overload, then go on."""
            if self.parser.get_http_version() not in HTTP_VERSIONS:
                # Raising here stops the parser: uvicorn answers 400 below.
                raise _VersionRefusedError
            if self.limit_concurrency is not None and (
                len(self.connections) >= self.limit_concurrency
                or len(self.tasks) >= self.limit_concurrency
            ):
                # uvicorn answers 503 itself, without running the app.
                sink.record_server_refusal(
                    RefusalReason.OVERLOADED,
                    method=self._method(),
                    raw_path=self._path(),
                )
            super().on_headers_complete()

        def send_400_response(self, msg: str) -> None:
            """Answer a parser refusal in the proxy's error shape, and report it."""
            del msg
            # uvicorn calls this from its `except HttpParserError` block, so the
            # error being handled says which check failed.
            reason = _reason_of(sys.exc_info()[1])
            known = reason == RefusalReason.HTTP_VERSION
            sink.record_server_refusal(
                reason,
                method=self._method() if known else "-",
                raw_path=self._path(),
            )
            body = error_body(InvalidRequestError(_DESCRIPTIONS[reason]))
            content = [STATUS_LINE[400]]
            for name, value in self.server_state.default_headers:
                content.extend([name, b": ", value, b"\r\n"])
            content.extend(
                [
                    b"content-type: application/json\r\n",
                    b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                    b"cache-control: no-store\r\n",
                    b"connection: close\r\n",
                    b"\r\n",
                    body,
                ]
            )
            self.transport.write(b"".join(content))
            self.transport.close()

        def _method(self) -> str:
            try:
                method = self.parser.get_method().decode("ascii", "replace")
            except (AttributeError, httptools.HttpParserError):
                return "-"
            return method[:_MAX_METHOD]

        def _path(self) -> str:
            # The target as far as it was read, never its query (which may carry
            # credentials of the agent's own).
            url: bytes = getattr(self, "url", b"") or b""
            return url.split(b"?", 1)[0].decode("latin-1")[:512]

    return GuardedHttpToolsProtocol


def server_config(
    app: ProxyApp, settings: ProxyServerSettings, *, port: int | None = None
) -> uvicorn.Config:
    """
    Return the uvicorn configuration ``gatepass proxy`` serves with.

    Args:
        app: the proxy application; it also records the server-layer refusals.
        settings: the ``[proxy]`` settings (host, port).
        port: a port overriding the configured one (tests).

    Returns:
        The configuration: the guarded protocol, no access log (the proxy logs and
        audits each request itself), no ``Server`` header, and no trust in
        ``X-Forwarded-*`` (the proxy never uses the client's claims).
    """
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port if port is None else port,
        http=guarded_protocol(app),
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        lifespan="on",
        timeout_keep_alive=30,
        limit_concurrency=4096,
    )
