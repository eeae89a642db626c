from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models

from trading.ai import champion as champions
from trading.models import (
    Account,
    BacktestRun,
    EquitySnapshot,
    Fill,
    LearningRecord,
    ModelDecision,
    ModelVersion,
    Order,
    PerformanceSnapshot,
    Position,
    RiskLimits,
    RiskLimitsChange,
    SelfTestResult,
    SelfTestRun,
    Signal,
    StrategyConfig,
    Symbol,
    TradingStateChange,
    TradingStateRecord,
)
from trading.primitives import InvalidInput, read_decimal, read_symbol, read_symbol_list, read_whole

AUDITED_LIMITS = [
    "min_confidence", "max_position_notional", "max_total_exposure", "max_leverage",
    "max_open_positions", "daily_loss_limit", "max_drawdown", "max_orders_per_minute",
    "allowed_symbols",
]  # fmt: skip


class StrictDecimalFormField(forms.DecimalField):
    """Reads plain ASCII decimals only (``trading.primitives``): not ``1_000`` or other scripts'
    digits, which Django's own field takes."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return read_decimal(value)
        except InvalidInput as error:
            raise ValidationError(str(error), code="invalid") from None


class StrictIntegerFormField(forms.IntegerField):
    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return read_whole(value)
        except InvalidInput as error:
            raise ValidationError(str(error), code="invalid") from None


STRICT_NUMBERS = {
    models.DecimalField: {"form_class": StrictDecimalFormField},
    models.IntegerField: {"form_class": StrictIntegerFormField},
}


class RiskLimitsForm(forms.ModelForm):
    class Meta:
        model = RiskLimits
        fields = ["symbol", *RiskLimits.PER_SYMBOL, *RiskLimits.ACCOUNT_WIDE]

    def clean_symbol(self) -> str:
        symbol = self.cleaned_data["symbol"]
        return _symbols(lambda: read_symbol(symbol)) if symbol else ""

    def clean_allowed_symbols(self) -> str:
        text = self.cleaned_data["allowed_symbols"]
        return _symbols(lambda: ",".join(read_symbol_list(text)))


def _symbols(read) -> str:
    try:
        return read()
    except InvalidInput as error:
        raise ValidationError(str(error), code="invalid") from None


class RiskLimitsChangeInline(admin.TabularInline):
    model = RiskLimitsChange
    fields = ["at", "actor", "field", "old_value", "new_value"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(RiskLimits)
class RiskLimitsAdmin(admin.ModelAdmin):
    form = RiskLimitsForm
    formfield_overrides = STRICT_NUMBERS
    list_display = [
        "__str__", "min_confidence", "max_position_notional", "max_total_exposure",
        "max_leverage", "max_open_positions", "daily_loss_limit", "max_drawdown",
        "max_orders_per_minute", "updated_at",
    ]  # fmt: skip
    inlines = [RiskLimitsChangeInline]
    fieldsets = [
        (None, {"fields": ["symbol"], "description": "Blank for the global row."}),
        ("Per symbol", {
            "fields": list(RiskLimits.PER_SYMBOL),
            "description": "A symbol's row overrides the global row's values for that symbol.",
        }),
        ("Whole account", {
            "fields": list(RiskLimits.ACCOUNT_WIDE),
            "description": "Set on the global row only: a symbol's row shows the global values.",
        }),
    ]  # fmt: skip

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        if obj is not None and obj.symbol:
            return ["symbol", *RiskLimits.ACCOUNT_WIDE]
        return ["symbol"] if obj is not None else []

    def save_model(self, request, obj, form, change) -> None:
        """Saves the limits and one audit row per changed limit, in one transaction."""
        from django.db import transaction

        before = RiskLimits.objects.filter(pk=obj.pk).values(*AUDITED_LIMITS).first() or {}
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            for field in AUDITED_LIMITS:
                old, new = before.get(field), getattr(obj, field)
                if change and old == new:
                    continue
                RiskLimitsChange.objects.create(
                    limits=obj,
                    scope=obj.symbol or "global",
                    field=field,
                    old_value="" if old is None else str(old),
                    new_value=str(new),
                    actor=request.user.get_username(),
                )


@admin.register(RiskLimitsChange)
class RiskLimitsChangeAdmin(admin.ModelAdmin):
    list_display = ["at", "actor", "scope", "field", "old_value", "new_value"]
    list_filter = ["scope", "field", "actor"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Symbol)
class SymbolAdmin(admin.ModelAdmin):
    formfield_overrides = STRICT_NUMBERS
    list_display = ["symbol", "status", "tick_size", "step_size", "min_notional", "source",
                    "refreshed_at"]  # fmt: skip
    readonly_fields = ["refreshed_at"]


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    formfield_overrides = STRICT_NUMBERS
    list_display = ["name", "venue", "is_sandbox", "starting_cash", "peak_equity"]


@admin.register(TradingStateRecord)
class TradingStateAdmin(admin.ModelAdmin):
    list_display = ["account", "state", "reason", "changed_at"]
    readonly_fields = ["account", "state", "reason", "changed_at"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(TradingStateChange)
class TradingStateChangeAdmin(admin.ModelAdmin):
    list_display = ["at", "account", "from_state", "to_state", "actor", "reason", "flatten"]
    list_filter = ["to_state", "account"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyLedgerAdmin(admin.ModelAdmin):
    """The ledger is written by the services only."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Signal)
class SignalAdmin(ReadOnlyLedgerAdmin):
    list_display = ["created_at", "symbol", "side", "confidence", "status", "reason", "source"]
    list_filter = ["status", "symbol", "reason"]
    search_fields = ["correlation_id"]


@admin.register(Order)
class OrderAdmin(ReadOnlyLedgerAdmin):
    list_display = ["created_at", "client_order_id", "symbol", "side", "quantity", "status",
                    "filled_quantity", "average_price", "purpose"]  # fmt: skip
    list_filter = ["status", "symbol", "purpose", "venue"]
    search_fields = ["client_order_id", "correlation_id"]


@admin.register(Fill)
class FillAdmin(ReadOnlyLedgerAdmin):
    list_display = ["ts", "symbol", "side", "quantity", "price", "fee", "realized_pnl"]
    list_filter = ["symbol"]


@admin.register(Position)
class PositionAdmin(ReadOnlyLedgerAdmin):
    list_display = ["opened_at", "symbol", "status", "quantity", "average_entry_price",
                    "realized_pnl", "fees_paid", "closed_at"]  # fmt: skip
    list_filter = ["status", "symbol"]


@admin.register(EquitySnapshot)
class EquitySnapshotAdmin(ReadOnlyLedgerAdmin):
    list_display = ["ts", "account", "equity", "cash", "exposure", "realized_pnl"]


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyLedgerAdmin):
    list_display = ["version", "status", "trained_at", "trigger", "accuracy", "baseline_accuracy",
                    "roc_auc", "brier", "window_start", "window_end", "promoted_at",
                    "rejected_at"]  # fmt: skip
    exclude = ["artifact"]
    actions = ["promote_version", "roll_back_version"]

    def has_operate_permission(self, request) -> bool:
        return request.user.has_perm("trading.operate_trading")

    def _decide(self, request, queryset, decide, done: str) -> None:
        actor = request.user.get_username()
        for model in queryset.only("version"):
            try:
                decision = decide(model.version, actor=actor, reason=f"{done} in the admin")
            except champions.DecisionRefused as refused:
                self.message_user(request, str(refused), messages.ERROR)
            else:
                self.message_user(
                    request, f"{decision.version}: {decision.action} by {actor}", messages.SUCCESS
                )

    @admin.action(description="Promote the selected version (it serves)",
                  permissions=["operate"])  # fmt: skip
    def promote_version(self, request, queryset) -> None:
        self._decide(request, queryset, champions.promote_version, "promoted")

    @admin.action(description="Roll the selected champion back to the previous version",
                  permissions=["operate"])  # fmt: skip
    def roll_back_version(self, request, queryset) -> None:
        self._decide(request, queryset, champions.roll_back_version, "rolled back")


@admin.register(ModelDecision)
class ModelDecisionAdmin(ReadOnlyLedgerAdmin):
    list_display = ["at", "version", "action", "actor", "champion", "challenger", "reason"]
    list_filter = ["action", "actor"]
    search_fields = ["version"]


@admin.register(LearningRecord)
class LearningRecordAdmin(ReadOnlyLedgerAdmin):
    list_display = ["closed_at", "symbol", "model_version", "side", "probability_up", "net_pnl",
                    "won"]  # fmt: skip
    list_filter = ["model_version", "symbol", "won"]


@admin.register(PerformanceSnapshot)
class PerformanceSnapshotAdmin(ReadOnlyLedgerAdmin):
    list_display = ["ts", "equity", "open_positions", "closed_trades", "win_rate",
                    "profit_factor", "sharpe_ratio", "max_drawdown"]  # fmt: skip


class SelfTestResultInline(admin.TabularInline):
    model = SelfTestResult
    fields = ["position", "title", "status", "duration_seconds", "detail"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SelfTestRun)
class SelfTestRunAdmin(ReadOnlyLedgerAdmin):
    list_display = ["started_at", "suite", "status", "passed", "failed", "skipped", "trigger",
                    "actor", "finished_at"]  # fmt: skip
    list_filter = ["suite", "status", "trigger"]
    inlines = [SelfTestResultInline]


# Notification channels, deliveries and the Telegram chats live with their area.
@admin.register(StrategyConfig)
class StrategyConfigAdmin(admin.ModelAdmin):
    """Parameters are checked per kind when saved (``StrategyConfig.clean``): sma_crossover
    takes fast, slow, notional; rsi_mean_reversion period, oversold, overbought, notional;
    ai_model model_version, notional."""

    list_display = ("name", "kind", "confidence", "updated_at")
    filter_horizontal = ("accounts",)


@admin.register(BacktestRun)
class BacktestRunAdmin(admin.ModelAdmin):
    list_display = ("pk", "strategy", "status", "symbols", "start", "end", "created_at")
    readonly_fields = ("report", "fills")


from trading.notifications import admin as _notifications_admin  # noqa: E402, F401
