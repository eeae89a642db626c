"""The backtest engine: live paper trading's decisions on recorded bars, in one process."""

from __future__ import annotations

from decimal import Decimal

from tests.support.backtests import Scripted, roomy_limits, settings
from trading.backtest.engine import Backtest, steps_of
from trading.backtest.report import build_report
from trading.execution.paper import PaperConfig, taker_price
from trading.ledger.book import cash_flow
from trading.marketdata.klines import load_bundled_bars
from trading.marketdata.symbols import load_bundled_rules
from trading.strategies.base import SignalIntent
from trading.strategies.rules import SmaCrossover

BTC = load_bundled_bars("BTCUSDT")[:200]
RULES = load_bundled_rules()


def buy(notional, confidence="0.9"):
    return SignalIntent("BTCUSDT", "BUY", Decimal(confidence), notional=Decimal(notional))


def close(confidence="0.9"):
    return SignalIntent("BTCUSDT", "SELL", Decimal(confidence), close_position=True)


def run(script, **overrides):
    return Backtest(Scripted(script), settings(**overrides)).run(steps_of([BTC]))


def test_a_buy_fills_at_the_bars_close_slipped_to_the_tick_with_the_taker_fee():
    result = run({("BTCUSDT", 10): buy(1000), ("BTCUSDT", 20): close()})
    rules = RULES["BTCUSDT"]
    opened, closed = result.fills
    expected_quantity = rules.round_quantity(Decimal(1000) / BTC[10].close, market=True)
    assert opened.quantity == expected_quantity
    assert opened.price == taker_price(
        "BUY", BTC[10].close, PaperConfig(), tick_size=rules.tick_size
    )
    assert opened.fee == Decimal("0.001") * opened.quantity * opened.price
    assert closed.side == "SELL" and closed.quantity == expected_quantity
    assert closed.price == taker_price(
        "SELL", BTC[20].close, PaperConfig(), tick_size=rules.tick_size
    )
    cash = Decimal(100_000) + sum(
        (cash_flow(f.side, f.quantity, f.price, f.fee) for f in result.fills), Decimal(0)
    )
    assert result.final_equity == cash  # flat again: equity is the cash the fills left
    assert [t.net_pnl for t in result.trades] == [cash - Decimal(100_000)]


def test_fees_and_slippage_are_set_per_run():
    script = {("BTCUSDT", 10): buy(1000)}
    free = run(script, paper=PaperConfig(taker_fee_rate=Decimal(0), slippage_bps=Decimal(0)))
    assert free.fills[0].price == BTC[10].close
    assert free.fills[0].fee == 0


def test_an_order_beyond_the_bars_volume_share_fills_over_later_bars():
    config = PaperConfig(max_volume_share=Decimal("0.0001"))
    result = run({("BTCUSDT", 10): buy(50_000)}, paper=config)
    fills = [f for f in result.fills if f.order_index == 0]
    assert len(fills) > 1
    assert [f.ts for f in fills] == sorted({f.ts for f in fills})  # one part per bar
    assert all(f.quantity <= config.max_volume_share * b.volume for f, b in
               zip(fills, BTC[10:], strict=False))  # fmt: skip


def test_signals_are_denied_by_the_live_risk_checks():
    result = run(
        {("BTCUSDT", 10): buy(1000, confidence="0.5"), ("BTCUSDT", 11): buy(90_000),
         ("BTCUSDT", 12): close()},
        limits=roomy_limits(min_confidence=Decimal("0.7")),
    )  # fmt: skip
    assert [(s.status, s.reason) for s in result.signals] == [
        ("denied", "LOW_CONFIDENCE"),
        ("denied", "MAX_POSITION_NOTIONAL"),
        ("denied", "INSUFFICIENT_BALANCE"),  # nothing to close
    ]
    assert result.orders == [] and result.fills == []


def test_a_spot_buy_beyond_the_cash_is_denied_for_balance():
    result = run({("BTCUSDT", 10): buy(5_000)}, starting_cash=Decimal(1_000))
    assert [(s.status, s.reason) for s in result.signals] == [("denied", "INSUFFICIENT_BALANCE")]


def test_the_daily_loss_limit_halts_the_book_as_live():
    script = {("BTCUSDT", i): (buy(20_000) if i % 2 else close()) for i in range(10, 150)}
    limits = roomy_limits(daily_loss_limit=Decimal(50))
    result = run(script, limits=limits)
    reasons = [s.reason for s in result.signals if s.status == "denied"]
    assert "DAILY_LOSS_LIMIT" in reasons or "TRADING_HALTED" in reasons


def test_the_report_sets_the_strategy_beside_buying_and_holding():
    strategy = SmaCrossover(3, 8, Decimal(1000), Decimal("0.8"))
    result = Backtest(strategy, settings()).run(steps_of([BTC]))
    report = build_report(result)
    assert report["trades"] == len(result.trades) > 0
    assert report["stated_confidence"] == "0.8"
    assert 0 <= report["hit_rate"] <= 1
    assert report["buy_and_hold"]["per_symbol"]["BTCUSDT"] == float(
        BTC[-1].close / BTC[0].close - 1
    )
    assert Decimal(report["max_drawdown"]) >= max(d for _, d in report["drawdown_curve"]) - 1e-9
    assert report["equity_curve"][-1][1] == str(result.final_equity)


def test_bars_before_trade_from_only_fill_the_window():
    strategy = SmaCrossover(3, 8, Decimal(1000), Decimal("0.8"))
    full = Backtest(strategy, settings()).run(steps_of([BTC]))
    start = BTC[100].close_time
    later = Backtest(strategy, settings(trade_from=start)).run(steps_of([BTC]))
    assert later.signals and all(s.ts >= start for s in later.signals)
    assert [(s.ts, s.side) for s in later.signals][:1] == [
        (s.ts, s.side) for s in full.signals if s.ts >= start
    ][:1]
    assert later.start == start


ETH = load_bundled_bars("ETHUSDT")[:200]


def test_a_signal_sees_the_order_an_earlier_signal_of_the_same_step_placed():
    eth_buy = SignalIntent("ETHUSDT", "BUY", Decimal("0.9"), notional=Decimal(1000))
    script = {("BTCUSDT", 10): buy(1000), ("ETHUSDT", 10): eth_buy,
              ("BTCUSDT", 20): buy(1000, confidence="0.5"), ("ETHUSDT", 20): eth_buy}  # fmt: skip
    one_position = settings(limits=roomy_limits(max_open_positions=1))
    result = Backtest(Scripted(script), one_position).run(steps_of([BTC, ETH]))
    assert [(s.symbol, s.status, s.reason) for s in result.signals] == [
        ("BTCUSDT", "submitted", ""),
        ("ETHUSDT", "denied", "MAX_OPEN_POSITIONS"),  # the BTC position the step opened
        ("BTCUSDT", "denied", "LOW_CONFIDENCE"),
        ("ETHUSDT", "denied", "MAX_OPEN_POSITIONS"),
    ]
    one_order = settings(limits=roomy_limits(max_orders_per_minute=1))
    result = Backtest(Scripted(script), one_order).run(steps_of([BTC, ETH]))
    assert [s.reason for s in result.signals[:2]] == ["", "ORDER_RATE"]
