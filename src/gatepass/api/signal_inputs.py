"""The JSON body of ``POST /v1/signals``, parsed into the broker's request."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gatepass.broker import SignalRequest

__all__ = ["SignalBody"]

_Scope = Annotated[str, Field(min_length=1, max_length=255)]


class SignalBody(BaseModel):
    """
    One signal: what it is about, and until when.

    ``{"kind": "risk", "agent": NAME|ID, "level": "high"}``,
    ``{"kind": "freeze", "environment": ENV, "until": TIME}`` or
    ``{"kind": "incident", "tenant": TENANT}``; ``"clear": true`` ends one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["risk", "freeze", "incident"]
    agent: _Scope | None = None
    environment: _Scope | None = None
    tenant: _Scope | None = None
    level: Literal["low", "medium", "high"] = "high"
    until: dt.datetime | None = None
    clear: bool = False
    reason: Annotated[str, Field(max_length=200)] = ""

    @model_validator(mode="after")
    def _one_scope(self) -> SignalBody:
        wanted = {"risk": "agent", "freeze": "environment", "incident": "tenant"}[
            self.kind
        ]
        given = [
            name
            for name in ("agent", "environment", "tenant")
            if getattr(self, name) is not None
        ]
        if given != [wanted]:
            raise ValueError(f"a {self.kind} signal names exactly one {wanted}")
        if self.until is not None and self.until.tzinfo is None:
            raise ValueError("until must carry a time zone")
        return self

    def to_request(self) -> SignalRequest:
        """Return the broker's request."""
        scope = self.agent or self.environment or self.tenant or ""
        return SignalRequest(
            kind=self.kind,
            scope=scope,
            level=self.level,
            until=self.until,
            clear=self.clear,
            reason=self.reason,
        )
