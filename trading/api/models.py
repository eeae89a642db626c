"""Model versions over the API: the champion, the challenger and operators' decisions.

``GET /api/v1/models``; ``POST /api/v1/models/<version>/promote`` and ``.../rollback`` (operators
only, ``{"reason": "..."}`` optional), each audited as a ``ModelDecision``."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from trading.ai import champion as champions
from trading.models import ModelVersion


class DecisionSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class ModelsView(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response(champions.models_overview())


class _DecisionView(APIView):
    decide = staticmethod(champions.promote_version)

    @extend_schema(request=DecisionSerializer, responses={200: dict, 404: dict, 409: dict})
    def post(self, request: Request, version: str) -> Response:
        incoming = DecisionSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        try:
            decision = self.decide(
                version,
                actor=request.user.get_username(),
                reason=incoming.validated_data["reason"],
            )
        except ModelVersion.DoesNotExist:
            return Response({"detail": f"no model version {version}"}, status.HTTP_404_NOT_FOUND)
        except champions.DecisionRefused as refused:
            return Response({"detail": str(refused)}, status=status.HTTP_409_CONFLICT)
        return Response(
            {"decision": champions.decision_json(decision), **champions.models_overview()}
        )


class PromoteView(_DecisionView):
    decide = staticmethod(champions.promote_version)


class RollbackView(_DecisionView):
    decide = staticmethod(champions.roll_back_version)
