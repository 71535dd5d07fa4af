"""
Compartments: each route's upstream secret, held apart and injected at the last step.

A compartment is loaded once at start from a file or an environment variable that
only the proxy can read, keeps its secret in a :class:`~gatepass.secret.Secret`, and
is the only object that ever reveals it: :meth:`Compartment.apply` puts it into the
outgoing request of its own route. Errors name the route and the file or variable,
never the value; ``repr`` shows only the route.
"""

from __future__ import annotations

import base64
import os
import re
import stat
from pathlib import Path
from typing import Literal, Self
from urllib.parse import quote, unquote_plus

from pydantic import BaseModel, ConfigDict, model_validator

from gatepass.errors import ConfigurationError
from gatepass.proxy.headers import HOP_BY_HOP
from gatepass.proxy.scanner import SecretScanner, StreamScan
from gatepass.secret import Secret

__all__ = ["MAX_SECRET_BYTES", "Compartment", "UpstreamAuth"]

MAX_SECRET_BYTES = 65_536

Header = tuple[bytes, bytes]

# RFC 9110 §5.6.2 token, for header names.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")
# RFC 3986 §2.3 unreserved characters, so the name needs no escaping in a query.
_QUERY_NAME = re.compile(r"[A-Za-z0-9._~-]{1,64}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# RFC 7617 §2: the user-id cannot contain a colon; no control characters either.
_USERNAME = re.compile(r"[\x20-\x39\x3b-\x7e]{1,256}")
# Visible ASCII and space: what a header value can carry without ambiguity.
_HEADER_SAFE = re.compile(r"[\x20-\x7e]+")
# Headers the proxy or the HTTP client owns; a secret placed there would change the
# framing or the destination of the request.
_RESERVED_HEADERS = HOP_BY_HOP | frozenset({"content-length", "host"})


class UpstreamAuth(BaseModel):
    """
    How a route authenticates to its upstream, and where its secret comes from.

    Args:
        method: ``header`` (``name: secret``), ``bearer``
            (``Authorization: Bearer secret``), ``basic``
            (``Authorization: Basic base64(username:secret)``) or ``query``
            (``?name=secret``).
        name: the header name for ``header``, the query parameter for ``query``.
        username: the user-id for ``basic``.
        secret_file: a file holding the secret, readable by its owner only.
        secret_env: an environment variable holding the secret.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["header", "bearer", "basic", "query"]
    name: str | None = None
    username: str | None = None
    secret_file: Path | None = None
    secret_env: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        self._check_name()
        if self.method == "basic":
            if self.username is None:
                raise ValueError("basic auth needs a username")
            if not _USERNAME.fullmatch(self.username):
                raise ValueError(
                    "username must be printable ascii without a colon (RFC 7617)"
                )
        elif self.username is not None:
            raise ValueError("username applies to basic auth only")
        if (self.secret_file is None) == (self.secret_env is None):
            raise ValueError("set exactly one of secret_file and secret_env")
        if self.secret_env is not None and not _ENV_NAME.fullmatch(self.secret_env):
            raise ValueError("secret_env must be an environment variable name")
        return self

    def _check_name(self) -> None:
        if self.method in {"bearer", "basic"}:
            if self.name is not None:
                raise ValueError(f"name does not apply to {self.method} auth")
            return
        if self.name is None:
            raise ValueError(f"{self.method} auth needs a name")
        if self.method == "header":
            if not _TOKEN.fullmatch(self.name):
                raise ValueError("name must be an http header name (RFC 9110 token)")
            if self.name.lower() in _RESERVED_HEADERS:
                raise ValueError("name must not be a hop-by-hop, host or length header")
        elif not _QUERY_NAME.fullmatch(self.name):
            raise ValueError(
                "name must be a query parameter of letters, digits and -._~"
            )

    @property
    def header_name(self) -> str | None:
        """The lower-case header the secret goes into, or None for ``query``."""
        if self.method in {"bearer", "basic"}:
            return "authorization"
        if self.method == "header" and self.name is not None:
            return self.name.lower()
        return None


def _decode_secret(data: bytes) -> tuple[str, Secret | None]:
    # Returns a problem instead of raising, so that no frame of a traceback (which
    # error reporters capture with its locals) holds the secret's bytes.
    if len(data) > MAX_SECRET_BYTES:
        return f"is larger than {MAX_SECRET_BYTES} bytes", None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "is not utf-8", None
    # One trailing newline is what editors and `echo` add; anything else is content.
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        return "is empty", None
    return "", Secret(text)


def _read_secret_file(route: str, path: Path) -> Secret:
    where = f"route {route!r}: secret file {path}"
    try:
        # Open first and check the opened file, so the checks and the read see the
        # same inode. Symlinks are followed: mounted secrets are usually links.
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise ConfigurationError(f"{where} does not exist") from None
    except OSError as exc:
        raise ConfigurationError(f"{where} cannot be opened: {exc.strerror}") from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise ConfigurationError(f"{where} is not a regular file")
        if status.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigurationError(
                f"{where} is accessible by group or others; chmod 600 it"
            )
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            problem, secret = _decode_secret(handle.read(MAX_SECRET_BYTES + 1))
    finally:
        os.close(descriptor)
    if secret is None:
        raise ConfigurationError(f"{where} {problem}")
    return secret


def _read_secret_env(route: str, name: str) -> Secret:
    if not os.environ.get(name):
        raise ConfigurationError(
            f"route {route!r}: environment variable {name} is not set or is empty"
        )
    return Secret(os.environ[name])


def _header_value(auth: UpstreamAuth, secret: Secret) -> Secret | None:
    if auth.method == "bearer":
        return Secret(f"Bearer {secret.reveal()}")
    if auth.method == "basic":
        credentials = f"{auth.username}:{secret.reveal()}".encode()
        return Secret("Basic " + base64.b64encode(credentials).decode("ascii"))
    if auth.method == "header":
        return secret
    return None


def _scanner(auth: UpstreamAuth, secret: Secret) -> SecretScanner:
    # What leaves the proxy, for the response scanner. "Bearer <secret>", the
    # query's percent-encoded secret and "user:<secret>" contain the secret or are
    # among its spellings; basic auth's base64 credentials do not, so they are a
    # plaintext of their own (their base64 and hex forms are searched too).
    plaintexts = [secret.reveal().encode()]
    if auth.method == "basic":
        credentials = f"{auth.username}:{secret.reveal()}".encode()
        plaintexts.append(base64.b64encode(credentials))
    return SecretScanner(plaintexts)


def _query_name(part: str) -> str:
    # Case-folded: some frameworks read query parameter names case-insensitively.
    return unquote_plus(part.split("=", 1)[0]).casefold()


class Compartment:
    """
    One route's upstream secret.

    Build it with :meth:`load`; the constructor is for tests that already hold a
    :class:`Secret`.

    Args:
        route: the route's name, the only thing ``repr`` shows.
        auth: how the secret is injected.
        secret: the secret.

    Raises:
        ConfigurationError: the secret cannot be carried by the method (a control
            character or non-ASCII in a header value).
    """

    __slots__ = ("_auth", "_header_value", "_route", "_scanner", "_secret")

    def __init__(self, route: str, auth: UpstreamAuth, secret: Secret) -> None:
        """Check that the secret fits the method and precompute its injected form."""
        self._route = route
        # The secret is revealed only inside expressions, never bound to a local,
        # so that a traceback's captured locals cannot carry it.
        if not secret.reveal():
            raise ConfigurationError(f"route {route!r}: the secret is empty")
        if auth.method in {"header", "bearer"} and not _HEADER_SAFE.fullmatch(
            secret.reveal()
        ):
            # A CR or LF here would let the secret inject headers upstream.
            raise ConfigurationError(
                f"route {route!r}: the secret has characters a header cannot carry "
                "(only printable ascii is allowed)"
            )
        self._auth = auth
        self._secret = secret
        self._header_value = _header_value(auth, secret)
        self._scanner = _scanner(auth, secret)

    @classmethod
    def load(cls, route: str, auth: UpstreamAuth) -> Compartment:
        """
        Read a route's secret from its file or environment variable.

        Args:
            route: the route's name, for messages and ``repr``.
            auth: the route's upstream authentication settings.

        Returns:
            The compartment.

        Raises:
            ConfigurationError: the file is missing, not a regular file, accessible
                by group or others, too large, not UTF-8 or empty; the variable is
                unset or empty; or the secret cannot be carried by the method. The
                message names the route and the file or variable, never the value.
        """
        if auth.secret_file is not None:
            secret = _read_secret_file(route, auth.secret_file)
        elif auth.secret_env is not None:
            secret = _read_secret_env(route, auth.secret_env)
        else:  # pragma: no cover - UpstreamAuth guarantees one of the two
            raise ConfigurationError(f"route {route!r}: no secret source")
        return cls(route, auth, secret)

    @property
    def route(self) -> str:
        """The route this secret belongs to."""
        return self._route

    @property
    def auth(self) -> UpstreamAuth:
        """How the secret is injected."""
        return self._auth

    def apply(self, headers: list[Header], query: str) -> tuple[list[Header], str]:
        """
        Inject the secret into an outgoing request.

        Any client-supplied header of the same name (``authorization`` for bearer
        and basic) or query parameter of the same name is removed first, so the
        upstream sees exactly one credential: this route's.

        Args:
            headers: the headers to send upstream (not modified).
            query: the raw query string to send upstream, without ``?``.

        Returns:
            The new headers and query string.
        """
        header_name = self._auth.header_name
        if self._header_value is not None and header_name is not None:
            encoded_name = header_name.encode("ascii")
            kept = [(n, v) for n, v in headers if n.lower() != encoded_name]
            kept.append((encoded_name, self._header_value.reveal().encode("ascii")))
            return kept, query
        return list(headers), self._inject_query(query)

    def _inject_query(self, query: str) -> str:
        name = self._auth.name or ""
        folded = name.casefold()
        kept = []
        for part in query.split("&"):
            # Some servers also split on ";": a "x=1;key=..." part must go too.
            if not part or any(
                _query_name(piece) == folded for piece in part.split(";")
            ):
                continue
            kept.append(part)
        kept.append(f"{name}={quote(self._secret.reveal(), safe='')}")
        return "&".join(kept)

    def contains_secret(self, data: bytes | str) -> bool:
        """
        Tell whether data contains the secret, raw, as injected or encoded.

        Used to refuse to relay an upstream answer that echoes the secret. The
        spellings are those of :class:`~gatepass.proxy.scanner.SecretScanner`: raw,
        JSON-escaped, percent-encoded, base64 and base64url in every alignment, and
        hex, of the secret and (for basic auth) of the base64 credentials.

        Args:
            data: a body or header value.

        Returns:
            True if any spelling of the secret occurs in ``data``.
        """
        return self._scanner.found(data)

    def stream_scan(self) -> StreamScan:
        """Return a scan for one streamed answer (see :class:`StreamScan`)."""
        return self._scanner.stream()

    def redaction_forms(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """
        Return the secret's spellings, for scrubbing logs by value.

        Returns:
            The case-sensitive spellings and the lower-case ones that match in any
            case (hex and percent-encodings).
        """
        return self._scanner.forms()

    def __repr__(self) -> str:
        """Show the route only."""
        return f"Compartment(route={self._route!r})"

    __str__ = __repr__

    def __reduce__(self) -> str:
        """Refuse to be pickled, so the secret never lands in a cache or a queue."""
        raise TypeError("compartments cannot be pickled")
