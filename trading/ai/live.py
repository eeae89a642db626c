"""The serving model's live record: every ai signal scored at its horizon, traded or denied.

A signal opens a score row (``open_scores``) holding what is needed to judge it: its bar's close,
its p_up and confidence, and the close time of the bar at the model's horizon. When a bar of its
symbol closes at or after that time (``score_due_signals``, on every bar ai reads, once the
signals of the bar's batch are committed), the row is judged against the stored bar closing
exactly then (``trading.ai.scoring``). A horizon bar the
platform never received (a gap in the data, a replay that started over) leaves the row void:
scored, with no outcome, and out of every figure.

Rows carry their model version, so every version's figures stand apart, and a version that does
not serve can be judged on the same bars by opening rows for its predictions too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Avg, Case, Count, FloatField, Sum, Value, When
from django.utils import timezone

from trading.ai.scoring import (
    BucketFigures,
    LiveFigures,
    confidence_bucket,
    score_signal,
)
from trading.marketdata.bars import Bar, interval_length
from trading.models import MarketBar, Signal, SignalScore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """A model version's prediction on the bar a signal was made on."""

    version: str
    horizon_bars: int
    side: str
    p_up: float
    confidence: float


def own_prediction(signal: Signal, horizon_bars: int) -> Prediction:
    """The prediction ``signal`` was made from, by its own model version."""
    return Prediction(
        version=signal.model_version,
        horizon_bars=horizon_bars,
        side=signal.side,
        p_up=float(signal.probability_up),
        confidence=float(signal.confidence),
    )


def open_scores(signal: Signal, bar: Bar, predictions: Sequence[Prediction]) -> list[SignalScore]:
    """The score rows of the predictions on the bar ``signal`` was made on, written in one
    statement: the signal's own, and a challenger's, judged on the same bar as it. ``signal``
    is new, so it has no rows yet; one version's second row would break the table's
    uniqueness (an IntegrityError)."""
    return SignalScore.objects.bulk_create(
        [
            SignalScore(
                signal=signal,
                model_version=prediction.version,
                symbol=signal.symbol,
                side=prediction.side,
                probability_up=prediction.p_up,
                confidence=prediction.confidence,
                bucket=confidence_bucket(prediction.confidence),
                bar_close_time=bar.close_time,
                due_close_time=bar.close_time
                + prediction.horizon_bars * interval_length(bar.interval),
                entry_price=bar.close,
            )
            for prediction in predictions
        ]
    )


def score_due_signals(bar: Bar, *, now: datetime | None = None) -> int:
    """Judges the open scores of ``bar``'s symbol whose horizon bar has closed by now; returns
    how many got an outcome. Idempotent: a row is judged once (a conditional update)."""
    pending = list(
        SignalScore.objects.filter(
            symbol=bar.symbol, scored_at__isnull=True, due_close_time__lte=bar.close_time
        )
    )
    if not pending:
        return 0
    now = now or timezone.now()
    due_times = {row.due_close_time for row in pending}
    exits = {bar.close_time: bar.close}
    exits.update(
        MarketBar.objects.filter(
            symbol=bar.symbol, interval=bar.interval, close_time__in=due_times
        ).values_list("close_time", "close")
    )
    scored = 0
    for row in pending:
        exit_price = exits.get(row.due_close_time)
        if exit_price is None:
            SignalScore.objects.filter(pk=row.pk, scored_at__isnull=True).update(scored_at=now)
            logger.info("signal %s left unscored: no bar closed at its horizon", row.signal_id)
            continue
        outcome = score_signal(
            row.side,
            row.probability_up,
            row.entry_price,
            exit_price,
            fee_rate=settings.PAPER_TAKER_FEE_RATE,
            slippage_bps=settings.PAPER_SLIPPAGE_BPS,
        )
        scored += SignalScore.objects.filter(pk=row.pk, scored_at__isnull=True).update(
            exit_price=exit_price,
            up=outcome.up,
            hit=outcome.hit,
            brier=outcome.brier,
            log_loss=outcome.log_loss,
            forward_return=outcome.forward_return,
            scored_at=now,
        )
    return scored


_HITS = Sum(Case(When(hit=True, then=Value(1.0)), default=Value(0.0), output_field=FloatField()))


def live_figures(versions: list[str] | None = None) -> dict[str, LiveFigures]:
    """Each model version's live figures (of ``versions``, or of every version with a score)."""
    rows = SignalScore.objects.all()
    if versions is not None:
        rows = rows.filter(model_version__in=versions)
    judged = rows.filter(hit__isnull=False)
    totals = {
        row["model_version"]: row
        for row in judged.values("model_version").annotate(
            n=Count("id"),
            hits=_HITS,
            brier=Avg("brier"),
            log_loss=Avg("log_loss"),
            forward=Avg("forward_return"),
        )
    }
    counts = rows.values("model_version").annotate(
        n=Count("id"),
        waiting=Sum(Case(When(scored_at__isnull=True, then=Value(1)), default=Value(0))),
    )
    pending = {row["model_version"]: row["waiting"] for row in counts}
    buckets: dict[str, list[BucketFigures]] = {}
    for row in (
        judged.values("model_version", "bucket")
        .annotate(n=Count("id"), conf=Avg("confidence"), hits=_HITS, forward=Avg("forward_return"))
        .order_by("model_version", "bucket")
    ):
        buckets.setdefault(row["model_version"], []).append(
            BucketFigures(
                bucket=row["bucket"],
                count=row["n"],
                mean_confidence=row["conf"],
                observed_rate=row["hits"] / row["n"],
                mean_forward_return=row["forward"],
            )
        )
    figures = {}
    for version in sorted(set(totals) | set(pending) | set(versions or ())):
        total = totals.get(version)
        n = total["n"] if total else 0
        figures[version] = LiveFigures(
            scored=n,
            pending=pending.get(version, 0),
            hit_rate=total["hits"] / n if n else None,
            brier=total["brier"] if n else None,
            log_loss=total["log_loss"] if n else None,
            mean_forward_return=total["forward"] if n else None,
            buckets=tuple(buckets.get(version, ())),
        )
    return figures


# What health, the dashboard and a scrape read: the figures aggregate every score row, so they are
# worked out at most once per this many seconds per process, and a burst of health requests pays
# for one aggregation, not twenty.
FIGURES_MAX_AGE = 5.0
_recent: dict[tuple[str, ...] | None, tuple[float, dict[str, LiveFigures]]] = {}


def recent_live_figures(versions: list[str] | None = None) -> dict[str, LiveFigures]:
    """``live_figures(versions)``, at most ``FIGURES_MAX_AGE`` seconds old."""
    key = None if versions is None else tuple(versions)
    cached = _recent.get(key)
    now = time.monotonic()
    if cached is not None and now - cached[0] < FIGURES_MAX_AGE:
        return cached[1]
    figures = live_figures(versions)
    if len(_recent) > 16:
        _recent.clear()
    _recent[key] = (now, figures)
    return figures


def forget_recent_figures() -> None:
    """Drops this process's recent figures: the next read aggregates afresh."""
    _recent.clear()


def figures_json(figures: LiveFigures) -> dict[str, object]:
    """The figures as health and the dashboard show them."""

    def rounded(value: float | None, places: int = 4) -> float | None:
        return None if value is None else round(value, places)

    return {
        "scored_signals": figures.scored,
        "pending_signals": figures.pending,
        "hit_rate": rounded(figures.hit_rate),
        "brier_score": rounded(figures.brier),
        "log_loss": rounded(figures.log_loss),
        "mean_forward_return": rounded(figures.mean_forward_return, 6),
        "reliability": [
            {
                "bucket": b.label,
                "count": b.count,
                "mean_confidence": rounded(b.mean_confidence),
                "observed_rate": rounded(b.observed_rate),
                "mean_forward_return": rounded(b.mean_forward_return, 6),
            }
            for b in figures.buckets
        ],
    }
