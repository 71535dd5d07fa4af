"""
The keys of SSF transmitters: read from ``jwks_file`` or fetched from ``jwks_uri``.

Built from configuration only, with the identity package's fetcher (https, public
addresses, size and time limits) and its key cache (refreshed every 5 minutes; an
unknown ``kid`` reloads at most once a minute for a URL, every 5 s for a file), so a
SET can never make the broker fetch anything it names.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Awaitable, Callable
from typing import Final

from gatepass.clock import Clock
from gatepass.errors import ConfigurationError
from gatepass.identity import (
    DocumentFetcher,
    FetchLimits,
    IssuerKeys,
    parse_key_set,
    read_key_file,
)
from gatepass.ssf.rules import TransmitterSettings

__all__ = ["transmitter_keys"]

_MAX_KEYS: Final = 32


def _loader(settings: TransmitterSettings) -> Callable[[], Awaitable[bytes]]:
    limits = FetchLimits()
    if settings.jwks_uri is not None:
        fetcher = DocumentFetcher(
            limits=limits, allow_http_loopback=settings.allow_http_loopback
        )
        return functools.partial(fetcher.fetch, settings.jwks_uri)
    if settings.jwks_file is None:  # pragma: no cover - the settings require one
        raise ConfigurationError("transmitter has no key source")
    return functools.partial(read_key_file, settings.jwks_file, limits.max_bytes)


def transmitter_keys(settings: TransmitterSettings, *, clock: Clock) -> IssuerKeys:
    """
    Return one transmitter's key cache (nothing is loaded until a SET needs a key).

    Args:
        settings: the transmitter's table.
        clock: the time source.
    """
    return IssuerKeys(
        issuer=settings.issuer,
        load=_loader(settings),
        parse=functools.partial(
            parse_key_set,
            algorithms=frozenset(settings.algorithms),
            max_keys=_MAX_KEYS,
            spiffe_bundle=False,
        ),
        clock=clock,
        min_refetch_interval=dt.timedelta(
            seconds=5 if settings.jwks_file is not None else 60
        ),
    )
