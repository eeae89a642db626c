"""The bar store over the API: ``GET /api/v1/bars?symbol=&start=&end=&limit=``."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from trading.api.serializers import StrictIntegerField, SymbolField
from trading.marketdata.barstore import stored_bars

MAX_BARS = 5000


class BarQuerySerializer(serializers.Serializer):
    symbol = SymbolField()
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)
    limit = StrictIntegerField(min_value=1, max_value=MAX_BARS, default=500)

    def validate(self, attrs: dict) -> dict:
        if "start" in attrs and "end" in attrs and attrs["end"] < attrs["start"]:
            raise serializers.ValidationError({"end": "ends before start"})
        return attrs


class BarsView(APIView):
    @extend_schema(parameters=[BarQuerySerializer], responses={200: dict})
    def get(self, request: Request) -> Response:
        """Stored closed bars of one symbol, oldest first: the first ``limit`` opening at or
        after ``start``, or without ``start`` the last ``limit`` closing by ``end``."""
        query = BarQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        bars = stored_bars(
            params["symbol"], start=params.get("start"), end=params.get("end"),
            limit=params["limit"],
        )  # fmt: skip
        return Response(
            {
                "symbol": params["symbol"],
                "interval": settings.KLINE_INTERVAL,
                "bars": [bar.to_payload() for bar in bars],
            }
        )
