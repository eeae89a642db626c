"""Alertmanager's webhook: each firing or resolved alert becomes a notification."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.db import transaction
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from trading.notifications.notices import notices_for_alertmanager
from trading.notifications.services import queue_notices, request_dispatch


class AlertmanagerCaller:
    """Who posts with Alertmanager's bearer token: no user, only the right to post alerts."""

    is_authenticated = True


class AlertmanagerToken(BaseAuthentication):
    """``Authorization: Bearer $QT_ALERTMANAGER_TOKEN``. Any other caller is refused with 401
    before anything else is looked at (the method, the body); while the variable is unset no
    token is right, and the refusal says so."""

    def authenticate(self, request: Request):
        scheme, _, token = get_authorization_header(request).decode(errors="replace").partition(" ")
        expected = settings.ALERTMANAGER_TOKEN
        if scheme.lower() != "bearer":
            return None
        if not expected:
            raise AuthenticationFailed("QT_ALERTMANAGER_TOKEN is not set: the webhook is off")
        if not hmac.compare_digest(token.strip().encode(), expected.encode()):
            raise AuthenticationFailed("the bearer token is not the Alertmanager token")
        return AlertmanagerCaller(), None

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="alertmanager"'


class AlertmanagerTokenScheme(OpenApiAuthenticationExtension):
    """How the schema names the webhook's authentication: a bearer token."""

    target_class = AlertmanagerToken
    name = "alertmanagerToken"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(
            header_name="Authorization",
            token_prefix="Bearer",  # noqa: S106 - a scheme name
        )


class AlertmanagerWebhookView(APIView):
    """``POST`` Alertmanager's webhook message (version 4), with
    ``Authorization: Bearer $QT_ALERTMANAGER_TOKEN``; 401 without it."""

    authentication_classes = [AlertmanagerToken]
    permission_classes = [IsAuthenticated]

    @extend_schema(request=dict, responses={202: dict, 400: dict, 401: dict})
    def post(self, request: Request) -> Response:
        try:
            notices = notices_for_alertmanager(request.data)
        except (ValueError, AttributeError) as malformed:
            return Response({"detail": str(malformed)}, status=status.HTTP_400_BAD_REQUEST)
        with transaction.atomic():
            queued = queue_notices(notices)
            transaction.on_commit(request_dispatch)
        return Response({"alerts": len(notices), "queued": queued}, status=status.HTTP_202_ACCEPTED)
