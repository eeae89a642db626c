"""The system of record: limits, trading state, signals, orders, fills, positions, equity.

Models derive values from their own fields; anything that writes or does I/O is a service
function in the area's ``services.py`` (``submit_order``, ``record_fill``, ``halt_trading``).
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from trading.ledger.book import AccountKind
from trading.primitives import OPEN_ORDER_STATUSES, OrderStatus

MONEY = {"max_digits": 28, "decimal_places": 10}
ZERO = Decimal("0")


class Side(models.TextChoices):
    BUY = "BUY"
    SELL = "SELL"


class Account(models.Model):
    """A book of positions and cash. ``main`` is the operator's; sandboxes never touch it."""

    name = models.SlugField(unique=True)
    venue = models.CharField(max_length=16, default="paper")
    kind = models.CharField(
        max_length=8, choices=[(k.value, k.value) for k in AccountKind], default=AccountKind.SPOT
    )
    is_sandbox = models.BooleanField(default=False)
    starting_cash = models.DecimalField(**MONEY, default=Decimal("100000"))
    peak_equity = models.DecimalField(**MONEY, default=Decimal("100000"))
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class SymbolLeverage(models.Model):
    """A futures account's leverage in one symbol (Binance's per-symbol setting, POST
    /fapi/v1/leverage): 1 when there is no row. Bounded by the symbol's leverage brackets and the
    risk limit ``max_leverage``; the initial margin of the position and its orders is their
    notional over it."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="leverages")
    symbol = models.CharField(max_length=20)
    leverage = models.PositiveSmallIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "symbol"], name="one_leverage_per_symbol")
        ]

    def __str__(self) -> str:
        return f"{self.account} {self.symbol} {self.leverage}x"


class ExactDecimalField(models.Field):
    """A Decimal kept exactly, as its text. SQLite stores a decimal column as a float of 15
    significant digits; a running sum of fills needs more. For values the platform reads and
    writes whole: SQL cannot add, sum or order them as numbers."""

    description = "Decimal number kept exactly, as text"

    def get_internal_type(self) -> str:
        return "TextField"

    def from_db_value(self, value, expression, connection) -> Decimal | None:
        return None if value is None else Decimal(value)

    def to_python(self, value) -> Decimal | None:
        return None if value is None or isinstance(value, Decimal) else Decimal(value)

    def get_prep_value(self, value) -> str | None:
        return None if value is None else format(Decimal(value), "f")


class AssetBalance(models.Model):
    """An account's balance of one asset, as a running total, so that reading it costs one row
    however many fills the account has. The fills stay the record: each new fill's moves are
    added here in the transaction that stores the fill (``trading.ledger.services.record_fills``),
    and ``trading.ledger.services.ledger_balances`` works the same totals out again from the
    fills.

    ``net`` is what the fills moved (a buy brings its base quantity in and pays its notional out
    of the quote, a sell the other way round, fees are paid either way); the free balance is
    ``net`` less ``locked``, plus ``Account.starting_cash`` for the quote asset, so a change of
    the starting cash counts at once. ``locked`` is what the account's open orders hold: a BUY
    its cost with fees in the quote asset, a SELL its quantity in the base asset.
    ``transferred`` is what start-up reconciliation with a live exchange found moved outside the
    fills (``trading.ledger.services``): the quote asset's free balance counts it too."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="balances")
    asset = models.CharField(max_length=12)
    net = ExactDecimalField(default=ZERO, editable=False)
    locked = ExactDecimalField(default=ZERO, editable=False)
    transferred = ExactDecimalField(default=ZERO, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "asset"], name="one_balance_per_asset")
        ]

    def __str__(self) -> str:
        return f"account {self.account_id} {self.asset}: {self.net:+f} from fills"


class DayOpen(models.Model):
    """An account's unrealized PnL at 00:00 UTC of a day, the base of its daily PnL: the
    positions held at 00:00 (from the fills before it) at the latest quote of the first read of
    the day (``trading.ledger.services.day_open``). Written once per account and day."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="day_opens")
    day = models.DateField()
    unrealized_pnl = ExactDecimalField()
    marks = models.JSONField(default=dict, help_text="the prices used, per symbol")
    recorded_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "day"], name="one_day_open_per_day")
        ]

    def __str__(self) -> str:
        return f"account {self.account_id} at {self.day}: unrealized {self.unrealized_pnl}"


class Symbol(models.Model):
    """An exchange symbol and its trading rules (from exchangeInfo, or the bundled snapshot)."""

    symbol = models.CharField(max_length=20, primary_key=True)
    status = models.CharField(max_length=20)
    base_asset = models.CharField(max_length=12)
    quote_asset = models.CharField(max_length=12)
    tick_size = models.DecimalField(**MONEY)
    step_size = models.DecimalField(**MONEY)
    min_qty = models.DecimalField(**MONEY)
    max_qty = models.DecimalField(**MONEY)
    market_step_size = models.DecimalField(**MONEY)
    market_min_qty = models.DecimalField(**MONEY)
    market_max_qty = models.DecimalField(**MONEY)
    min_notional = models.DecimalField(**MONEY)
    max_notional = models.DecimalField(**MONEY, null=True, blank=True)
    apply_min_to_market = models.BooleanField(default=True)
    apply_max_to_market = models.BooleanField(default=False)
    source = models.CharField(max_length=16, help_text="exchange or bundled")
    refreshed_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.symbol


class RiskLimits(models.Model):
    """Pre-trade limits: one global row (symbol blank) and optional per-symbol overrides of the
    per-symbol limits; the account-wide ones come from the global row only."""

    PER_SYMBOL = ("min_confidence", "max_position_notional", "max_leverage")
    ACCOUNT_WIDE = (
        "max_total_exposure", "max_open_positions", "daily_loss_limit", "max_drawdown",
        "max_orders_per_minute", "allowed_symbols",
    )  # fmt: skip

    symbol = models.CharField(max_length=20, blank=True, default="", unique=True)
    min_confidence = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        default=Decimal("0.7"),
        validators=[MinValueValidator(ZERO), MaxValueValidator(Decimal("1"))],
    )
    max_position_notional = models.DecimalField(
        **MONEY, default=Decimal("10000"), validators=[MinValueValidator(ZERO)]
    )
    max_total_exposure = models.DecimalField(
        **MONEY, default=Decimal("50000"), validators=[MinValueValidator(ZERO)]
    )
    max_leverage = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(125)]
    )
    max_open_positions = models.PositiveSmallIntegerField(default=10)
    daily_loss_limit = models.DecimalField(
        **MONEY, default=Decimal("2000"), validators=[MinValueValidator(Decimal("0.01"))]
    )
    max_drawdown = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        default=Decimal("0.1"),
        validators=[MinValueValidator(Decimal("0.0001")), MaxValueValidator(Decimal("1"))],
        help_text="fraction of peak equity",
    )
    max_orders_per_minute = models.PositiveIntegerField(default=60)
    allowed_symbols = models.CharField(
        max_length=500,
        blank=True,
        default="BTCUSDT,ETHUSDT,SOLUSDT",
        help_text="comma-separated; global row only",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "risk limits"

    def __str__(self) -> str:
        return f"limits {self.symbol or 'global'}"

    def clean(self) -> None:
        """Limits that contradict each other, or name symbols nobody trades, are refused."""
        from django.core.exceptions import ValidationError

        errors = {}
        exposure = self.max_total_exposure
        if self.symbol:
            base = RiskLimits.objects.filter(symbol="").first()
            exposure = base.max_total_exposure if base else exposure
            if base is not None:
                # A symbol row holds the account's values, never ones of its own that no check
                # would read.
                for field in self.ACCOUNT_WIDE:
                    setattr(self, field, getattr(base, field))
        if self.max_position_notional > exposure:
            errors["max_position_notional"] = (
                f"cannot exceed the maximum total exposure ({exposure}); "
                "lower it or raise the exposure limit"
            )
        known = set(Symbol.objects.values_list("symbol", flat=True))
        unknown = sorted(self.allowed_symbol_set - known) if known and not self.symbol else []
        if unknown:
            errors["allowed_symbols"] = "unknown symbols: " + ", ".join(unknown)
        if self.symbol and known and self.symbol.upper() not in known:
            errors["symbol"] = f"unknown symbol {self.symbol}"
        if errors:
            raise ValidationError(errors)

    @property
    def allowed_symbol_set(self) -> frozenset[str]:
        return frozenset(s.strip().upper() for s in self.allowed_symbols.split(",") if s.strip())


class TradingStateRecord(models.Model):
    """The current trading state, one row per account."""

    class State(models.TextChoices):
        ACTIVE = "ACTIVE"
        REDUCING = "REDUCING"
        HALTED = "HALTED"

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="trading_state")
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    reason = models.CharField(max_length=200, blank=True, default="")
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        permissions = [("operate_trading", "Can halt and resume trading and send signals")]

    def __str__(self) -> str:
        return f"{self.account}: {self.state}"


class TradingStateChange(models.Model):
    """Audit trail of the trading state: who, when, why."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="state_changes")
    from_state = models.CharField(max_length=10)
    to_state = models.CharField(max_length=10)
    actor = models.CharField(max_length=150, help_text="user name, or system:<rule>")
    reason = models.CharField(max_length=200, blank=True, default="")
    flatten = models.BooleanField(default=False)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.from_state} -> {self.to_state} by {self.actor}"


class Signal(models.Model):
    """A request to trade, from the AI service or the API; its fate is its status."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DENIED = "denied"
        SUBMITTED = "submitted"
        PARTIALLY_FILLED = "partially_filled"
        FILLED = "filled"
        REJECTED = "rejected"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    correlation_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="signals")
    symbol = models.CharField(max_length=20)
    side = models.CharField(max_length=4, choices=Side.choices)
    confidence = models.DecimalField(max_digits=7, decimal_places=6)
    notional = models.DecimalField(**MONEY, null=True, blank=True)
    quantity = models.DecimalField(**MONEY, null=True, blank=True)
    leverage = models.PositiveSmallIntegerField(default=1)
    close_position = models.BooleanField(
        default=False, help_text="sell (or buy back) what the position holds"
    )
    reduce_only = models.BooleanField(
        default=False, help_text="futures: denied (REDUCE_ONLY) if it would open or grow"
    )
    stop_loss_price = models.DecimalField(**MONEY, null=True, blank=True)
    take_profit_price = models.DecimalField(**MONEY, null=True, blank=True)
    source = models.CharField(max_length=16, default="api")
    model_version = models.CharField(max_length=64, blank=True, default="")
    probability_up = models.FloatField(null=True, blank=True, help_text="the model's p(up)")
    features = models.JSONField(null=True, blank=True, help_text="feature values at the signal")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(max_length=32, blank=True, default="")
    detail = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["symbol", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.side} {self.symbol} ({self.status})"


class Order(models.Model):
    Status = OrderStatus
    OPEN_STATUSES = OPEN_ORDER_STATUSES

    class Purpose(models.TextChoices):
        SIGNAL = "signal"
        STOP_LOSS = "stop_loss"
        TAKE_PROFIT = "take_profit"
        FLATTEN = "flatten"
        LIQUIDATION = "liquidation"

    client_order_id = models.CharField(max_length=36, unique=True)
    exchange_order_id = models.CharField(max_length=64, blank=True, default="")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="orders")
    signal = models.ForeignKey(
        Signal, on_delete=models.PROTECT, null=True, blank=True, related_name="orders"
    )
    correlation_id = models.UUIDField(db_index=True)
    venue = models.CharField(max_length=16)
    symbol = models.CharField(max_length=20)
    side = models.CharField(max_length=4, choices=Side.choices)
    order_type = models.CharField(max_length=10, default="MARKET")
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.SIGNAL)
    quantity = models.DecimalField(**MONEY)
    price = models.DecimalField(**MONEY, null=True, blank=True)
    reference_price = models.DecimalField(**MONEY, help_text="mark when the order was placed")
    leverage = models.PositiveSmallIntegerField(default=1, help_text="futures: the symbol's")
    reduce_only = models.BooleanField(default=False)
    status = models.CharField(max_length=20, choices=OrderStatus.choices(), default=OrderStatus.NEW)
    filled_quantity = models.DecimalField(**MONEY, default=ZERO)
    average_price = models.DecimalField(**MONEY, null=True, blank=True)
    error = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # The pre-trade checks count an account's orders of the last minute on every signal:
        # without it, a walk over every order the account ever placed.
        indexes = [models.Index(fields=["account", "created_at"], name="order_account_created")]

    def __str__(self) -> str:
        return f"{self.client_order_id} {self.side} {self.quantity} {self.symbol} {self.status}"

    @property
    def remaining_quantity(self) -> Decimal:
        return self.quantity - self.filled_quantity

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES


class Fill(models.Model):
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="fills")
    trade_id = models.CharField(max_length=64)
    symbol = models.CharField(max_length=20)
    side = models.CharField(max_length=4, choices=Side.choices)
    quantity = models.DecimalField(**MONEY)
    price = models.DecimalField(**MONEY)
    fee = models.DecimalField(**MONEY, default=ZERO, help_text="in the quote asset")
    fee_asset = models.CharField(max_length=12, default="USDT")
    liquidity = models.CharField(max_length=8, default="taker")
    realized_pnl = models.DecimalField(**MONEY, default=ZERO, help_text="gross of fees")
    ts = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["ts", "id"]
        constraints = [
            models.UniqueConstraint(fields=["order", "trade_id"], name="fill_unique_trade")
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.symbol} @ {self.price}"

    @property
    def notional(self) -> Decimal:
        return self.quantity * self.price


class Position(models.Model):
    """A position from its opening fill to its closing one; at most one open per symbol."""

    class Status(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="positions")
    symbol = models.CharField(max_length=20)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    quantity = models.DecimalField(**MONEY, default=ZERO, help_text="signed: short is negative")
    average_entry_price = models.DecimalField(**MONEY, default=ZERO)
    cost_basis = models.DecimalField(**MONEY, null=True, blank=True)
    realized_pnl = models.DecimalField(**MONEY, default=ZERO, help_text="gross of fees")
    fees_paid = models.DecimalField(**MONEY, default=ZERO)
    stop_loss_price = models.DecimalField(**MONEY, null=True, blank=True)
    take_profit_price = models.DecimalField(**MONEY, null=True, blank=True)
    correlation_id = models.UUIDField(help_text="of the order that opened it")
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "symbol"],
                condition=Q(status="open"),
                name="one_open_position_per_symbol",
            )
        ]
        # An account's open positions, read on every order's way: without it, a walk over every
        # position the account ever held (a partial index serves only a literal status).
        indexes = [models.Index(fields=["account", "status"], name="position_account_status")]

    def __str__(self) -> str:
        return f"{self.symbol} {self.quantity} @ {self.average_entry_price} ({self.status})"

    @property
    def net_realized_pnl(self) -> Decimal:
        return self.realized_pnl - self.fees_paid


class EquitySnapshot(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="equity")
    ts = models.DateTimeField(db_index=True)
    equity = models.DecimalField(**MONEY)
    cash = models.DecimalField(**MONEY)
    exposure = models.DecimalField(**MONEY)
    realized_pnl = models.DecimalField(**MONEY)
    unrealized_pnl = models.DecimalField(**MONEY)

    class Meta:
        ordering = ["-ts"]

    def __str__(self) -> str:
        return f"{self.account} equity {self.equity} at {self.ts:%Y-%m-%d %H:%M}"


class RiskLimitsChange(models.Model):
    """Audit trail of the risk limits: who changed which limit, when, from what to what."""

    limits = models.ForeignKey(
        RiskLimits, on_delete=models.SET_NULL, null=True, related_name="changes"
    )
    scope = models.CharField(max_length=20, help_text="global, or the symbol")
    field = models.CharField(max_length=40)
    old_value = models.CharField(max_length=500, blank=True, default="")
    new_value = models.CharField(max_length=500, blank=True, default="")
    actor = models.CharField(max_length=150)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.scope}.{self.field}: {self.old_value} -> {self.new_value} by {self.actor}"


class LearningRecord(models.Model):
    """A closed position tied to the signal that opened it: what the model said, what happened."""

    position = models.OneToOneField(Position, on_delete=models.CASCADE, related_name="learning")
    signal = models.ForeignKey(
        Signal, on_delete=models.SET_NULL, null=True, blank=True, related_name="learning"
    )
    symbol = models.CharField(max_length=20)
    model_version = models.CharField(max_length=64, blank=True, default="", db_index=True)
    side = models.CharField(max_length=4, choices=Side.choices)
    probability_up = models.FloatField(null=True, blank=True)
    confidence = models.DecimalField(max_digits=7, decimal_places=6, null=True, blank=True)
    features = models.JSONField(null=True, blank=True)
    net_pnl = models.DecimalField(**MONEY)
    won = models.BooleanField()
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-closed_at"]

    def __str__(self) -> str:
        return f"{self.symbol} {self.model_version or 'manual'} {'won' if self.won else 'lost'}"


class PerformanceSnapshot(models.Model):
    """The analytics service's view of the portfolio at one moment."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="performance")
    ts = models.DateTimeField(db_index=True)
    equity = models.DecimalField(**MONEY)
    cash = models.DecimalField(**MONEY)
    exposure = models.JSONField(help_text="per symbol, in the quote asset")
    open_positions = models.PositiveIntegerField()
    closed_trades = models.PositiveIntegerField()
    win_rate = models.FloatField(null=True, blank=True)
    profit_factor = models.FloatField(null=True, blank=True)
    sharpe_ratio = models.FloatField(null=True, blank=True)
    max_drawdown = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-ts"]

    def __str__(self) -> str:
        return f"{self.account} performance at {self.ts:%Y-%m-%d %H:%M}"


class ModelVersionQuerySet(models.QuerySet):
    def serving(self) -> ModelVersionQuerySet:
        """The versions that may serve, the champion first: promoted, neither rejected since nor
        retired, the most recently promoted first. ``.first()`` is the champion."""
        return self.filter(
            retired_at__isnull=True, promoted_at__isnull=False, rejected_at__isnull=True
        ).order_by("-promoted_at", "-trained_at", "-id")

    def challengers(self) -> ModelVersionQuerySet:
        """Versions on trial, newest first: never promoted, not kept out, not retired."""
        return self.filter(
            retired_at__isnull=True, promoted_at__isnull=True, rejected_at__isnull=True
        ).order_by("-trained_at", "-id")


class ModelVersion(models.Model):
    """A trained model: its artifact (kept in the database, so every host can load it), its
    training window (``window_start`` to ``window_end``, close times of the first and last bar it
    read) and its out-of-sample scores. The newest one not retired is the one the ai service
    uses. A replay that starts over retires the versions trained on the bars it will play again:
    they must not serve on bars they learnt from."""

    version = models.CharField(max_length=80, unique=True)
    trained_at = models.DateTimeField(db_index=True)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    symbols = models.CharField(max_length=200)
    horizon_bars = models.PositiveIntegerField()
    accuracy = models.FloatField()
    baseline_accuracy = models.FloatField()
    roc_auc = models.FloatField(null=True, blank=True)
    brier = models.FloatField()
    trigger = models.CharField(max_length=32, default="manual")
    metadata = models.JSONField()
    artifact = models.BinaryField()
    retired_at = models.DateTimeField(null=True, blank=True)
    promoted_at = models.DateTimeField(
        null=True, blank=True, help_text="when it last became the champion"
    )
    rejected_at = models.DateTimeField(
        null=True, blank=True, help_text="when it was kept out or rolled back"
    )

    objects = ModelVersionQuerySet.as_manager()

    class Meta:
        ordering = ["-trained_at", "-id"]

    def __str__(self) -> str:
        return self.version

    @property
    def status(self) -> str:
        """retired, rejected, promoted (it serves, or served and may again) or challenger."""
        if self.retired_at is not None:
            return "retired"
        if self.rejected_at is not None:
            return "rejected"
        return "promoted" if self.promoted_at is not None else "challenger"


class ModelDecision(models.Model):
    """A promotion, a rollback or a challenger kept out: who decided, when, on which figures.

    ``figures`` holds both versions' live figures at the time (on their paired signals) and
    ``test`` the promotion test's result, so a decision can be checked later as it was taken."""

    class Action(models.TextChoices):
        PROMOTED = "promoted"
        KEPT_OUT = "kept_out"
        ROLLED_BACK = "rolled_back"
        SUPERSEDED = "superseded"

    version = models.CharField(max_length=80, db_index=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    actor = models.CharField(max_length=150, help_text="a user name, or system")
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    champion = models.CharField(max_length=80, blank=True, default="")
    challenger = models.CharField(max_length=80, blank=True, default="")
    figures = models.JSONField(default=dict, blank=True)
    test = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.version} {self.action} by {self.actor}"


class SelfTestRun(models.Model):
    """One run of a suite of system checks against the running platform."""

    class Status(models.TextChoices):
        RUNNING = "running"
        PASSED = "passed"
        FAILED = "failed"

    suite = models.CharField(max_length=20)
    trigger = models.CharField(max_length=20, help_text="cli, api, dashboard or schedule")
    actor = models.CharField(max_length=150, blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    passed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.suite} run {self.pk}: {self.status}"


class SelfTestResult(models.Model):
    run = models.ForeignKey(SelfTestRun, on_delete=models.CASCADE, related_name="results")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=64)
    title = models.CharField(max_length=120)
    status = models.CharField(max_length=4)
    duration_seconds = models.FloatField()
    detail = models.TextField(blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    finished_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "name"], name="one_result_per_scenario")
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.status}"


class ProcessedEvent(models.Model):
    """An event a consumer group has handled: written in the same transaction as the work."""

    event_id = models.UUIDField()
    consumer = models.CharField(max_length=64)
    processed_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["consumer", "event_id"], name="event_once_per_consumer")
        ]

    def __str__(self) -> str:
        return f"{self.consumer}: {self.event_id}"


class OutboxEvent(models.Model):
    """An event written in the transaction of the change it describes, then relayed to the event
    log (``trading.events.outbox``): a change that committed always gets its event, and one that
    rolled back never does. ``event_id`` is fixed here, so a relay that publishes the row twice
    publishes the same event, which consumers skip. ``handoff`` names a Celery task sent once
    the event is in the log (``{"task", "args", "expires"}``): the work that acts on it."""

    event_id = models.UUIDField(unique=True)
    type = models.CharField(max_length=64)
    ts = models.DateTimeField()
    service = models.CharField(max_length=16)
    correlation_id = models.CharField(max_length=64, blank=True, default="")
    schema = models.PositiveSmallIntegerField(default=1)
    payload = models.JSONField()
    handoff = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField()
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The relay's and the health check's reads: only the rows still to publish.
            models.Index(
                fields=["id"], condition=Q(published_at__isnull=True), name="outbox_unpublished"
            ),
            models.Index(fields=["published_at"], name="outbox_published_at"),
        ]

    def __str__(self) -> str:
        state = "published" if self.published_at else "waiting"
        return f"{self.type} {self.event_id} ({state})"


class FeedPosition(models.Model):
    """The last bar the market feed published, per source and symbol: where a restarted feed
    carries on. In the database rather than Redis, which may be flushed or lost while the book
    that traded on those bars is kept."""

    source = models.CharField(max_length=16)  # "replay" or "binance"
    symbol = models.CharField(max_length=20)
    open_time = models.DateTimeField()
    close_time = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "symbol"], name="feed_position_unique")
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.symbol} at {self.close_time.isoformat()}"


class NotificationChannel(models.Model):
    """Where operators are told: an apprise URL (``json://``, ``tgram://``, ``mailtos://``...),
    the kinds of notification it wants and the least severity it cares about. The URL carries
    secrets (tokens, passwords): it is shown masked everywhere but its own edit form."""

    name = models.CharField(max_length=100, unique=True)
    url = models.TextField(help_text="An apprise URL, e.g. tgram://<bot token>/<chat id>")
    kinds = models.JSONField(default=list, blank=True, help_text="Empty: every kind.")
    min_severity = models.CharField(max_length=16, default="info")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    @property
    def scheme(self) -> str:
        """The channel's kind as apprise names it: the URL's scheme (``json``, ``tgram``)."""
        return self.url.split("://", 1)[0].lower() if "://" in self.url else "unknown"


class NotificationDelivery(models.Model):
    """One message sent (or attempted) to a channel; its text never holds the channel's URL."""

    channel = models.ForeignKey(
        NotificationChannel, null=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    sent_at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=64)
    title = models.CharField(max_length=250)
    message = models.TextField()
    notices = models.PositiveIntegerField(default=1)
    ok = models.BooleanField(null=True)  # None: being sent
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-sent_at", "-pk"]
        verbose_name_plural = "notification deliveries"

    def __str__(self) -> str:
        state = {True: "sent", False: "failed", None: "sending"}[self.ok]
        return f"{self.kind} to {self.channel or 'a deleted channel'}: {state}"


class Notification(models.Model):
    """One thing a channel is to be told, waiting for its channel's window; delivered when it
    belongs to a delivery (alone, or grouped with the others of its window)."""

    channel = models.ForeignKey(
        NotificationChannel, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=64)
    severity = models.CharField(max_length=16)
    title = models.CharField(max_length=250)
    body = models.TextField(blank=True, default="")
    reason = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(db_index=True)
    delivery = models.ForeignKey(
        NotificationDelivery, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [
            models.Index(
                fields=["channel", "created_at"],
                condition=Q(delivery__isnull=True),
                name="notification_waiting",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.title}"


class TelegramChat(models.Model):
    """A Telegram chat the operators' bot answers, acting as the linked user: an Operator's
    chat may halt, resume and close; a Viewer's only reads. Other chats get no answer."""

    chat_id = models.BigIntegerField(unique=True)
    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="telegram_chats")
    note = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"chat {self.chat_id} as {self.user}"


class MarketBar(models.Model):
    """A closed bar the platform received (``replay`` or ``binance``), or one of the bundled
    history that seeds the store (``seed``). Kept ``QT_BAR_RETENTION_DAYS`` behind the newest bar
    of its symbol; what retraining reads (``trading.marketdata.barstore``)."""

    class Origin(models.TextChoices):
        SEED = "seed"
        REPLAY = "replay"
        BINANCE = "binance"

    symbol = models.CharField(max_length=20)
    interval = models.CharField(max_length=4)
    open_time = models.DateTimeField()
    close_time = models.DateTimeField()
    open = ExactDecimalField()
    high = ExactDecimalField()
    low = ExactDecimalField()
    close = ExactDecimalField()
    volume = ExactDecimalField()
    quote_volume = ExactDecimalField()
    trades = models.PositiveIntegerField(default=0)
    origin = models.CharField(max_length=8, choices=Origin.choices)
    stored_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["symbol", "open_time"]
        constraints = [
            models.UniqueConstraint(
                fields=["symbol", "interval", "open_time"], name="market_bar_unique"
            )
        ]
        indexes = [
            models.Index(fields=["symbol", "interval", "close_time"], name="market_bar_close")
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.interval} closing {self.close_time.isoformat()}"


class SignalScore(models.Model):
    """An ai signal judged at its model's horizon against the bars that followed, whether it
    traded or was denied. Opened with the signal; ``scored_at`` is set once the bar closing at
    ``due_close_time`` arrives (``trading.ai.live``). One row per signal and model version: the
    serving version's own prediction, and room for a challenger's on the same bar, judged the
    same way."""

    signal = models.ForeignKey(Signal, on_delete=models.CASCADE, related_name="scores")
    model_version = models.CharField(max_length=80, db_index=True)
    symbol = models.CharField(max_length=20)
    side = models.CharField(max_length=4, choices=Side.choices)
    probability_up = models.FloatField()
    confidence = models.FloatField()
    bucket = models.PositiveSmallIntegerField(help_text="confidence bucket, 0 for 0.50-0.55")
    bar_close_time = models.DateTimeField(help_text="close of the bar the signal was made on")
    due_close_time = models.DateTimeField(help_text="close of the bar at the horizon")
    entry_price = ExactDecimalField()
    exit_price = ExactDecimalField(null=True, blank=True)
    up = models.BooleanField(null=True, help_text="the label: did the close rise?")
    hit = models.BooleanField(null=True, help_text="was the side right?")
    forward_return = models.FloatField(null=True, help_text="net of fees and slippage")
    brier = models.FloatField(null=True)
    log_loss = models.FloatField(null=True)
    scored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-bar_close_time"]
        constraints = [
            models.UniqueConstraint(
                fields=["signal", "model_version"], name="one_score_per_signal_and_version"
            )
        ]
        indexes = [
            models.Index(
                fields=["symbol", "due_close_time"],
                condition=Q(scored_at__isnull=True),
                name="score_pending",
            ),
            models.Index(fields=["model_version", "bucket"], name="score_by_bucket"),
        ]

    def __str__(self) -> str:
        state = "pending" if self.scored_at is None else ("hit" if self.hit else "miss")
        return f"{self.side} {self.symbol} {self.model_version}: {state}"


class StrategyConfig(models.Model):
    """A strategy an account may run on each closed bar: its kind, its parameters (checked per
    kind by ``trading.strategies.kinds``) and the confidence its signals state. An account with
    no strategy enabled runs the ai model."""

    name = models.SlugField(unique=True)
    kind = models.CharField(max_length=32)
    parameters = models.JSONField(default=dict, blank=True)
    confidence = models.DecimalField(
        max_digits=7, decimal_places=6, default=Decimal("0.8"),
        help_text="a stated conviction, not a probability; the backtest measures the hit rate",
    )  # fmt: skip
    accounts = models.ManyToManyField(Account, blank=True, related_name="strategies",
                                      help_text="the accounts that run it")  # fmt: skip
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from trading.strategies.base import InvalidParameters
        from trading.strategies.kinds import validate_parameters

        try:
            validate_parameters(self.kind, self.parameters, self.confidence)
        except InvalidParameters as error:
            raise ValidationError({"parameters": str(error)}) from None


class BacktestRun(models.Model):
    """A backtest as asked for and as it ran: its strategy and settings, the code and data it
    ran on, its progress, its report and its fills."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    created_at = models.DateTimeField(auto_now_add=True)
    requested_by = models.CharField(max_length=150, blank=True, default="")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    strategy = models.CharField(max_length=64)
    strategy_kind = models.CharField(max_length=32, blank=True, default="")
    strategy_version = models.CharField(max_length=200, blank=True, default="")
    parameters = models.JSONField(default=dict, blank=True)
    settings = models.JSONField(default=dict, blank=True, help_text="fees, slippage, limits")
    code_version = models.CharField(max_length=64, blank=True, default="")
    symbols = models.JSONField(default=list)
    start = models.DateTimeField()
    end = models.DateTimeField()
    progress = models.FloatField(default=0.0)
    bars_done = models.PositiveIntegerField(default=0)
    bars_total = models.PositiveIntegerField(default=0)
    report = models.JSONField(null=True, blank=True)
    fills = models.JSONField(default=list, blank=True)
    error = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"backtest {self.pk} of {self.strategy} ({self.status})"
