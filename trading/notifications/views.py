"""Alertmanager's webhook: each firing or resolved alert becomes a notification."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from trading.notifications.notices import notices_for_alertmanager
from trading.notifications.services import queue_notices, request_dispatch


def _bearer_ok(request: Request) -> bool:
    expected = settings.ALERTMANAGER_TOKEN
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return (
        bool(expected)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(token.strip().encode(), expected.encode())
    )


class AlertmanagerWebhookView(APIView):
    """``POST`` Alertmanager's webhook message (version 4), with
    ``Authorization: Bearer $QT_ALERTMANAGER_TOKEN``; 401 without it, 503 while unset."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(request=dict, responses={202: dict, 400: dict, 401: dict, 503: dict})
    def post(self, request: Request) -> Response:
        if not settings.ALERTMANAGER_TOKEN:
            return Response(
                {"detail": "QT_ALERTMANAGER_TOKEN is not set"},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        if not _bearer_ok(request):
            return Response(
                {"detail": "a bearer token is required"},
                status=status.HTTP_401_UNAUTHORIZED,
                headers={"WWW-Authenticate": 'Bearer realm="alertmanager"'},
            )
        try:
            notices = notices_for_alertmanager(request.data)
        except (ValueError, AttributeError) as malformed:
            return Response({"detail": str(malformed)}, status=status.HTTP_400_BAD_REQUEST)
        with transaction.atomic():
            queued = queue_notices(notices)
            transaction.on_commit(request_dispatch)
        return Response({"alerts": len(notices), "queued": queued}, status=status.HTTP_202_ACCEPTED)
