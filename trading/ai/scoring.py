"""Judging a signal at its horizon: pure arithmetic on values, no database.

A signal made on the bar closing at t with the model's p_up is judged on the close of the bar at
t + horizon, the label the model was trained on (``trading.ai.model.direction_labels``): "up" when
that close is above the signal bar's close, "not up" otherwise. From that:

- hit: the side was right (BUY and up, or SELL and not up);
- Brier score: (p_up - up)^2, the squared error of the probability the model gave;
- log loss: -ln(probability given to what happened), with p clipped to [1e-15, 1 - 1e-15];
- forward return: what trading the side at the signal bar's close and closing at the horizon's
  close would have returned on its notional after the paper exchange's taker fee on both legs and
  its slippage against each fill (``PAPER_TAKER_FEE_RATE``, ``PAPER_SLIPPAGE_BPS``);
- confidence bucket: ten buckets of width 0.05 spanning a confidence's range [0.5, 1], bucket 0
  for [0.50, 0.55), bucket 9 for [0.95, 1.00]. The reliability curve sets each bucket's mean
  confidence beside its observed hit rate: a calibrated model's points lie on the diagonal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

BUCKETS = 10
BUCKET_WIDTH = 0.05
_EPSILON = 1e-15
_BPS = Decimal("10000")


def confidence_bucket(confidence: float) -> int:
    """The bucket of a confidence in [0.5, 1]; raises ValueError outside that range."""
    if not 0.5 <= confidence <= 1.0:
        raise ValueError(f"a confidence lies in [0.5, 1], got {confidence!r}")
    # The tiny nudge keeps 0.55 (stored as 0.55000000000000004 or 0.5499999999999999) in bucket 1.
    return min(BUCKETS - 1, int((confidence - 0.5) / BUCKET_WIDTH + 1e-9))


def bucket_label(bucket: int) -> str:
    """ "0.50-0.55" for bucket 0."""
    low = 0.5 + bucket * BUCKET_WIDTH
    return f"{low:.2f}-{low + BUCKET_WIDTH:.2f}"


def brier_score(p_up: float, up: bool) -> float:
    return (p_up - float(up)) ** 2


def log_loss(p_up: float, up: bool) -> float:
    p = min(max(p_up, _EPSILON), 1.0 - _EPSILON)
    return -math.log(p if up else 1.0 - p)


def forward_return(
    side: str, entry: Decimal, exit: Decimal, *, fee_rate: Decimal, slippage_bps: Decimal
) -> Decimal:
    """The net return on the notional of trading ``side`` at ``entry`` and closing at ``exit``.

    Each fill is ``slippage_bps`` worse than the price (a buy above it, a sell below) and pays
    ``fee_rate`` of its notional. A BUY of notional 1 buys 1 / (entry (1 + s)) and sells it at
    exit (1 - s); a SELL sells notional 1 at entry (1 - s) and buys back at exit (1 + s).
    """
    if entry <= 0 or exit <= 0:
        raise ValueError(f"prices must be positive, got entry {entry} and exit {exit}")
    slip = slippage_bps / _BPS
    one = Decimal(1)
    if side == "BUY":
        proceeds = exit * (one - slip) / (entry * (one + slip))
        return proceeds * (one - fee_rate) - one - fee_rate
    if side == "SELL":
        cost = exit * (one + slip) / (entry * (one - slip))
        return one - fee_rate - cost * (one + fee_rate)
    raise ValueError(f"side must be BUY or SELL, got {side!r}")


@dataclass(frozen=True)
class Outcome:
    """A signal's score at its horizon."""

    up: bool
    hit: bool
    brier: float
    log_loss: float
    forward_return: float


def score_signal(
    side: str,
    p_up: float,
    entry: Decimal,
    exit: Decimal,
    *,
    fee_rate: Decimal,
    slippage_bps: Decimal,
) -> Outcome:
    """The outcome of a signal made at ``entry`` (its bar's close) judged at ``exit`` (the close
    ``horizon`` bars later)."""
    up = exit > entry
    return Outcome(
        up=up,
        hit=up if side == "BUY" else not up,
        brier=brier_score(p_up, up),
        log_loss=log_loss(p_up, up),
        forward_return=float(
            forward_return(side, entry, exit, fee_rate=fee_rate, slippage_bps=slippage_bps)
        ),
    )


@dataclass(frozen=True)
class BucketFigures:
    """One point of the reliability curve, with the bucket's mean net forward return."""

    bucket: int
    count: int
    mean_confidence: float
    observed_rate: float
    mean_forward_return: float

    @property
    def label(self) -> str:
        return bucket_label(self.bucket)


@dataclass(frozen=True)
class LiveFigures:
    """A model version's scored signals summed up; ``pending`` have not reached their horizon."""

    scored: int
    pending: int
    hit_rate: float | None
    brier: float | None
    log_loss: float | None
    mean_forward_return: float | None
    buckets: tuple[BucketFigures, ...]


def summarize(outcomes: Iterable[tuple[float, Outcome]], pending: int = 0) -> LiveFigures:
    """Figures of (confidence, outcome) pairs, computed in Python: the reference that the
    database's aggregation (``trading.ai.live.live_figures``) is tested against."""
    pairs = list(outcomes)
    by_bucket: dict[int, list[tuple[float, Outcome]]] = {}
    for confidence, outcome in pairs:
        by_bucket.setdefault(confidence_bucket(confidence), []).append((confidence, outcome))
    n = len(pairs)

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    return LiveFigures(
        scored=n,
        pending=pending,
        hit_rate=mean([float(o.hit) for _, o in pairs]),
        brier=mean([o.brier for _, o in pairs]),
        log_loss=mean([o.log_loss for _, o in pairs]),
        mean_forward_return=mean([o.forward_return for _, o in pairs]),
        buckets=tuple(
            BucketFigures(
                bucket=bucket,
                count=len(rows),
                mean_confidence=sum(c for c, _ in rows) / len(rows),
                observed_rate=sum(float(o.hit) for _, o in rows) / len(rows),
                mean_forward_return=sum(o.forward_return for _, o in rows) / len(rows),
            )
            for bucket, rows in sorted(by_bucket.items())
        ),
    )
