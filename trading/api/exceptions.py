"""The API's exception handler: every refusal is JSON with a reason, including those Django
raises while reading the request."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from rest_framework.response import Response
from rest_framework.views import exception_handler


def too_large_detail() -> str:
    return f"request body too large: the limit is {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes"


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's handler, plus: a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is a 413 naming the
    limit, and Django's other refusals of a request (too many fields or files) a 400; both
    would otherwise be Django's HTML error page."""
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": too_large_detail()}, status=413)
    if isinstance(exc, SuspiciousOperation):
        return Response({"detail": str(exc) or "bad request"}, status=400)
    return exception_handler(exc, context)
