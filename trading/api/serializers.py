from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from rest_framework import serializers

from trading.ledger.services import position_unrealized
from trading.marketdata.services import symbol_rules
from trading.models import Fill, Order, Position, SelfTestResult, SelfTestRun, Signal
from trading.primitives import InvalidInput, read_decimal, read_symbol, read_whole

# The widest leverage any Binance market offers; risk limits narrow it further.
MAX_EXCHANGE_LEVERAGE = 125


class StrictDecimalField(serializers.DecimalField):
    """A decimal as ``trading.primitives.read_decimal`` reads it: a JSON number or a plain ASCII
    decimal string, none of what else ``Decimal()`` takes (``1_000``, ``" 5"``, other digits)."""

    def to_internal_value(self, data) -> Decimal:
        try:
            value = read_decimal(data)
        except InvalidInput as error:
            raise serializers.ValidationError(str(error), code="invalid") from None
        return self.quantize(self.validate_precision(value))


class StrictIntegerField(serializers.IntegerField):
    """A whole number as ``trading.primitives.read_whole`` reads it."""

    def to_internal_value(self, data) -> int:
        try:
            return read_whole(data)
        except InvalidInput as error:
            raise serializers.ValidationError(str(error), code="invalid") from None


class SymbolField(serializers.CharField):
    """A symbol of ASCII letters and digits, upper-cased (``trading.primitives.read_symbol``)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_length", 20)
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> str:
        try:
            return read_symbol(data)
        except InvalidInput as error:
            raise serializers.ValidationError(str(error), code="invalid") from None


def _positive_amount(**options) -> serializers.DecimalField:
    return StrictDecimalField(
        max_digits=28,
        decimal_places=10,
        required=False,
        allow_null=True,
        min_value=Decimal("0.0000000001"),
        **options,
    )


class SignalCreateSerializer(serializers.Serializer):
    symbol = SymbolField()
    side = serializers.ChoiceField(choices=["BUY", "SELL"])
    # A probability may come with any number of digits; six are kept (validate_confidence).
    confidence = StrictDecimalField(
        max_digits=None, decimal_places=None, min_value=Decimal("0"), max_value=Decimal("1")
    )
    notional = _positive_amount()
    quantity = _positive_amount()
    leverage = StrictIntegerField(min_value=1, max_value=MAX_EXCHANGE_LEVERAGE, default=1)
    stop_loss = _positive_amount()
    take_profit = _positive_amount()
    close_position = serializers.BooleanField(default=False)
    reduce_only = serializers.BooleanField(default=False)

    def validate_confidence(self, value: Decimal) -> Decimal:
        return value.quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN)

    def validate_symbol(self, value: str) -> str:
        if value not in symbol_rules():
            raise serializers.ValidationError(f"unknown symbol {value!r}")
        return value

    def validate(self, attrs: dict) -> dict:
        given = [name for name in ("notional", "quantity") if attrs.get(name) is not None]
        if attrs.get("close_position"):
            if given:
                raise serializers.ValidationError(
                    {given[0]: ["a signal that closes a position takes no notional or quantity"]}
                )
        elif len(given) != 1:
            raise serializers.ValidationError(
                {"notional": ["give exactly one of notional or quantity"]}
            )
        return attrs


class FillSerializer(serializers.ModelSerializer):
    class Meta:
        model = Fill
        fields = ["trade_id", "side", "quantity", "price", "fee", "fee_asset", "realized_pnl", "ts"]


class OrderSerializer(serializers.ModelSerializer):
    fills = FillSerializer(many=True, read_only=True)
    signal_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "client_order_id",
            "exchange_order_id",
            "signal_id",
            "correlation_id",
            "venue",
            "symbol",
            "side",
            "order_type",
            "purpose",
            "quantity",
            "reference_price",
            "status",
            "filled_quantity",
            "average_price",
            "error",
            "created_at",
            "updated_at",
            "fills",
        ]


class SignalSerializer(serializers.ModelSerializer):
    orders = OrderSerializer(many=True, read_only=True)

    class Meta:
        model = Signal
        fields = [
            "id",
            "correlation_id",
            "symbol",
            "side",
            "confidence",
            "notional",
            "quantity",
            "leverage",
            "reduce_only",
            "stop_loss_price",
            "take_profit_price",
            "source",
            "model_version",
            "status",
            "reason",
            "detail",
            "created_at",
            "updated_at",
            "orders",
        ]


class PositionSerializer(serializers.ModelSerializer):
    net_realized_pnl = serializers.DecimalField(max_digits=28, decimal_places=10, read_only=True)
    mark_price = serializers.SerializerMethodField()
    unrealized_pnl = serializers.SerializerMethodField()

    class Meta:
        model = Position
        fields = [
            "id",
            "symbol",
            "status",
            "quantity",
            "average_entry_price",
            "mark_price",
            "unrealized_pnl",
            "realized_pnl",
            "fees_paid",
            "net_realized_pnl",
            "stop_loss_price",
            "take_profit_price",
            "correlation_id",
            "opened_at",
            "closed_at",
        ]

    def _mark(self, position: Position) -> Decimal | None:
        return self.context.get("marks", {}).get(position.symbol)

    def get_mark_price(self, position: Position) -> str | None:
        mark = self._mark(position)
        return None if mark is None else str(mark)

    def get_unrealized_pnl(self, position: Position) -> str:
        return str(position_unrealized(position, self._mark(position)))


class SelfTestResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = SelfTestResult
        fields = ["position", "name", "title", "status", "duration_seconds", "detail", "data"]


class SelfTestRunSerializer(serializers.ModelSerializer):
    results = SelfTestResultSerializer(many=True, read_only=True)
    total = serializers.SerializerMethodField()

    def get_total(self, run: SelfTestRun) -> int:
        from trading.selftest.base import SUITES

        return len(SUITES.get(run.suite, []))

    class Meta:
        model = SelfTestRun
        fields = [
            "id", "suite", "trigger", "actor", "status", "started_at", "finished_at", "passed",
            "failed", "skipped", "total", "results",
        ]  # fmt: skip


class SelfTestRequestSerializer(serializers.Serializer):
    suite = serializers.ChoiceField(choices=["integration", "e2e"], default="integration")


class HaltSerializer(serializers.Serializer):
    flatten = serializers.BooleanField(default=False)
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class ResumeSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class EventQuerySerializer(serializers.Serializer):
    type = serializers.CharField(max_length=64, required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    limit = StrictIntegerField(min_value=1, max_value=1000, default=100)
    correlation_id = serializers.CharField(max_length=64, required=False)


class ListQuerySerializer(serializers.Serializer):
    symbol = SymbolField(required=False)
    correlation_id = serializers.UUIDField(required=False)
    status = serializers.CharField(max_length=20, required=False)
    limit = StrictIntegerField(min_value=1, max_value=1000, default=100)
