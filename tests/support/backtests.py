"""Settings and scripted strategies for backtests in tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from trading.backtest.engine import Settings
from trading.execution.paper import PaperConfig
from trading.marketdata.bars import Bar
from trading.marketdata.symbols import load_bundled_rules
from trading.risk.checks import Limits
from trading.strategies.base import SignalIntent

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def roomy_limits(**overrides) -> Limits:
    """Limits that let a strategy's ordinary orders through."""
    values = dict(
        max_position_notional=Decimal(50_000),
        max_total_exposure=Decimal(100_000),
        max_leverage=1,
        max_open_positions=3,
        daily_loss_limit=Decimal(50_000),
        max_drawdown=Decimal("0.9"),
        max_orders_per_minute=100,
        allowed_symbols=SYMBOLS,
    )
    return Limits(**{**values, **overrides})


def settings(**overrides) -> Settings:
    values = dict(
        paper=PaperConfig(),
        limits=roomy_limits(),
        rules=load_bundled_rules(),
        starting_cash=Decimal(100_000),
    )
    return Settings(**{**values, **overrides})


@dataclass
class Scripted:
    """Sends the given signal on the bars of the given open times (by symbol and bar index in
    the series shown so far)."""

    script: dict[tuple[str, int], SignalIntent]
    kind: str = "scripted"
    warmup: int = 1
    seen: dict[str, int] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return "scripted"

    def on_bar(self, window: Sequence[Bar]) -> list[SignalIntent]:
        symbol = window[-1].symbol
        index = self.seen.get(symbol, 0)
        self.seen[symbol] = index + 1
        intent = self.script.get((symbol, index))
        return [intent] if intent else []
