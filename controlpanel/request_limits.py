"""The request body limit, answered the way the API answers everything: in JSON.

Django refuses a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` only when something reads it, and then
with its HTML "Bad Request (400)" page. ``BodySizeLimitMiddleware`` answers an API request that
announces a larger body with a 413 naming the limit before anything reads it.

A chunked body has no ``Content-Length``, and Django's WSGI handler reads such a body as empty.
``ChunkedBodyBuffer`` (around the WSGI application) reads it, up to one byte past the limit,
when the server says the input ends with the body (``wsgi.input_terminated``, which gunicorn
sets), and hands Django the bytes with their length; so a chunked body is seen, and a chunked
body over the limit is refused like any other.

Either way the rest of a refused body is read and thrown away, up to ``MAX_DISCARDED`` bytes, before
the answer goes out: a WSGI server that closes a connection with unread bytes in it makes the
kernel reset it, and the client, still sending, never reads its 413 (the lingering close of RFC
9112, section 9.6). A larger body is cut off unread.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from trading.api.exceptions import too_large_detail

API_PREFIX = "/api/"
MAX_DISCARDED = 32 * 1024 * 1024


class BodySizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and request.path.startswith(API_PREFIX):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return JsonResponse({"detail": "Content-Length is not a number"}, status=400)
            if length > limit:
                if length <= MAX_DISCARDED:
                    _read_up_to(request, length, keep=False)
                return JsonResponse({"detail": too_large_detail()}, status=413)
        return self.get_response(request)


class ChunkedBodyBuffer:
    """WSGI middleware; see the module's docstring."""

    def __init__(self, application: Callable) -> None:
        self.application = application

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and not environ.get("CONTENT_LENGTH") and environ.get("wsgi.input_terminated"):
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            stream = environ["wsgi.input"]
            body = _read_up_to(stream, None if limit is None else limit + 1)
            if limit is not None and len(body) > limit:
                _read_up_to(stream, MAX_DISCARDED - len(body), keep=False)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.application(environ, start_response)


def _read_up_to(stream, most: int | None, *, keep: bool = True) -> bytes:
    parts, size = [], 0
    while most is None or size < most:
        part = stream.read(65536 if most is None else min(65536, most - size))
        if not part:
            break
        if keep:
            parts.append(part)
        size += len(part)
    return b"".join(parts)
