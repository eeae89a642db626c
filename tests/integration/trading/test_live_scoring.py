"""Every ai signal judged at its horizon, traded or denied: score rows, figures, metrics, health."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import SYMBOLS
from tests.support.processes import wait_for
from trading.ai.features import WARMUP_BARS
from trading.ai.live import forget_recent_figures, live_figures, score_due_signals
from trading.ai.scoring import score_signal, summarize
from trading.events.consumer import ensure_group
from trading.events.envelope import new_event
from trading.marketdata.barstore import store_bars
from trading.marketdata.feed import FeedPublisher
from trading.marketdata.klines import load_bundled_bars
from trading.marketdata.prices import record_bars
from trading.models import Signal, SignalScore
from trading.store import redis_client, rkey

pytestmark = pytest.mark.django_db(transaction=True)

FIRST = WARMUP_BARS + 20  # the first bar with a signal in these tests


def warm_history(upto: int) -> None:
    """Bars 0 .. upto-1 of every symbol as recent history, as the feed's start records them."""
    client = redis_client()
    client.delete(rkey("prices"), *(rkey("bars", s) for s in SYMBOLS))
    for index in range(upto):
        record_bars([load_bundled_bars(s)[index] for s in SYMBOLS])


def step(index: int):
    return [load_bundled_bars(s)[index] for s in SYMBOLS]


def ai_samples(client) -> dict[tuple[str, tuple], float]:
    text = client.get("/services/ai/metrics").content.decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_signals_are_judged_once_the_bar_at_their_horizon_arrives_denied_ones_too(
    client, trained_model, service_workers
):
    horizon = trained_model.horizon_bars
    warm_history(FIRST)
    ensure_group(redis_client(), "ai", start="$")
    publisher = FeedPublisher("replay", wait=threading.Event().wait)
    publisher.publish(step(FIRST))
    wait_for(lambda: SignalScore.objects.count() == 3, 30, "the first three signals' score rows")
    first = {row.symbol: row for row in SignalScore.objects.all()}
    assert all(row.scored_at is None for row in first.values())
    for index in range(FIRST + 1, FIRST + horizon + 1):
        publisher.publish(step(index))

    def judged():
        rows = SignalScore.objects.filter(pk__in=[r.pk for r in first.values()])
        return rows.filter(scored_at__isnull=False).count() == 3

    wait_for(judged, 60, "the first three signals judged at their horizon")
    for symbol, row in first.items():
        row.refresh_from_db()
        bars = load_bundled_bars(symbol)
        entry, exit_ = bars[FIRST].close, bars[FIRST + horizon].close
        assert row.entry_price == entry and row.exit_price == exit_
        assert row.due_close_time == bars[FIRST + horizon].close_time
        expected = score_signal(
            row.side, row.probability_up, entry, exit_,
            fee_rate=settings.PAPER_TAKER_FEE_RATE, slippage_bps=settings.PAPER_SLIPPAGE_BPS,
        )  # fmt: skip
        assert (row.up, row.hit) == (expected.up, expected.hit)
        assert row.forward_return == pytest.approx(expected.forward_return)
        assert row.brier == pytest.approx(expected.brier)
        # A confidence below the 0.7 minimum is denied, and judged all the same.
        signal = Signal.objects.get(pk=row.signal_id)
        if signal.confidence < Decimal("0.7"):
            wait_for(lambda s=signal: Signal.objects.get(pk=s.pk).status == "denied", 30,
                     "exec-risk's denial")  # fmt: skip

    # The later signals wait for their own horizon.
    assert SignalScore.objects.filter(scored_at__isnull=True).exists()

    version = trained_model.version
    forget_recent_figures()  # read within a few seconds of an earlier test's scrape
    samples = ai_samples(client)
    label = (("model_version", version), ("role", "champion"))
    assert samples[("ai_service_live_scored_signals_total", label)] >= 3
    figures = live_figures([version])[version]
    assert samples[("ai_service_live_hit_rate", label)] == pytest.approx(figures.hit_rate)
    assert samples[("ai_service_live_brier_score", label)] == pytest.approx(figures.brier)
    bucket = figures.buckets[0]
    bucket_label = (("bucket", bucket.label), ("model_version", version), ("role", "champion"))
    assert samples[("ai_service_reliability_signals", bucket_label)] == bucket.count
    assert samples[("ai_service_reliability_observed_rate", bucket_label)] == pytest.approx(
        bucket.observed_rate
    )

    health = client.get("/services/ai/health").json()
    live = health["checks"]["model"]["live"][version]
    assert live["serving"] is True and live["role"] == "champion"
    assert live["scored_signals"] == figures.scored
    assert live["train_end"] == trained_model.window_end.isoformat()


def test_the_database_figures_agree_with_the_reference_arithmetic(trained_model):
    from trading.ai.services import generate_signal

    horizon = trained_model.horizon_bars
    warm_history(FIRST)
    for index in range(FIRST, FIRST + 8):
        record_bars(step(index))
        for bar in step(index):
            assert generate_signal(new_event("market.bar", bar.to_payload(), service="feed"))
    later = [bar for index in range(FIRST + 8, FIRST + 8 + horizon) for bar in step(index)]
    store_bars(later, "replay")
    for bar in later:
        score_due_signals(bar)
    rows = list(SignalScore.objects.filter(hit__isnull=False))
    assert len(rows) == 24
    reference = summarize(
        (
            row.confidence,
            score_signal(
                row.side,
                row.probability_up,
                row.entry_price,
                row.exit_price,
                fee_rate=settings.PAPER_TAKER_FEE_RATE,
                slippage_bps=settings.PAPER_SLIPPAGE_BPS,
            ),
        )
        for row in rows
    )
    figures = live_figures()[trained_model.version]
    assert figures.scored == reference.scored == 24
    assert figures.hit_rate == pytest.approx(reference.hit_rate)
    assert figures.brier == pytest.approx(reference.brier)
    assert figures.log_loss == pytest.approx(reference.log_loss)
    assert figures.mean_forward_return == pytest.approx(reference.mean_forward_return)
    assert [(b.bucket, b.count) for b in figures.buckets] == [
        (b.bucket, b.count) for b in reference.buckets
    ]
    for ours, theirs in zip(figures.buckets, reference.buckets, strict=True):
        assert ours.mean_confidence == pytest.approx(theirs.mean_confidence)
        assert ours.observed_rate == pytest.approx(theirs.observed_rate)


def test_a_signal_whose_horizon_bar_never_came_is_left_out_of_the_figures(trained_model):
    from trading.ai.services import generate_signal

    horizon = trained_model.horizon_bars
    warm_history(FIRST + 1)
    bar = load_bundled_bars("BTCUSDT")[FIRST]
    signal = generate_signal(new_event("market.bar", bar.to_payload(), service="feed"))
    # The bar at the horizon is missing: the next one the platform sees is later.
    after_gap = load_bundled_bars("BTCUSDT")[FIRST + horizon + 5]
    store_bars([after_gap], "replay")
    assert score_due_signals(after_gap) == 0
    row = SignalScore.objects.get(signal=signal)
    assert row.scored_at is not None and row.hit is None
    assert live_figures()[trained_model.version].scored == 0
    # Judged once: a later bar does not judge it again.
    assert score_due_signals(load_bundled_bars("BTCUSDT")[FIRST + horizon + 6]) == 0


def test_a_batch_of_bars_gets_its_signals_before_the_signals_they_close_are_judged(
    trained_model,
):
    from trading.ai.consumers import drain_bars
    from trading.events.log import publish_many
    from trading.marketdata.services import bar_events

    horizon = trained_model.horizon_bars
    warm_history(FIRST)
    ensure_group(redis_client(), "ai", start="$")

    def drain_step(index: int) -> None:
        # Each step as one batch of the ai group, drained here (no worker is told of it).
        bars = step(index)
        record_bars(bars)
        store_bars(bars, "replay")
        publish_many(bar_events(bars))
        assert drain_bars()["handled"] == len(SYMBOLS)

    for index in range(FIRST, FIRST + horizon):
        drain_step(index)
    first = list(SignalScore.objects.filter(bar_close_time=step(FIRST)[0].close_time))
    assert len(first) == 3 and all(row.scored_at is None for row in first)

    drain_step(FIRST + horizon)
    assert Signal.objects.count() == (horizon + 1) * len(SYMBOLS)  # one per bar
    newest = Signal.objects.order_by("-created_at").first()
    for row in first:
        row.refresh_from_db()
        assert row.hit is not None
        assert row.exit_price == load_bundled_bars(row.symbol)[FIRST + horizon].close
        # The bar's batch made its three signals first, then judged.
        assert row.scored_at >= newest.created_at
    assert SignalScore.objects.filter(scored_at__isnull=False).count() == 3
