"""Replay as simulated live time: the first model learns only from the days before the replay's
start, a retraining only from bars already played and only when there are new ones, and a replay
that starts over starts again from the first model."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from tests.conftest import SYMBOLS
from trading.ai.services import NothingNewToLearn, train_model
from trading.ai.trainlog import last_training
from trading.marketdata.barstore import (
    replay_start,
    restart_simulated_time,
    store_bars,
    stored_bars,
)
from trading.marketdata.klines import load_bundled_bars
from trading.marketdata.replay import ReplayConfig, replay_bars
from trading.models import FeedPosition, MarketBar, ModelVersion

pytestmark = pytest.mark.django_db(transaction=True)

TRAIN_DAYS = 4  # the whole seed: enough for the walk-forward folds, quick to fit


@pytest.fixture
def short_seed(settings):
    """A replay that starts four days into the bundled history."""
    settings.REPLAY_START_DAYS = 4
    return replay_start()


def played(start: int, stop: int) -> list:
    return [load_bundled_bars(s)[i] for i in range(start, stop) for s in SYMBOLS]


def test_the_first_model_learns_only_from_the_days_before_the_replays_first_bar(
    short_seed, redis_server
):
    first = train_model(days=TRAIN_DAYS)
    first_played = load_bundled_bars("BTCUSDT")[short_seed]
    assert first.window_end == load_bundled_bars("BTCUSDT")[short_seed - 1].close_time
    assert first.window_end < first_played.open_time
    # The feed then plays from that bar on.
    out = StringIO()
    call_command("run_feed", "--bar-seconds", "0", "--max-steps", "2", stdout=out)
    assert f"at step {short_seed}" in out.getvalue()
    position = FeedPosition.objects.get(source="replay", symbol="BTCUSDT")
    assert position.close_time == load_bundled_bars("BTCUSDT")[short_seed + 1].close_time
    assert position.close_time > first.window_end
    assert stored_bars("BTCUSDT")[-1].close_time == position.close_time


def test_a_retraining_without_new_bars_makes_no_version_and_one_after_new_bars_does(
    short_seed, redis_server
):
    first = train_model(days=TRAIN_DAYS)
    with pytest.raises(NothingNewToLearn, match="no new bars since"):
        train_model(trigger="drift", days=TRAIN_DAYS)
    assert list(ModelVersion.objects.values_list("version", flat=True)) == [first.version]
    assert last_training()["version"] is None
    assert "no new bars" in last_training()["detail"]

    store_bars(played(short_seed, short_seed + 24), "replay")
    second = train_model(trigger="drift", days=TRAIN_DAYS)
    assert second.version != first.version
    # It learnt up to the latest played bar and no further.
    assert second.window_end == load_bundled_bars("BTCUSDT")[short_seed + 23].close_time
    assert last_training()["version"] == second.version
    # A challenger: the first model serves until a promotion.
    assert ModelVersion.objects.challengers().first() == second
    assert ModelVersion.objects.serving().first() == first


def test_the_retrain_task_says_when_there_is_nothing_new(short_seed, redis_server):
    from trading.ai.tasks import retrain_model

    train_model(days=TRAIN_DAYS)
    assert "no new bars since" in retrain_model.run("schedule")
    assert ModelVersion.objects.count() == 1


def test_a_replay_that_starts_over_serves_the_first_model_again_on_a_store_without_the_future(
    short_seed, redis_server
):
    first = train_model(days=TRAIN_DAYS)
    store_bars(played(short_seed, short_seed + 24), "replay")
    later = train_model(trigger="schedule", days=TRAIN_DAYS)
    assert later.window_end > first.window_end

    config = ReplayConfig(SYMBOLS, bar_seconds=0, at_end="loop", start_index=short_seed,
                          pass_start=short_seed)  # fmt: skip
    run = replay_bars(config, clock=lambda: 0.0, sleep=lambda _: None)
    seed = [bar for step in run.seed_steps(1) for bar in step]
    assert restart_simulated_time(SYMBOLS, seed) == 1

    assert list(ModelVersion.objects.serving().values_list("version", flat=True)) == [first.version]
    later.refresh_from_db()
    assert later.retired_at is not None
    # The store holds the next pass's seed and nothing it will play.
    assert MarketBar.objects.filter(origin="replay").count() == 0
    btc = stored_bars("BTCUSDT")
    assert len(btc) == short_seed
    assert btc[-1].close_time == load_bundled_bars("BTCUSDT")[short_seed - 1].close_time + run.span
    assert btc[-1].close == load_bundled_bars("BTCUSDT")[short_seed - 1].close


def test_the_feed_starts_a_looping_replay_over_from_the_seed_and_the_first_model(
    settings, redis_server
):
    settings.REPLAY_START_DAYS = 29.9  # 29 steps to play before the loop
    start = replay_start()
    first = train_model(days=TRAIN_DAYS)
    out = StringIO()
    call_command("run_feed", "--bar-seconds", "0", "--at-end", "loop", "--max-steps", "33",
                 "--history", "20", stdout=out)  # fmt: skip
    assert "replay pass 2 starts over from the seed" in out.getvalue()
    btc = load_bundled_bars("BTCUSDT")
    span = btc[-1].close_time - btc[0].open_time + timedelta(milliseconds=1)
    # The last of the 33 steps was the fourth of the second pass: the same bars as the first
    # pass began with, 30 days on.
    position = FeedPosition.objects.get(source="replay", symbol="BTCUSDT")
    assert position.close_time == btc[start + 3].close_time + span
    played = MarketBar.objects.filter(symbol="BTCUSDT", origin="replay").order_by("open_time")
    assert [bar.close_time for bar in played] == [
        btc[i].close_time + span for i in range(start, start + 4)
    ]
    seed = stored_bars("BTCUSDT")[:start]
    assert seed[0].open_time == btc[0].open_time + span
    assert list(ModelVersion.objects.serving()) == [first]
