"""Fault tolerance of the ai and analytics workers: each SIGKILLed in the middle of the work that
flows through it (its main process and pool children together, as a crash or the OOM killer
would), restarted as the process supervisor does, and nothing lost or done twice afterwards."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal

import pytest

from tests.conftest import SYMBOLS, start_workers
from tests.support.faults import WriteLock, check_the_book
from tests.support.processes import Process, wait_for
from tests.support.signals import saved_signal

pytestmark = pytest.mark.django_db(transaction=True)

AI_NODE = "ai@tests"
ANALYTICS_NODE = "analytics@tests"
# How often beat asks each service to drain its events (the schedules of migrations 0004 and
# 0006); the tests run no beat, so they send those tasks themselves while they wait.
DRAIN_EVERY_SECONDS = 5


def recovery_seconds() -> float:
    """How long a group's events may wait after a worker died in the middle of draining them:
    its drain lock has to expire, then its entries are claimed again; with a margin."""
    from trading.events.consumer import DRAIN_LOCK_SECONDS

    return DRAIN_LOCK_SECONDS + 30


# --- crashing a worker in the middle of a drain ------------------------------------------------


def crash(worker: Process) -> None:
    """SIGKILL to the worker's whole process group at once: the main process and its pool
    children die together and nothing runs on the way out (no task acknowledged or given back,
    no lock released)."""
    os.killpg(worker.pid, signal.SIGKILL)
    worker.popen.wait(10)
    worker.stop()  # reaps what is left


def pending_entries(redis_client, group: str) -> int:
    """Entries of the event log delivered to ``group`` and not acknowledged yet."""
    from trading.events.log import events_stream

    return redis_client.xpending(events_stream(), group)["pending"]


def held_uncommitted(redis_client, group: str, of_type: str) -> int:
    """How many entries ``group``'s drain holds, read and not committed, when one of them is of
    type ``of_type``; else 0 (also while any entry it holds is committed: the drain is between
    a commit and its acknowledgement, a crash point this test does not aim at)."""
    from trading.events.log import events_stream
    from trading.models import ProcessedEvent

    stream = events_stream()
    held = redis_client.xpending_range(stream, group, "-", "+", 1000)
    if not held:
        return 0
    pipe = redis_client.pipeline(transaction=False)
    for row in held:
        pipe.xrange(stream, row["message_id"], row["message_id"])
    fields = [entries[0][1] for entries in pipe.execute() if entries]
    committed = ProcessedEvent.objects.filter(
        consumer=group, event_id__in=[f["event_id"] for f in fields]
    )
    if committed.exists() or of_type not in {f["type"] for f in fields}:
        return 0
    return len(held)


def crash_mid_drain(
    worker: Process, redis_client, group: str, drain, feed: Callable[[], object], of_type: str
) -> int:
    """Crashes the worker while one drain of ``group`` holds a pile of entries, among them one
    of ``of_type``, that it has read and not committed. Returns how many it held.

    The pile: the test holds the group's drain lock (as a running drain would, so the service's
    own drains skip) while ``feed()`` makes the work. Then, SQLite's write lock held, it lets one
    ``drain`` task go: the drain reads the whole pile and stops at its first write."""
    from trading.store import rkey

    # The lock drain_exclusively takes (trading.events.consumer).
    drain_lock = redis_client.lock(rkey("lock", "drain", group), timeout=120, thread_local=False)
    assert drain_lock.acquire(blocking_timeout=30), f"a drain of {group} never finished"
    try:
        feed()
    except BaseException:
        drain_lock.release()
        raise
    write_lock = WriteLock()
    try:
        with write_lock:
            drain_lock.release()
            drain.apply_async(expires=30)
            held = wait_for(
                lambda: held_uncommitted(redis_client, group, of_type),
                20,
                f"a drain of {group} to read the pile and stop",
            )
            crash(worker)
            return held
    finally:
        write_lock.connection.close()


def beating(condition: Callable[[], object], task) -> Callable[[], object]:
    """``condition``, sending ``task`` every ``DRAIN_EVERY_SECONDS`` as beat would."""
    sent = [-float(DRAIN_EVERY_SECONDS)]

    def check():
        if time.monotonic() - sent[0] >= DRAIN_EVERY_SECONDS:
            task.apply_async(expires=30)
            sent[0] = time.monotonic()
        return condition()

    return check


def rewind_group(redis_client, group: str) -> None:
    """The group reads from now on: what earlier tests left in the log is not this test's."""
    from trading.events.consumer import ensure_group
    from trading.events.log import events_stream

    if not ensure_group(redis_client, group, start="$"):
        redis_client.xgroup_setid(events_stream(), group, "$")


def undecided(signals) -> bool:
    from trading.models import Order, Signal

    in_flight = Order.objects.filter(status__in=Order.OPEN_STATUSES).exists()
    return in_flight or signals.filter(status=Signal.Status.PENDING).exists()


# --- ai: bars arriving while the worker dies and comes back -----------------------------------

FIRST_BAR = 130  # the bars before it are the history the features need
# Steps (a bar of each symbol) in each phase: before the crash, read by the drain that dies,
# published while ai is down, after it is back. The bars ai handles late stay within the model's
# horizon (12 bars) of the newest: beyond it a bar is skipped as stale, by design.
PHASE = 3
STEPS = 4 * PHASE
PACE_SECONDS = 0.25  # a 5-minute bar every quarter second: faster than live, as a replay runs


def feature_rows() -> Counter:
    """The feature row of every bar the test publishes, as the model sees it, by symbol: what
    the signal of that bar carries, and no other bar's signal."""
    from trading.ai.features import WARMUP_BARS, latest_features
    from trading.marketdata.klines import load_bundled_bars

    rows = Counter()
    for symbol in SYMBOLS:
        bars = load_bundled_bars(symbol)
        for index in range(FIRST_BAR, FIRST_BAR + STEPS):
            row = latest_features(bars[index - WARMUP_BARS + 1 : index + 1])
            rows[(symbol, tuple(float(value) for value in row))] += 1
    assert len(rows) == len(SYMBOLS) * STEPS  # every bar's row is its own
    return rows


def test_sigkill_of_ai_while_bars_arrive_gives_every_bar_one_signal(
    trained_model, service_workers, process_env, redis_client
):
    from trading.ai.features import FEATURE_NAMES
    from trading.ai.tasks import drain_market_events
    from trading.marketdata.klines import load_bundled_bars
    from trading.marketdata.prices import record_bars
    from trading.marketdata.services import publish_bars
    from trading.models import RiskLimits, Signal
    from trading.store import rkey

    # The model is rarely 70 % sure: let its signals trade, so that orders flow downstream.
    RiskLimits.objects.update_or_create(
        symbol="", defaults={"min_confidence": Decimal("0.5"), "max_orders_per_minute": 1000}
    )
    redis_client.delete(rkey("prices"), rkey("sizing"), *(rkey("bars", s) for s in SYMBOLS))
    for index in range(FIRST_BAR):  # the history, as the feed seeds it: no events
        record_bars([load_bundled_bars(s)[index] for s in SYMBOLS])
    rewind_group(redis_client, "ai")
    published: list[int] = []

    def publish_next() -> None:
        """The feed's next step: each symbol's next closed bar, recorded and announced."""
        index = FIRST_BAR + len(published)
        publish_bars([load_bundled_bars(s)[index] for s in SYMBOLS])
        published.append(index)

    def publish(count: int) -> None:
        for _ in range(count):
            publish_next()
            time.sleep(PACE_SECONDS)

    assert 3 * PHASE < trained_model.horizon_bars
    publish(PHASE)
    wait_for(lambda: Signal.objects.filter(source="ai").exists(), 20, "the first ai signal")
    crash_mid_drain(
        service_workers["ai"],
        redis_client,
        "ai",
        drain_market_events,
        lambda: publish(PHASE),
        "market.bar",
    )
    publish(PHASE)  # the feed goes on while ai is down
    (service_workers["ai"],) = start_workers([(AI_NODE, "ai")], process_env, concurrency=2)
    publish(STEPS - len(published))

    def signalled() -> Counter:
        rows = Signal.objects.filter(source="ai").values_list("symbol", "features")
        return Counter((s, tuple(f[name] for name in FEATURE_NAMES)) for s, f in rows)

    expected = feature_rows()

    def recovered() -> bool:
        return set(signalled()) >= set(expected) and not pending_entries(redis_client, "ai")

    wait_for(
        beating(recovered, drain_market_events), recovery_seconds(), "a signal on every bar", 0.5
    )
    assert signalled() == expected  # one signal a bar: none lost, none twice, none on another

    signals = Signal.objects.filter(source="ai")
    wait_for(lambda: not undecided(signals), 30, "exec-risk to decide every ai signal")
    check_the_book([str(pk) for pk in signals.values_list("pk", flat=True)])


def late_bar_event(index: int, symbol: str = "BTCUSDT"):
    """The ``market.bar`` event of the symbol's index-th bar, published now."""
    from trading.events.envelope import new_event
    from trading.marketdata.klines import load_bundled_bars

    bar = load_bundled_bars(symbol)[index]
    return new_event("market.bar", bar.to_payload(), service="feed")


def record_up_to(stop: int, start: int = 0, symbol: str = "BTCUSDT") -> None:
    from trading.marketdata.klines import load_bundled_bars
    from trading.marketdata.prices import record_bars
    from trading.store import redis_client, rkey

    if start == 0:
        redis_client().delete(rkey("prices"), rkey("bars", symbol))
    for index in range(start, stop):
        record_bars([load_bundled_bars(symbol)[index]])


def test_a_bar_handled_late_gets_a_signal_until_the_models_horizon_has_passed(trained_model):
    from trading.ai.services import generate_signal

    horizon = trained_model.horizon_bars
    record_up_to(FIRST_BAR + 1)
    announced = [late_bar_event(FIRST_BAR), late_bar_event(FIRST_BAR - 1)]
    time.sleep(0.01)  # the later bars are recorded after those events were published
    record_up_to(FIRST_BAR + horizon, start=FIRST_BAR + 1)
    assert generate_signal(announced[0]) is not None  # horizon - 1 bars later: still ahead
    assert generate_signal(announced[1]) is None  # horizon bars later: about the past


def test_bars_announced_after_newer_ones_are_history_and_only_the_newest_trades(trained_model):
    """A feed's backfill: many closed bars recorded at once, then announced."""
    from trading.ai.services import generate_signal

    record_up_to(FIRST_BAR + 5)
    assert generate_signal(late_bar_event(FIRST_BAR + 2)) is None
    assert generate_signal(late_bar_event(FIRST_BAR + 4)) is not None


# --- analytics: positions closing while the worker dies and comes back -----------------------

ROUND_TRIP_NOTIONAL = Decimal("150")


def open_and_close_one_each(quantities: dict[str, Decimal]) -> list[str]:
    """A buy of the quantity in every symbol, sent to exec-risk together, and once they are
    filled a sell of the same: each pair opens a position and closes it. (On a spot account a
    sell decided before its buy filled is refused: nothing to sell yet.) Returns the signals'
    ids."""
    from trading.models import Signal
    from trading.risk.services import get_account

    account = get_account()
    ids = []
    for side in ("BUY", "SELL"):
        sent = [
            str(saved_signal(account, symbol=symbol, side=side, quantity=quantity,
                             hand_off=True).pk)
            for symbol, quantity in quantities.items()
        ]  # fmt: skip
        wait_for(
            lambda sent=sent: not undecided(Signal.objects.filter(pk__in=sent)),
            30,
            f"exec-risk to decide the {side} signals",
        )
        ids.extend(sent)
    return ids


def last_stream_id(redis_client) -> str:
    from trading.events.log import events_stream

    newest = redis_client.xrevrange(events_stream(), count=1)
    return newest[0][0] if newest else "0-0"


def test_sigkill_of_analytics_while_positions_close_records_each_one_once(
    client, market, service_workers, process_env, redis_client
):
    from trading.analytics.tasks import drain_events, snapshot_performance
    from trading.events.replay import read_window
    from trading.marketdata.services import symbol_rules
    from trading.models import LearningRecord, PerformanceSnapshot, Position, RiskLimits, Signal

    RiskLimits.objects.update_or_create(symbol="", defaults={"max_orders_per_minute": 1000})
    rules = symbol_rules()
    quantities = {
        symbol: rules[symbol].round_quantity(ROUND_TRIP_NOTIONAL / bar.close, market=True)
        for symbol, bar in market.items()
    }
    rewind_group(redis_client, "analytics")
    since = last_stream_id(redis_client)
    ids: list[str] = []

    def trade() -> None:
        """A round: a position opened and closed in each symbol. Settled before the next, so
        that two rounds' orders in one symbol do not interleave into one position."""
        ids.extend(open_and_close_one_each(quantities))
        wait_for(lambda: not undecided(Signal.objects.all()), 30, "exec-risk to settle a round")

    def closed_positions():
        return Position.objects.filter(status=Position.Status.CLOSED)

    trade()
    trade()
    wait_for(lambda: LearningRecord.objects.exists(), 20, "analytics to record a closed position")
    crash_mid_drain(
        service_workers["analytics"],
        redis_client,
        "analytics",
        drain_events,
        trade,
        "position.closed",
    )
    trade()  # exec-risk goes on closing positions while analytics is down
    trade()
    (service_workers["analytics"],) = start_workers(
        [(ANALYTICS_NODE, "analytics")], process_env, concurrency=2
    )
    trade()

    signals = Signal.objects.filter(pk__in=ids)
    pairs = len(ids) // 2
    assert signals.filter(status=Signal.Status.FILLED).count() == len(ids)
    assert closed_positions().count() == pairs  # each pair opened one position and closed it
    assert not Position.objects.filter(status=Position.Status.OPEN).exists()

    def recorded() -> bool:
        return LearningRecord.objects.count() == pairs and not pending_entries(
            redis_client, "analytics"
        )

    wait_for(
        beating(recorded, drain_events), recovery_seconds(), "a learning record a position", 0.5
    )
    per_position = Counter(LearningRecord.objects.values_list("position_id", flat=True))
    assert set(per_position) == set(closed_positions().values_list("pk", flat=True))
    announced = Counter(
        event.payload["position_id"]
        for _, event in read_window(types=["learning.recorded"], after_id=since, limit=1000)
    )
    assert announced == per_position  # announced once each, as recorded
    for record in LearningRecord.objects.select_related("position", "signal"):
        assert record.signal is not None
        assert record.signal.correlation_id == record.position.correlation_id
        assert record.net_pnl == record.position.net_realized_pnl
    check_the_book(ids)

    # The restarted worker does analytics' scheduled work too.
    snapshot = PerformanceSnapshot.objects.get(pk=snapshot_performance.delay().get(timeout=20))
    assert snapshot.closed_trades == pairs
    assert snapshot.open_positions == 0
    assert client.get("/services/analytics/ready").status_code == 200
