"""The image bytes of a `POST /v1/predict` request: a multipart upload or the raw body.

The whole body is read with a byte cap before anything parses it, so the cap holds for
both forms and for chunked requests that declare no Content-Length, and a client that
declares a small Content-Length but sends more is cut off at the cap too.
"""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message

UPLOAD_FIELD = "file"


async def read_image_bytes(request: Request, max_bytes: int) -> bytes:
    """The uploaded image's bytes; HTTPException 413 over `max_bytes`, 400 when malformed."""
    body = await read_body(request, max_bytes)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await _multipart_file(request, body)
    return body


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused (413) as soon as the header or the bytes pass `max_bytes`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(400, f"invalid Content-Length header {declared!r}.")
        if int(declared) > max_bytes:
            raise HTTPException(413, _too_large(int(declared), max_bytes))
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise HTTPException(413, _too_large(size, max_bytes, at_least=True))
            chunks.append(chunk)
    except ClientDisconnect:
        raise HTTPException(400, "the client disconnected before the body was sent.") from None
    return b"".join(chunks)


def _too_large(size: int, max_bytes: int, at_least: bool = False) -> str:
    more = "more than " if at_least else ""
    return f"the upload is {more}{size:,} bytes; the limit is {max_bytes:,} bytes."


async def _multipart_file(request: Request, body: bytes) -> bytes:
    """The `file` field of a multipart body that has already been read (and size-checked)."""

    async def replay() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    # One file and a few fields: a form with thousands of parts is an attack, not an upload.
    form = await Request(request.scope, replay).form(max_files=1, max_fields=8)
    try:
        upload = form.get(UPLOAD_FIELD)
        if not isinstance(upload, UploadFile):
            raise HTTPException(
                400, f"the multipart form has no file field named {UPLOAD_FIELD!r}."
            )
        return await upload.read()
    finally:
        await form.close()
