"""Backtests over the API: start one (operators), follow its progress, read its report and
export its trades.

``POST /api/v1/backtests`` stores the run and sends it to the analytics queue by name; the worker
records its progress (share and bars done) on the run as it goes, then its report and fills.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from kombu.exceptions import OperationalError
from redis import RedisError
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from trading import bus
from trading.api.serializers import (
    MAX_EXCHANGE_LEVERAGE,
    StrictDecimalField,
    StrictIntegerField,
    SymbolField,
)
from trading.backtest.report import trades_csv_rows
from trading.backtest.services import (
    bar_count,
    create_run,
    run_summary,
    serving_model_version,
    strategy_choices,
    strategy_kind,
)
from trading.marketdata.services import symbol_rules
from trading.models import BacktestRun, ModelVersion
from trading.strategies.ai import KIND as AI_MODEL

MAX_SYMBOLS = 10


class SymbolListField(serializers.ListField):
    """Symbols as a list (``["BTCUSDT", "ETHUSDT"]``) or a comma-separated text, each read by
    ``trading.primitives.read_symbol``; repeats dropped, order kept."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("child", SymbolField())
        kwargs.setdefault("allow_empty", False)
        kwargs.setdefault("max_length", MAX_SYMBOLS)
        super().__init__(**kwargs)
        self.error_messages["empty"] = "give at least one symbol, such as BTCUSDT"

    def to_internal_value(self, data) -> list[str]:
        if isinstance(data, str):
            data = [part.strip() for part in data.split(",") if part.strip()]
        symbols = super().to_internal_value(data)
        return list(dict.fromkeys(symbols))


def _rate(low: str, high: str, **options) -> StrictDecimalField:
    return StrictDecimalField(
        max_digits=None, decimal_places=None, required=False,
        min_value=Decimal(low), max_value=Decimal(high), **options,
    )  # fmt: skip


class BacktestRequestSerializer(serializers.Serializer):
    strategy = serializers.CharField(
        max_length=64, help_text="a stored strategy configuration's name, or a kind"
    )
    symbols = SymbolListField()
    start = serializers.DateTimeField(help_text="ISO 8601; UTC when no offset is given")
    end = serializers.DateTimeField()
    fee = _rate("0", "0.1", help_text="taker fee rate, e.g. 0.001 (the paper exchange's)")
    slippage_bps = _rate("0", "1000")
    volume_share = _rate("0.000001", "1", help_text="the most of a bar's volume one order fills")
    starting_cash = _rate("1", "1000000000000")
    account_kind = serializers.ChoiceField(
        choices=["spot", "futures"], required=False, default="spot",
        help_text="futures: a USDⓈ-M perpetual account (margin, shorts, liquidation)",
    )  # fmt: skip
    leverage = StrictIntegerField(
        required=False, default=1, min_value=1, max_value=MAX_EXCHANGE_LEVERAGE,
        help_text="futures only: the leverage of every symbol",
    )  # fmt: skip
    model_version = serializers.CharField(
        max_length=80, required=False, allow_blank=True, default="",
        help_text="ai_model only: the version to run (default: the serving one)",
    )  # fmt: skip

    def validate_strategy(self, value: str) -> str:
        if strategy_kind(value) is None:
            known = ", ".join(strategy_choices())
            raise serializers.ValidationError(f"unknown strategy {value!r} (known: {known})")
        return value

    def validate_symbols(self, value: list[str]) -> list[str]:
        known = symbol_rules()
        unknown = [symbol for symbol in value if symbol not in known]
        if unknown:
            raise serializers.ValidationError(f"unknown symbol {unknown[0]!r}")
        return value

    def validate(self, attrs: dict) -> dict:
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": ["must be after start"]})
        if attrs.get("leverage", 1) != 1 and attrs.get("account_kind") != "futures":
            raise serializers.ValidationError(
                {"leverage": ["a spot account trades at 1: set account_kind futures"]}
            )
        version = attrs.get("model_version", "")
        if strategy_kind(attrs["strategy"]) == AI_MODEL:
            if version and not ModelVersion.objects.filter(version=version).exists():
                raise serializers.ValidationError(
                    {"model_version": [f"unknown model version {version!r}"]}
                )
            if not version and serving_model_version() is None:
                raise serializers.ValidationError(
                    {"model_version": ["no model serves: train one or name a version"]}
                )
        elif version:
            raise serializers.ValidationError(
                {"model_version": [f"only the {AI_MODEL} strategy takes a model version"]}
            )
        if not bar_count(attrs["symbols"], attrs["start"], attrs["end"]):
            shown = ", ".join(attrs["symbols"])
            raise serializers.ValidationError(
                {"start": [f"no bars of {shown} between {attrs['start']} and {attrs['end']}"]}
            )
        return attrs

    def run_options(self) -> dict[str, str]:
        data = self.validated_data
        options = {
            key: str(data[key])
            for key in ("fee", "slippage_bps", "volume_share", "starting_cash")
            if data.get(key) is not None
        }
        if data.get("model_version"):
            options["model_version"] = data["model_version"]
        if data.get("account_kind") == "futures":
            options["account_kind"] = "futures"
            options["leverage"] = str(data["leverage"])
        return options


class BacktestListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=BacktestRun.Status.choices, required=False)
    limit = StrictIntegerField(min_value=1, max_value=500, default=50)


def _urls(run_id: int) -> dict[str, str]:
    return {
        "url": f"/api/v1/backtests/{run_id}",
        "trades_csv_url": f"/api/v1/backtests/{run_id}/trades.csv",
    }


class BacktestsView(APIView):
    @extend_schema(request=BacktestRequestSerializer, responses={202: dict, 503: dict})
    def post(self, request: Request) -> Response:
        """Stores a backtest run and queues it on the analytics service; its progress and then
        its report are at the run's URL."""
        incoming = BacktestRequestSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        run = create_run(
            data["strategy"], data["symbols"], data["start"], data["end"],
            options=incoming.run_options(), requested_by=request.user.get_username(),
        )  # fmt: skip
        try:
            bus.send(bus.RUN_BACKTEST, run.pk, ignore_result=True)
        except (RedisError, OperationalError, OSError) as error:
            BacktestRun.objects.filter(pk=run.pk).update(
                status=BacktestRun.Status.FAILED, error=f"not queued: {error}"[:300]
            )
            return Response(
                {"detail": "the task queue is unavailable: try again shortly", "id": run.pk},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        body = {"id": run.pk, "status": run.status, **_urls(run.pk)}
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="backtests_list", parameters=[BacktestListQuerySerializer],
        responses={200: dict},
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        """Stored runs, newest first: what each ran (strategy, model and code versions,
        settings, symbols, range), its status and progress."""
        query = BacktestListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        runs = BacktestRun.objects.defer("fills")
        if "status" in query.validated_data:
            runs = runs.filter(status=query.validated_data["status"])
        runs = runs[: query.validated_data["limit"]]
        return Response([{**run_summary(run), **_urls(run.pk)} for run in runs])


class BacktestView(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request: Request, run_id: int) -> Response:
        """The run with its report (metrics, buy-and-hold, equity and drawdown curves, None
        until it is done) and its fills."""
        run = get_object_or_404(BacktestRun, pk=run_id)
        return Response(
            {**run_summary(run), **_urls(run.pk), "report": run.report, "fills": run.fills}
        )


class BacktestTradesView(APIView):
    @extend_schema(
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="one row a fill"),
            404: dict,
        }
    )
    def get(self, request: Request, run_id: int) -> HttpResponse:
        """The run's fills as CSV: time, symbol, side, quantity, price, fee, realized PnL and
        the order's purpose, a header first."""
        run = get_object_or_404(BacktestRun.objects.only("pk", "fills"), pk=run_id)
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(trades_csv_rows(run.fills))
        response = HttpResponse(text.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="backtest-{run.pk}-trades.csv"'
        return response
