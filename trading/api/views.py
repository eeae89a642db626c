from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from trading.observability.probes import service_report
from trading.observability.services import SERVICES


class ServicesView(APIView):
    """The health of every service, as its /services/<name>/health page shows it."""

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response({name: service_report(s).health_json() for name, s in SERVICES.items()})
