"""Champion and challenger: which model version serves, and how another one takes its place.

The champion is the most recently promoted version neither rejected nor retired
(``ModelVersion.objects.serving().first()``); it alone makes signals. The first version a
platform trains is promoted at once (there is nothing to compare it with); every later one is a
challenger: on each bar the champion signals on, the challenger's prediction on the same features
is stored as a second score row of that signal (no signal is sent for it), judged at the same
horizon. Once the trial rule is met (``trading.ai.promotion``), the test promotes it or keeps it
out, with the figures of both kept in a ``ModelDecision``. Operators may also promote a version,
or roll the champion back to the one before, from the dashboard, the API or the admin; each
decision is audited and publishes ``model.promoted`` or ``model.rolled_back``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from trading.ai import live
from trading.ai.promotion import (
    TEST_STATEMENT,
    Pair,
    TrialRule,
    promotion_test,
    trial_progress,
)
from trading.events import outbox
from trading.events.envelope import new_event
from trading.events.types import EventType
from trading.models import ModelDecision, ModelVersion, SignalScore

logger = logging.getLogger(__name__)

SYSTEM = "system"


class DecisionRefused(Exception):
    """An operator's promotion or rollback that cannot be done as asked (the reason says why)."""


def champion() -> ModelVersion | None:
    return ModelVersion.objects.serving().defer("artifact", "metadata").first()


def challenger() -> ModelVersion | None:
    """The version on trial: the newest never promoted, kept out or retired."""
    return ModelVersion.objects.challengers().defer("artifact", "metadata").first()


def trial_rule() -> TrialRule:
    return TrialRule(min_scored=settings.CHALLENGER_MIN_SCORED, min_hours=settings.CHALLENGER_HOURS)


def settle_new_version(model: ModelVersion) -> str:
    """What a newly stored version becomes: the champion when none serves, else the challenger
    (an older challenger still on trial is superseded by it). Returns its role."""
    now = timezone.now()
    if not ModelVersion.objects.serving().exclude(pk=model.pk).exists():
        ModelVersion.objects.filter(pk=model.pk).update(promoted_at=now, rejected_at=None)
        decision = _record(model.version, ModelDecision.Action.PROMOTED, SYSTEM,
                           "no version served", challenger_version=model.version)  # fmt: skip
        _publish_promoted(decision)
        return "champion"
    older = ModelVersion.objects.challengers().exclude(pk=model.pk)
    for version in older.values_list("version", flat=True):
        if ModelVersion.objects.challengers().filter(version=version).update(rejected_at=now):
            _record(
                version,
                ModelDecision.Action.SUPERSEDED,
                SYSTEM,
                f"superseded by {model.version} before its trial ended",
                challenger_version=version,
            )
    return "challenger"


# --- the trial --------------------------------------------------------------------------------


def paired_scores(challenger_version: str, since: datetime | None = None) -> list[Pair]:
    """The signals judged for both ``challenger_version`` and the version that made them."""
    rows = SignalScore.objects.filter(
        model_version=challenger_version, hit__isnull=False, signal__model_version__isnull=False
    )
    if since is not None:
        rows = rows.filter(bar_close_time__gte=since)
    own = {
        (row["signal_id"]): row
        for row in SignalScore.objects.filter(
            signal_id__in=rows.values("signal_id"),
            model_version=F("signal__model_version"),
            hit__isnull=False,
        ).values("signal_id", "brier", "hit")
    }
    pairs = []
    for row in rows.values("signal_id", "symbol", "bar_close_time", "brier", "hit"):
        theirs = own.get(row["signal_id"])
        if theirs is None:
            continue
        pairs.append(
            Pair(
                symbol=row["symbol"],
                bar_close_time=row["bar_close_time"],
                champion_brier=theirs["brier"],
                challenger_brier=row["brier"],
                champion_hit=theirs["hit"],
                challenger_hit=row["hit"],
            )
        )
    return pairs


def trial_report(candidate: ModelVersion) -> dict:
    """Where the challenger's trial stands: its progress and, with two bar times or more, the
    test on the pairs so far."""
    pairs = paired_scores(candidate.version)
    done, waiting = trial_progress(pairs, settings.SYMBOLS, trial_rule())
    report: dict = {
        "version": candidate.version,
        "rule": {**asdict(trial_rule()), "test": TEST_STATEMENT},
        "complete": done,
        "waiting_for": None if done else waiting,
        "pairs": len(pairs),
    }
    try:
        report["test"] = promotion_test(pairs, candidate.horizon_bars).as_json()
    except ValueError:
        report["test"] = None
    return report


def judge_challenger() -> ModelDecision | None:
    """Ends the challenger's trial when its rule is met: promotes it when the test says so,
    keeps it out otherwise. Returns the decision, or None while the trial goes on (or when
    another worker decided first)."""
    candidate = challenger()
    if candidate is None:
        return None
    pairs = paired_scores(candidate.version)
    done, _ = trial_progress(pairs, settings.SYMBOLS, trial_rule())
    if not done:
        return None
    result = promotion_test(pairs, candidate.horizon_bars)
    serving = champion()
    figures = _figures(
        {_name(serving): "champion", candidate.version: "challenger"}, pairs_tested=result.pairs
    )
    now = timezone.now()
    with transaction.atomic():
        trial = ModelVersion.objects.challengers().filter(pk=candidate.pk)
        ended, action, why = (
            ("promoted_at", ModelDecision.Action.PROMOTED, "the promotion test passed")
            if result.promote
            else ("rejected_at", ModelDecision.Action.KEPT_OUT, "the promotion test did not pass")
        )
        if not trial.update(**{ended: now}):
            return None
        decision = _record(
            candidate.version, action, SYSTEM, why, champion_version=_name(serving),
            challenger_version=candidate.version, figures=figures, test=result.as_json(),
        )  # fmt: skip
        if result.promote:
            _publish_promoted(decision)
    logger.info(
        "challenger %s %s: Brier difference %.5f [%.5f, %.5f] on %d pairs, hit rate %.4f vs %.4f",
        candidate.version, decision.action, result.brier_difference.mean,
        result.brier_difference.low, result.brier_difference.high, result.pairs,
        result.challenger_hit_rate, result.champion_hit_rate,
    )  # fmt: skip
    return decision


# --- operators' decisions ---------------------------------------------------------------------


def promote_version(version: str, *, actor: str, reason: str = "") -> ModelDecision:
    """Makes ``version`` the champion; the one serving before stays the rollback target.
    Raises ModelVersion.DoesNotExist, or DecisionRefused for a retired or serving version."""
    candidate = ModelVersion.objects.defer("artifact").get(version=version)
    serving = champion()
    if candidate.retired_at is not None:
        raise DecisionRefused(f"{version} is retired: it learnt from bars still to be played")
    if serving is not None and serving.pk == candidate.pk:
        raise DecisionRefused(f"{version} serves already")
    test = _test_json(candidate)
    figures = _figures({_name(serving): "champion", version: "promoted"})
    with transaction.atomic():
        updated = ModelVersion.objects.filter(pk=candidate.pk, retired_at__isnull=True).update(
            promoted_at=timezone.now(), rejected_at=None
        )
        if not updated:
            raise DecisionRefused(f"{version} was retired meanwhile")
        decision = _record(
            version, ModelDecision.Action.PROMOTED, actor, reason or "promoted by an operator",
            champion_version=_name(serving), challenger_version=version, figures=figures,
            test=test,
        )  # fmt: skip
        _publish_promoted(decision)
    return decision


def roll_back_version(version: str, *, actor: str, reason: str = "") -> ModelDecision:
    """Takes the champion ``version`` out of service; the version promoted before it serves
    again. Raises ModelVersion.DoesNotExist, or DecisionRefused when ``version`` is not the
    champion or no earlier version may serve."""
    current = ModelVersion.objects.defer("artifact").get(version=version)
    serving = champion()
    if serving is None or serving.pk != current.pk:
        raise DecisionRefused(f"{version} is not the serving version")
    previous = ModelVersion.objects.serving().exclude(pk=current.pk).first()
    if previous is None:
        raise DecisionRefused(f"no earlier version to roll {version} back to")
    figures = _figures({version: "rolled back", previous.version: "serves again"})
    now = timezone.now()
    with transaction.atomic():
        if not ModelVersion.objects.serving().filter(pk=current.pk).update(rejected_at=now):
            raise DecisionRefused(f"{version} stopped serving meanwhile")
        ModelVersion.objects.filter(pk=previous.pk).update(promoted_at=now)
        decision = _record(
            version, ModelDecision.Action.ROLLED_BACK, actor,
            reason or "rolled back by an operator", champion_version=previous.version,
            challenger_version=version, figures=figures,
        )  # fmt: skip
        payload = {
            "version": previous.version,
            "from_version": version,
            "actor": actor,
            "reason": decision.reason,
            "figures": figures,
        }
        outbox.record([new_event(EventType.MODEL_ROLLED_BACK, payload, service="ai")])
    return decision


# --- shared -------------------------------------------------------------------------------------


def _name(model: ModelVersion | None) -> str:
    return "" if model is None else model.version


def _test_json(candidate: ModelVersion) -> dict:
    try:
        return promotion_test(paired_scores(candidate.version), candidate.horizon_bars).as_json()
    except ValueError as too_few:
        return {"test": TEST_STATEMENT, "result": f"not computed: {too_few}"}


def _figures(roles: dict[str, str], *, pairs_tested: int | None = None) -> dict:
    """Live figures of each version (``{version: role}``) as they stand."""
    roles = {version: role for version, role in roles.items() if version}
    figures = live.live_figures(list(roles))
    data: dict = {
        version: {"role": role, **live.figures_json(figures[version])}
        for version, role in roles.items()
    }
    if pairs_tested is not None:
        data["pairs_tested"] = pairs_tested
    return data


def _record(
    version: str,
    action: str,
    actor: str,
    reason: str,
    *,
    champion_version: str = "",
    challenger_version: str = "",
    figures: dict | None = None,
    test: dict | None = None,
) -> ModelDecision:
    live.forget_recent_figures()
    return ModelDecision.objects.create(
        version=version,
        action=action,
        actor=actor,
        reason=reason,
        champion=champion_version,
        challenger=challenger_version,
        figures=figures or {},
        test=test or {},
    )


def _publish_promoted(decision: ModelDecision) -> None:
    payload = {
        "version": decision.version,
        "previous": decision.champion,
        "actor": decision.actor,
        "reason": decision.reason,
        "figures": decision.figures,
        "test": decision.test,
    }
    outbox.record([new_event(EventType.MODEL_PROMOTED, payload, service="ai")])


# --- what operators see -------------------------------------------------------------------------


def decision_json(decision: ModelDecision) -> dict:
    return {
        "version": decision.version,
        "action": decision.action,
        "actor": decision.actor,
        "at": decision.at.isoformat(),
        "reason": decision.reason,
        "champion": decision.champion,
        "challenger": decision.challenger,
        "figures": decision.figures,
        "test": decision.test,
    }


def version_json(model: ModelVersion, role: str) -> dict:
    figures = live.recent_live_figures([model.version])[model.version]
    return {
        "version": model.version,
        "role": role,
        "trigger": model.trigger,
        "trained_at": model.trained_at.isoformat(),
        "train_start": model.window_start.isoformat(),
        "train_end": model.window_end.isoformat(),
        "promoted_at": model.promoted_at.isoformat() if model.promoted_at else None,
        "oos_accuracy": round(model.accuracy, 4),
        "baseline_accuracy": round(model.baseline_accuracy, 4),
        "oos_brier": round(model.brier, 4),
        "live": live.figures_json(figures),
    }


def models_overview(decisions: int = 5) -> dict:
    """The champion, the challenger (with its trial), the rollback target and the last
    decisions: what the API, the dashboard and operators decide on."""
    serving = champion()
    candidate = challenger()
    previous = (
        ModelVersion.objects.serving().exclude(pk=serving.pk).defer("artifact", "metadata").first()
        if serving
        else None
    )
    return {
        "promotion_test": TEST_STATEMENT,
        "champion": version_json(serving, "champion") if serving else None,
        "challenger": (
            {**version_json(candidate, "challenger"), "trial": trial_report(candidate)}
            if candidate
            else None
        ),
        "previous": version_json(previous, "previous") if previous else None,
        "decisions": [decision_json(d) for d in ModelDecision.objects.all()[:decisions]],
    }
