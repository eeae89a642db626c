"""A new version is a challenger: shadow-scored beside the champion on the same live bars by the
real ai worker, then promoted or kept out by the stated test; operators promote and roll back
through the API, audited, and viewers may not."""

from __future__ import annotations

import threading
import time

import pytest
from rest_framework.test import APIClient

from tests.conftest import SYMBOLS, start_workers
from tests.support.oracle import labels_of, oracle_artifact
from tests.support.processes import wait_for
from trading.ai.champion import champion, paired_scores
from trading.ai.features import WARMUP_BARS
from trading.ai.promotion import promotion_test
from trading.ai.services import store_model
from trading.events.consumer import ensure_group
from trading.marketdata.feed import FeedPublisher
from trading.marketdata.klines import load_bundled_bars
from trading.marketdata.prices import record_bars
from trading.models import ModelDecision, ModelVersion, OutboxEvent, Signal, SignalScore
from trading.store import redis_client, rkey

pytestmark = pytest.mark.django_db(transaction=True)

FIRST = WARMUP_BARS + 20
MIN_SCORED = 4


@pytest.fixture
def trial_workers(process_env):
    env = {**process_env, "QT_CHALLENGER_MIN_SCORED": str(MIN_SCORED), "QT_CHALLENGER_HOURS": "0"}
    workers = start_workers([("ai@trial", "ai"), ("exec_risk@trial", "exec_risk")], env)
    yield workers
    for worker in workers:
        worker.stop()


def step(index: int):
    return [load_bundled_bars(s)[index] for s in SYMBOLS]


def steps_of_the_trial(horizon: int) -> range:
    """The steps a trial is played on: enough for MIN_SCORED signals per symbol to reach their
    horizon, a few more, and as many again for bars a busy worker handled too late to judge
    (the live feed would go on the same way)."""
    return range(FIRST, FIRST + 2 * MIN_SCORED + horizon + 3)


def decided_within(decided, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if decided():
            return True
        time.sleep(0.1)
    return False


def play_until_decided(challenger: str, horizon: int) -> ModelDecision:
    client = redis_client()
    client.delete(rkey("prices"), *(rkey("bars", s) for s in SYMBOLS))
    for index in range(FIRST):
        record_bars(step(index))
    ensure_group(client, "ai", start="$")
    publisher = FeedPublisher("replay", wait=threading.Event().wait)

    def decided():
        return ModelDecision.objects.filter(version=challenger).exclude(action="superseded").first()

    # Each step once the last one's signals are in: a bar handled a horizon late gets none.
    enough = MIN_SCORED + horizon + 3
    for count, index in enumerate(steps_of_the_trial(horizon), 1):
        publisher.publish(step(index))
        wait_for(lambda n=count: Signal.objects.count() >= n * len(SYMBOLS), 30,
                 f"the signals of step {index}")  # fmt: skip
        if count >= enough and decided_within(decided, 5):
            break
    return wait_for(decided, 120, f"the decision on {challenger}")


@pytest.mark.parametrize("wrong", [False, True], ids=["skilled", "always_wrong"])
def test_a_challenger_is_shadow_scored_on_live_bars_then_promoted_or_kept_out(
    wrong, trained_model, model_artifact, trial_workers
):
    horizon = trained_model.horizon_bars
    labels = labels_of(SYMBOLS, steps_of_the_trial(horizon), horizon)
    name = "always-wrong" if wrong else "skilled"
    challenger = store_model(oracle_artifact(model_artifact, name, labels, wrong=wrong), "test")
    assert champion() == trained_model  # a new version does not serve

    decision = play_until_decided(challenger.version, horizon)

    # Until the decision only the champion's signals were sent; the challenger's predictions
    # are score rows.
    before = Signal.objects.filter(created_at__lt=decision.at)
    assert before.exists() and not before.filter(model_version=challenger.version).exists()
    shadow = SignalScore.objects.filter(model_version=challenger.version)
    assert shadow.count() >= MIN_SCORED * len(SYMBOLS)
    for row in shadow.filter(hit__isnull=False)[:6]:
        own = SignalScore.objects.get(signal_id=row.signal_id, model_version=trained_model.version)
        assert (row.bar_close_time, row.due_close_time) == (own.bar_close_time, own.due_close_time)
        assert row.up == own.up and row.hit == (not wrong)

    test = decision.test
    assert test["pairs"] >= MIN_SCORED * len(SYMBOLS)
    # Bars less than a horizon apart share part of their label's window (at most n - 1 lags).
    assert test["brier_difference"]["lags"] == min(horizon - 1, test["bar_times"] - 1)
    assert decision.figures[challenger.version]["role"] == "challenger"
    assert decision.figures[trained_model.version]["role"] == "champion"
    assert decision.actor == "system" and decision.champion == trained_model.version
    # The decision is the stated test on the pairs it saw.
    pairs = paired_scores(challenger.version)
    first = sorted(pairs, key=lambda p: (p.bar_close_time, p.symbol))
    assert promotion_test(first[: test["pairs"]], horizon).promote == test["promote"]
    challenger.refresh_from_db()
    if wrong:
        assert decision.action == "kept_out" and test["promote"] is False
        assert test["brier_difference"]["low"] > 0 and test["challenger_hit_rate"] == 0.0
        assert challenger.status == "rejected" and champion() == trained_model
        assert not OutboxEvent.objects.filter(
            type="model.promoted", payload__version=challenger.version
        ).exists()
    else:
        assert decision.action == "promoted" and test["promote"] is True
        assert test["brier_difference"]["high"] < 0 and test["challenger_hit_rate"] == 1.0
        assert champion() == challenger
        promoted = OutboxEvent.objects.get(
            type="model.promoted", payload__version=challenger.version
        )
        assert promoted.payload["previous"] == trained_model.version


def test_operators_promote_and_roll_back_through_the_api_audited_and_viewers_may_not(
    trained_model, model_artifact, olivia, victor, client
):
    second = store_model(oracle_artifact(model_artifact, "second", {}, wrong=False), "test")
    viewer = APIClient()
    viewer.force_authenticate(victor)
    assert viewer.post(f"/api/v1/models/{second.version}/promote").status_code == 403
    assert viewer.get("/api/v1/models").status_code == 200
    assert (
        champion() == trained_model
        and not ModelDecision.objects.exclude(version=trained_model.version).exists()
    )

    operator = APIClient()
    operator.force_authenticate(olivia)
    answer = operator.post(f"/api/v1/models/{second.version}/promote", {"reason": "fresher data"},
                           format="json")  # fmt: skip
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["champion"]["version"] == second.version
    assert body["previous"]["version"] == trained_model.version
    decision = ModelDecision.objects.get(version=second.version, action="promoted")
    assert (decision.actor, decision.reason, decision.champion) == (
        "olivia",
        "fresher data",
        trained_model.version,
    )
    assert set(decision.figures) >= {second.version, trained_model.version}
    assert "promote when" in decision.test["test"]
    assert champion() == second
    assert operator.post(f"/api/v1/models/{second.version}/promote").status_code == 409

    # Rolling back names the serving version; another one is refused.
    assert operator.post(f"/api/v1/models/{trained_model.version}/rollback").status_code == 409
    assert viewer.post(f"/api/v1/models/{second.version}/rollback").status_code == 403
    answer = operator.post(f"/api/v1/models/{second.version}/rollback", {"reason": "worse live"},
                           format="json")  # fmt: skip
    assert answer.status_code == 200, answer.content
    assert champion() == trained_model
    second.refresh_from_db()
    assert second.status == "rejected"
    rolled = ModelDecision.objects.get(version=second.version, action="rolled_back")
    assert (rolled.actor, rolled.reason, rolled.champion) == (
        "olivia",
        "worse live",
        trained_model.version,
    )
    event = OutboxEvent.objects.get(type="model.rolled_back")
    assert event.payload["from_version"] == second.version
    assert event.payload["version"] == trained_model.version
    # Nothing left to roll back to.
    refused = operator.post(f"/api/v1/models/{trained_model.version}/rollback")
    assert refused.status_code == 409 and "no earlier version" in refused.json()["detail"]
    assert operator.post("/api/v1/models/m-nothing/promote").status_code == 404
    assert ModelVersion.objects.get(pk=second.pk).rejected_at is not None


def test_an_operator_promotes_and_rolls_back_from_the_admin_audited(
    trained_model, model_artifact, olivia, client
):
    second = store_model(oracle_artifact(model_artifact, "admin", {}, wrong=False), "test")
    client.force_login(olivia)
    url = "/admin/trading/modelversion/"
    answer = client.post(url, {"action": "promote_version", "_selected_action": [second.pk]})
    assert answer.status_code == 302
    assert champion() == second
    decision = ModelDecision.objects.get(version=second.version, action="promoted")
    assert (decision.actor, decision.reason) == ("olivia", "promoted in the admin")
    client.post(url, {"action": "roll_back_version", "_selected_action": [second.pk]})
    assert champion() == trained_model
    assert ModelDecision.objects.get(version=second.version, action="rolled_back").actor == "olivia"
