"""Read request bodies with a size limit and a declared content type."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from gatepass.errors import InvalidRequestError, PayloadTooLargeError

__all__ = ["read_body", "read_form_body", "read_json"]


async def read_body(request: Request, limit: int) -> bytes:
    """
    Return the body, refusing more than ``limit`` bytes without reading them all.

    Raises:
        PayloadTooLargeError: the body (declared or actual) is over the limit.
        InvalidRequestError: Content-Length is malformed.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidRequestError("malformed content-length")
        if int(declared) > limit:
            raise PayloadTooLargeError(f"body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_form_body(request: Request, limit: int) -> bytes:
    """
    Return a form body after checking its content type (RFC 6749 §3.2).

    Raises:
        InvalidRequestError: the content type is not form encoding.
        PayloadTooLargeError: the body is over the limit.
    """
    content_type = request.headers.get("content-type", "")
    if (
        content_type.split(";")[0].strip().lower()
        != "application/x-www-form-urlencoded"
    ):
        raise InvalidRequestError(
            "content type must be application/x-www-form-urlencoded"
        )
    return await read_body(request, limit)


async def read_json(request: Request, limit: int) -> Any:  # noqa: ANN401 - any JSON
    """
    Return a JSON body.

    Raises:
        InvalidRequestError: the content type or the JSON is wrong.
        PayloadTooLargeError: the body is over the limit.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise InvalidRequestError("content type must be application/json")
    body = await read_body(request, limit)
    try:
        return json.loads(body) if body else {}
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidRequestError("body is not valid JSON") from exc
