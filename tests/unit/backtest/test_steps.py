"""Steps: several symbols' bars merged by closing time, as the engine meets them."""

from __future__ import annotations

from trading.backtest.engine import steps_of
from trading.marketdata.klines import load_bundled_bars

BTC = load_bundled_bars("BTCUSDT")[:50]
ETH = load_bundled_bars("ETHUSDT")[:50]
SOL = load_bundled_bars("SOLUSDT")[:50]


def shape(steps):
    return [(step[0].close_time, [bar.symbol for bar in step]) for step in steps]


def test_bars_that_line_up_make_one_step_a_moment_in_symbol_order():
    steps = list(steps_of([SOL, BTC, ETH]))

    assert len(steps) == 50
    assert all([bar.symbol for bar in step] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"] for step in steps)
    assert [step[0].close_time for step in steps] == [bar.close_time for bar in BTC]
    assert all(len({bar.close_time for bar in step}) == 1 for step in steps)


def test_a_late_start_and_a_gap_leave_the_symbol_out_of_those_steps():
    late_eth = ETH[10:]
    gappy_sol = SOL[:20] + SOL[30:]

    steps = list(steps_of([iter(BTC), iter(late_eth), iter(gappy_sol)]))

    assert len(steps) == 50
    by_time = dict(shape(steps))
    assert by_time[BTC[5].close_time] == ["BTCUSDT", "SOLUSDT"]
    assert by_time[BTC[25].close_time] == ["BTCUSDT", "ETHUSDT"]
    assert by_time[BTC[40].close_time] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    merged = [id(bar) for step in steps for bar in step]
    assert sorted(merged) == sorted(id(bar) for bar in [*BTC, *late_eth, *gappy_sol])
    times = [time for time, _ in shape(steps)]
    assert times == sorted(set(times))


def test_series_that_end_at_different_times_run_to_the_last_bar():
    steps = list(steps_of([BTC[:10], ETH]))

    assert len(steps) == 50
    assert [bar.symbol for bar in steps[-1]] == ["ETHUSDT"]
    assert steps[-1][0] is ETH[-1]


def test_no_series_make_no_steps():
    assert list(steps_of([])) == []
    assert list(steps_of([[], []])) == []
