"""Replaying recorded bars: pacing on an injected clock, lockstep, stop and loop, start_index."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from trading.marketdata.bars import Bar
from trading.marketdata.klines import UnknownSymbolError, load_bundled_bars
from trading.marketdata.replay import ReplayConfig, ReplayEnd, replay_bars, replay_start_step

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
FIVE_MINUTES = timedelta(minutes=5)
FIRST_OPEN = datetime(2025, 8, 21, tzinfo=UTC)
THIRTY_DAYS = timedelta(days=30)
STEPS = 8640


class FakeClock:
    """A monotonic clock that only moves when something sleeps or the test advances it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


def never_sleep(seconds: float) -> None:
    raise AssertionError(f"slept {seconds}s at bar_seconds=0")


def never_read_the_clock() -> float:
    raise AssertionError("read the clock at bar_seconds=0")


def take(iterator, n):
    return list(itertools.islice(iterator, n))


def yield_times(run, clock, steps, work=0.0):
    """Clock readings at which each step reached the consumer, which spends ``work`` on each."""
    times = []
    for _ in range(steps):
        next(run)
        times.append(clock.now - 100.0)
        clock.now += work
    return times


# --- pacing ----------------------------------------------------------------------------------


def test_steps_come_bar_seconds_apart_and_the_first_at_once():
    clock = FakeClock()
    run = replay_bars(ReplayConfig(SYMBOLS, bar_seconds=1.5), clock, clock.sleep)
    assert yield_times(run, clock, 5) == [0.0, 1.5, 3.0, 4.5, 6.0]


def test_time_the_consumer_spends_is_taken_out_of_the_wait_so_the_pace_does_not_drift():
    clock = FakeClock()
    run = replay_bars(ReplayConfig(SYMBOLS, bar_seconds=1.0), clock, clock.sleep)
    assert yield_times(run, clock, 4, work=0.25) == [0.0, 1.0, 2.0, 3.0]
    assert clock.sleeps == [0.75, 0.75, 0.75]


def test_a_consumer_that_falls_behind_gets_the_next_step_at_once_without_a_burst():
    clock = FakeClock()
    run = replay_bars(ReplayConfig(SYMBOLS, bar_seconds=1.0), clock, clock.sleep)
    next(run)  # at 0
    clock.now += 3.5  # the consumer stalls for three and a half bars
    times = yield_times(run, clock, 3)
    assert times == [3.5, 4.5, 5.5]


def test_zero_bar_seconds_replays_as_fast_as_the_consumer_takes_steps():
    run = replay_bars(ReplayConfig(SYMBOLS, bar_seconds=0), never_read_the_clock, never_sleep)
    assert len(take(run, 500)) == 500


# --- lockstep --------------------------------------------------------------------------------


def test_every_step_holds_one_bar_per_symbol_closing_at_the_same_moment():
    run = replay_bars(ReplayConfig(SYMBOLS, bar_seconds=0), never_read_the_clock, never_sleep)
    for index, step in enumerate(take(run, 300)):
        assert [bar.symbol for bar in step] == list(SYMBOLS)
        assert {bar.open_time for bar in step} == {FIRST_OPEN + index * FIVE_MINUTES}
        assert len({bar.close_time for bar in step}) == 1


def test_the_step_order_of_symbols_follows_the_config():
    config = ReplayConfig(("SOLUSDT", "BTCUSDT"), bar_seconds=0)
    step = next(replay_bars(config, never_read_the_clock, never_sleep))
    assert [bar.symbol for bar in step] == ["SOLUSDT", "BTCUSDT"]
    assert step[0] == load_bundled_bars("SOLUSDT")[0]
    assert step[1] == load_bundled_bars("BTCUSDT")[0]


def test_a_symbol_missing_a_bar_sits_out_that_step_while_the_others_go_on():
    def load(symbol):
        bars = [synthetic_bar(symbol, FIRST_OPEN + i * FIVE_MINUTES, i) for i in range(4)]
        return bars if symbol == "AAA" else bars[:1] + bars[2:]  # BBB lacks the second bar

    config = ReplayConfig(("AAA", "BBB"), bar_seconds=0)
    steps = list(replay_bars(config, never_read_the_clock, never_sleep, load=load))
    assert [[bar.symbol for bar in step] for step in steps] == [
        ["AAA", "BBB"],
        ["AAA"],
        ["AAA", "BBB"],
        ["AAA", "BBB"],
    ]


def test_a_symbol_whose_data_starts_earlier_leads_alone_until_the_others_begin():
    def load(symbol):
        bars = [synthetic_bar(symbol, FIRST_OPEN + i * FIVE_MINUTES, i) for i in range(3)]
        return bars[1:] if symbol == "LATE" else bars[:2]  # LATE has bars 1-2, EARLY bars 0-1

    config = ReplayConfig(("LATE", "EARLY"), bar_seconds=0)
    steps = list(replay_bars(config, never_read_the_clock, never_sleep, load=load))
    assert [[(bar.symbol, bar.close) for bar in step] for step in steps] == [
        [("EARLY", 1)],
        [("LATE", 2), ("EARLY", 2)],
        [("LATE", 3)],
    ]


# --- start_index -----------------------------------------------------------------------------


def test_start_index_begins_the_replay_that_many_steps_in():
    config = ReplayConfig(SYMBOLS, bar_seconds=0, start_index=1000)
    step = next(replay_bars(config, never_read_the_clock, never_sleep))
    assert {bar.open_time for bar in step} == {FIRST_OPEN + 1000 * FIVE_MINUTES}
    assert step[0] == load_bundled_bars("BTCUSDT")[1000]


def test_a_start_index_past_the_data_is_refused_before_the_first_step():
    with pytest.raises(ValueError, match="start_index 8640"):
        replay_bars(ReplayConfig(SYMBOLS, start_index=STEPS), never_read_the_clock, never_sleep)


# --- stop and loop ---------------------------------------------------------------------------


def test_stop_ends_after_the_last_bar_with_a_status_to_log():
    config = ReplayConfig(SYMBOLS, bar_seconds=0, at_end="stop", start_index=STEPS - 3)
    run = replay_bars(config, never_read_the_clock, never_sleep)
    steps = list(run)
    assert len(steps) == 3
    assert steps[-1][0] == load_bundled_bars("BTCUSDT")[-1]
    last_close = datetime(2025, 9, 19, 23, 59, 59, 999000, tzinfo=UTC)
    assert run.end == ReplayEnd("end_of_data", steps=3, last_close_time=last_close)
    assert "end of the data after 3 steps" in str(run.end)
    with pytest.raises(StopIteration) as stopped:
        next(run)
    assert stopped.value.value == run.end


def test_stop_does_not_wait_a_bar_before_saying_it_has_ended():
    clock = FakeClock()
    config = ReplayConfig(SYMBOLS, bar_seconds=1.0, at_end="stop", start_index=STEPS - 1)
    run = replay_bars(config, clock, clock.sleep)
    assert len(list(run)) == 1
    assert clock.sleeps == []


def test_loop_starts_over_with_times_shifted_by_the_data_span_so_they_keep_rising():
    config = ReplayConfig(SYMBOLS, bar_seconds=0, at_end="loop", start_index=STEPS - 2)
    run = replay_bars(config, never_read_the_clock, never_sleep)
    steps = take(run, 5)
    opens = [step[0].open_time for step in steps]
    assert opens == [FIRST_OPEN + THIRTY_DAYS + (i - 2) * FIVE_MINUTES for i in range(5)]
    assert run.end is None and run.passes == 1
    btc = load_bundled_bars("BTCUSDT")
    wrapped = steps[2][0]
    assert wrapped.open_time == btc[0].open_time + THIRTY_DAYS
    assert wrapped.close_time == btc[0].close_time + THIRTY_DAYS
    assert (wrapped.open, wrapped.close, wrapped.volume) == (
        btc[0].open,
        btc[0].close,
        btc[0].volume,
    )
    assert wrapped.close_time < steps[3][0].open_time


def test_loop_keeps_times_rising_pass_after_pass():
    def load(symbol):
        return [synthetic_bar(symbol, FIRST_OPEN + i * FIVE_MINUTES, i) for i in range(3)]

    config = ReplayConfig(("AAA", "BBB"), bar_seconds=0, at_end="loop")
    run = replay_bars(config, never_read_the_clock, never_sleep, load=load)
    steps = take(run, 10)
    opens = [step[0].open_time for step in steps]
    assert opens == [FIRST_OPEN + i * FIVE_MINUTES for i in range(10)]
    assert [step[1].close for step in steps] == [Decimal(i % 3 + 1) for i in range(10)]
    assert run.passes == 3


def test_loop_paces_across_the_seam_like_any_other_step():
    clock = FakeClock()
    config = ReplayConfig(SYMBOLS, bar_seconds=2.0, at_end="loop", start_index=STEPS - 1)
    run = replay_bars(config, clock, clock.sleep)
    assert yield_times(run, clock, 3) == [0.0, 2.0, 4.0]


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"symbols": ()},
        {"symbols": ("BTCUSDT", "BTCUSDT")},
        {"symbols": SYMBOLS, "bar_seconds": -1},
        {"symbols": SYMBOLS, "bar_seconds": float("nan")},
        {"symbols": SYMBOLS, "at_end": "rewind"},
        {"symbols": SYMBOLS, "start_index": -1},
    ],
    ids=["no-symbols", "twice", "negative-pace", "nan-pace", "bad-at-end", "negative-start"],
)
def test_a_bad_config_is_refused(kwargs):
    with pytest.raises(ValueError):
        ReplayConfig(**kwargs)


def test_an_unknown_symbol_is_refused_before_the_first_step():
    with pytest.raises(UnknownSymbolError, match="DOGEUSDT"):
        replay_bars(ReplayConfig(("BTCUSDT", "DOGEUSDT")), never_read_the_clock, never_sleep)


def test_a_single_symbol_string_is_taken_as_one_symbol_not_its_letters():
    assert ReplayConfig("BTCUSDT").symbols == ("BTCUSDT",)


def synthetic_bar(symbol: str, open_time: datetime, i: int) -> Bar:
    price = Decimal(i + 1)
    return Bar(
        symbol=symbol,
        interval="5m",
        open_time=open_time,
        close_time=open_time + FIVE_MINUTES - timedelta(milliseconds=1),
        open=price,
        high=price,
        low=price,
        close=price,
        volume=Decimal(1),
        quote_volume=price,
        trades=1,
    )


# --- resuming --------------------------------------------------------------------------------


def test_resume_after_starts_with_the_step_after_the_last_one_published():
    btc = load_bundled_bars("BTCUSDT")
    config = ReplayConfig(SYMBOLS, bar_seconds=0, resume_after=btc[5999].close_time)
    run = replay_bars(config, never_read_the_clock, never_sleep)
    assert next(run)[0] == btc[6000]
    assert run.history(2) == [
        [load_bundled_bars(s)[5998] for s in SYMBOLS],
        [load_bundled_bars(s)[5999] for s in SYMBOLS],
    ]


def test_resume_after_a_looped_bar_carries_on_on_the_same_pass_with_times_still_rising():
    btc = load_bundled_bars("BTCUSDT")
    published = btc[10].close_time + 2 * THIRTY_DAYS  # on the third pass
    config = ReplayConfig(SYMBOLS, bar_seconds=0, at_end="loop", resume_after=published)
    run = replay_bars(config, never_read_the_clock, never_sleep)
    step = next(run)
    assert step[0].open_time == btc[11].open_time + 2 * THIRTY_DAYS
    assert step[0].close == btc[11].close
    assert run.passes == 2


def test_resume_after_the_last_bar_of_a_pass_loops_into_the_next_pass():
    btc = load_bundled_bars("BTCUSDT")
    config = ReplayConfig(SYMBOLS, bar_seconds=0, at_end="loop", resume_after=btc[-1].close_time)
    run = replay_bars(config, never_read_the_clock, never_sleep)
    assert next(run)[0].open_time == btc[0].open_time + THIRTY_DAYS
    # The history reaches back across the seam, as those bars were published.
    assert [step[0] for step in run.history(2)] == [btc[-2], btc[-1]]


def test_resume_after_the_last_bar_with_stop_ends_at_once_without_a_step():
    btc = load_bundled_bars("BTCUSDT")
    config = ReplayConfig(SYMBOLS, bar_seconds=0, at_end="stop", resume_after=btc[-1].close_time)
    run = replay_bars(config, never_read_the_clock, never_sleep)
    assert list(run) == []
    assert run.end is not None and run.end.steps == 0


def test_stop_after_resuming_mid_data_ends_at_the_end_of_that_pass():
    btc = load_bundled_bars("BTCUSDT")
    config = ReplayConfig(
        SYMBOLS, bar_seconds=0, at_end="stop", resume_after=btc[STEPS - 3].close_time
    )
    assert len(list(replay_bars(config, never_read_the_clock, never_sleep))) == 2


def test_resume_after_before_the_data_starts_at_the_first_step():
    config = ReplayConfig(SYMBOLS, bar_seconds=0, resume_after=FIRST_OPEN - THIRTY_DAYS)
    run = replay_bars(config, never_read_the_clock, never_sleep)
    assert next(run)[0] == load_bundled_bars("BTCUSDT")[0]
    assert run.history(5) == []


def test_a_naive_resume_after_is_refused():
    with pytest.raises(ValueError, match="resume_after must be an aware datetime"):
        ReplayConfig(SYMBOLS, resume_after=datetime(2025, 8, 21))


# --- simulated live time: every pass starts at the same step ---------------------------------


def test_replay_start_step_counts_the_bars_of_the_start_days():
    assert replay_start_step(20, "5m") == 5760
    assert replay_start_step(1.5, "1h") == 36


def test_a_looping_replay_with_a_pass_start_starts_every_pass_there():
    start = STEPS - 10
    config = ReplayConfig(SYMBOLS, bar_seconds=0, at_end="loop", start_index=start,
                          pass_start=start)  # fmt: skip
    run = replay_bars(config, never_read_the_clock, never_sleep)
    steps = take(run, 12)
    btc = load_bundled_bars("BTCUSDT")
    assert steps[9][0] == btc[-1]
    wrapped = steps[10][0]
    assert run.passes == 1
    assert wrapped.open_time == btc[start].open_time + THIRTY_DAYS
    assert wrapped.close == btc[start].close


def test_the_seed_of_a_later_pass_is_the_steps_before_its_start_shifted_like_it():
    config = ReplayConfig(SYMBOLS, bar_seconds=0, at_end="loop", start_index=100, pass_start=100)
    run = replay_bars(config, never_read_the_clock, never_sleep)
    btc = load_bundled_bars("BTCUSDT")
    assert [step[0] for step in run.seed_steps(0)] == btc[:100]
    later = run.seed_steps(2)
    assert len(later) == 100
    assert later[0][0].open_time == btc[0].open_time + 2 * THIRTY_DAYS
    assert later[-1][0].close == btc[99].close


def test_a_pass_start_past_the_data_is_refused():
    with pytest.raises(ValueError, match="pass_start 8640"):
        replay_bars(ReplayConfig(SYMBOLS, pass_start=STEPS), never_read_the_clock, never_sleep)
