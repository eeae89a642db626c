"""The JSON API. Views authorise, call one domain function and render."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from redis import RedisError
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from trading import bus, rpc
from trading.api import serializers as s
from trading.events.replay import read_window
from trading.execution.intake import (
    PROCESS_SIGNAL,
    InvalidSignal,
    SignalRequest,
    handoff_for,
    submit_signal,
)
from trading.ledger.services import portfolio_summary
from trading.marketdata.prices import latest_prices
from trading.models import Order, Position, SelfTestRun, Signal
from trading.observability.probes import service_report
from trading.observability.services import SERVICES
from trading.risk import services as risk
from trading.risk.state import InvalidTransition


class ServicesView(APIView):
    """The health of every service, as its /services/<name>/health page shows it."""

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response({name: service_report(s).health_json() for name, s in SERVICES.items()})


def _query(request: Request, serializer_class=s.ListQuerySerializer) -> dict:
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data


def _filtered(queryset, params: dict):
    if symbol := params.get("symbol"):
        queryset = queryset.filter(symbol=symbol.upper())
    if correlation_id := params.get("correlation_id"):
        queryset = queryset.filter(correlation_id=correlation_id)
    if status_ := params.get("status"):
        queryset = queryset.filter(status=status_)
    return queryset[: params["limit"]]


class SignalsView(APIView):
    @extend_schema(request=s.SignalCreateSerializer, responses={202: dict, 200: dict})
    def post(self, request: Request) -> Response:
        """Accepts a signal for exec-risk. With ``?wait=1`` the answer waits (within the RPC
        deadline, with retries) for the signal's fate instead of answering 202 at once."""
        incoming = s.SignalCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        signal_request = SignalRequest(
            symbol=data["symbol"],
            side=data["side"],
            confidence=data["confidence"],
            notional=data.get("notional"),
            quantity=data.get("quantity"),
            leverage=data["leverage"],
            stop_loss_price=data.get("stop_loss"),
            take_profit_price=data.get("take_profit"),
            close_position=data["close_position"],
            reduce_only=data["reduce_only"],
        )
        # The dashboard's trade ticket is an operator's own order, recorded as such.
        source = "dashboard" if request.headers.get("X-Requested-From") == "dashboard" else "api"
        try:
            signal = submit_signal(
                risk.get_account(), signal_request, producer="web", source=source
            )
        except InvalidSignal as error:
            return Response({"detail": str(error)}, status=status.HTTP_400_BAD_REQUEST)
        body = {
            "id": str(signal.id),
            "correlation_id": str(signal.correlation_id),
            "status": signal.status,
            "url": f"/api/v1/signals/{signal.id}",
        }
        # The signal is saved and reaches exec-risk through the outbox whatever Redis does now:
        # without its answer in time, it is accepted all the same.
        if request.query_params.get("wait") in ("1", "true"):
            try:
                outcome = rpc.await_task(handoff_for(signal).task_id, PROCESS_SIGNAL)
            except rpc.RpcTimeout as timeout:
                return Response({**body, "error": str(timeout)}, status=504)
            except RedisError:
                return Response(body, status=status.HTTP_202_ACCEPTED)
            return Response({**body, **outcome}, status=200)
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(parameters=[s.ListQuerySerializer], responses=s.SignalSerializer(many=True))
    def get(self, request: Request) -> Response:
        signals = _filtered(Signal.objects.prefetch_related("orders__fills"), _query(request))
        return Response(s.SignalSerializer(signals, many=True).data)


class SignalDetailView(APIView):
    @extend_schema(responses=s.SignalSerializer)
    def get(self, request: Request, signal_id) -> Response:
        signal = get_object_or_404(Signal.objects.prefetch_related("orders__fills"), pk=signal_id)
        return Response(s.SignalSerializer(signal).data)


class OrdersView(APIView):
    @extend_schema(parameters=[s.ListQuerySerializer], responses=s.OrderSerializer(many=True))
    def get(self, request: Request) -> Response:
        orders = _filtered(Order.objects.prefetch_related("fills"), _query(request))
        return Response(s.OrderSerializer(orders, many=True).data)


class PositionsView(APIView):
    @extend_schema(parameters=[s.ListQuerySerializer], responses=s.PositionSerializer(many=True))
    def get(self, request: Request) -> Response:
        positions = _filtered(Position.objects.all(), _query(request))
        context = {"marks": latest_prices()}
        return Response(s.PositionSerializer(positions, many=True, context=context).data)


class PortfolioView(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response(portfolio_summary(risk.get_account(), latest_prices()))


class EventsView(APIView):
    @extend_schema(parameters=[s.EventQuerySerializer], responses={200: dict})
    def get(self, request: Request) -> Response:
        params = _query(request, s.EventQuerySerializer)
        types = {params["type"]} if params.get("type") else None
        window = read_window(
            types=types, since=params.get("since"), until=params.get("until"),
            limit=params["limit"], correlation_id=params.get("correlation_id"),
        )  # fmt: skip
        return Response({"events": [event.as_json(sid) for sid, event in window]})


class SelfTestRunsView(APIView):
    @extend_schema(request=s.SelfTestRequestSerializer, responses={202: s.SelfTestRunSerializer})
    def post(self, request: Request) -> Response:
        """Starts a run of the system checks on the analytics service; results stream to the
        dashboard and accumulate at the run's URL."""
        from trading.selftest.runner import RunInProgress, start_run

        incoming = s.SelfTestRequestSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        trigger = "dashboard" if request.headers.get("X-Requested-From") == "dashboard" else "api"
        try:
            run = start_run(
                incoming.validated_data["suite"], trigger=trigger, actor=request.user.get_username()
            )
        except RunInProgress as busy:
            return Response({"detail": str(busy)}, status=status.HTTP_409_CONFLICT)
        bus.send(bus.RUN_SELFTEST, run.pk)
        return Response(s.SelfTestRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=s.SelfTestRunSerializer(many=True))
    def get(self, request: Request) -> Response:
        runs = SelfTestRun.objects.prefetch_related("results")[: _query(request)["limit"]]
        return Response(s.SelfTestRunSerializer(runs, many=True).data)


class SelfTestRunView(APIView):
    @extend_schema(responses=s.SelfTestRunSerializer)
    def get(self, request: Request, run_id: int) -> Response:
        run = get_object_or_404(SelfTestRun.objects.prefetch_related("results"), pk=run_id)
        return Response(s.SelfTestRunSerializer(run).data)


class RiskView(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response(risk.risk_summary(risk.get_account()))


class HaltView(APIView):
    @extend_schema(
        request=s.HaltSerializer,
        responses={200: dict},
        parameters=[OpenApiParameter("flatten", bool, required=False)],
    )
    def post(self, request: Request) -> Response:
        incoming = s.HaltSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        account = risk.get_account()
        change = risk.halt_trading(
            account,
            actor=request.user.get_username(),
            reason=incoming.validated_data["reason"],
            flatten=incoming.validated_data["flatten"],
        )
        return Response({**risk.risk_summary(account), "changed": change.changed})


class ResumeView(APIView):
    @extend_schema(request=s.ResumeSerializer, responses={200: dict, 409: dict})
    def post(self, request: Request) -> Response:
        incoming = s.ResumeSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        account = risk.get_account()
        try:
            change = risk.resume_trading(
                account, actor=request.user.get_username(),
                reason=incoming.validated_data["reason"],
            )  # fmt: skip
        except InvalidTransition as refused:
            return Response({"detail": str(refused)}, status=status.HTTP_409_CONFLICT)
        return Response({**risk.risk_summary(account), "changed": change.changed})
