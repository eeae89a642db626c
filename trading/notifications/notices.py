"""Pure logic: which events tell operators what, which channels want them, and how one channel's
waiting notices become one message. Values in, decisions out; no ORM, Redis or HTTP."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from trading.notifications.kinds import NOUNS, Kind, Severity


@dataclass(frozen=True)
class Notice:
    """One thing to tell. ``reason`` is what a grouped message counts (a denial's reason code)."""

    kind: Kind
    severity: Severity
    title: str
    body: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Message:
    kind: str  # the notices' kind, or "grouped" when they are of several kinds
    title: str
    body: str
    notices: int


# Event types that no producer publishes yet; their notices are ready for when one does.
LIQUIDATED = "position.liquidated"
PARITY_MISMATCH = "backtest.parity_mismatch"

# Automatic state changes name their limit as the actor ("system:DAILY_LOSS_LIMIT").
SYSTEM_ACTOR = "system:"


def notice_for_event(event_type: str, payload: Mapping) -> Notice | None:
    """The notice an event of the log makes, or None when operators need not hear of it."""
    match event_type:
        case "risk.state_changed":
            actor = str(payload.get("actor", ""))
            change = f"{payload.get('from')} -> {payload.get('to')}"
            reason = str(payload.get("reason", ""))
            flatten = " (flattening every position)" if payload.get("flatten") else ""
            severity = Severity.CRITICAL if payload.get("to") == "HALTED" else Severity.WARNING
            if actor.startswith(SYSTEM_ACTOR):
                limit = actor.removeprefix(SYSTEM_ACTOR)
                return Notice(
                    Kind.RISK_LIMIT, severity, f"{limit}: trading {change}", reason, limit
                )
            if payload.get("to") == "ACTIVE":
                severity = Severity.INFO
            title = f"Trading {change} by {actor or 'unknown'}{flatten}"
            return Notice(Kind.TRADING_STATE, severity, title, f"Reason: {reason}", actor)
        case "order.denied":
            reason = str(payload.get("reason", "UNKNOWN"))
            symbol, side = payload.get("symbol", "?"), payload.get("side", "")
            detail = payload.get("detail") or ""
            title = f"Order denied: {side} {symbol} ({reason})".replace("  ", " ")
            return Notice(Kind.DENIALS, Severity.WARNING, title, str(detail), reason)
        case "selftest.finished":
            if payload.get("status") != "failed":
                return None
            title = f"System checks failed: {payload.get('suite')} run {payload.get('run_id')}"
            body = (
                f"{payload.get('failed', 0)} failed, {payload.get('passed', 0)} passed, "
                f"{payload.get('skipped', 0)} skipped"
            )
            return Notice(Kind.SELFTEST_FAILED, Severity.CRITICAL, title, body)
        case "service.degraded":
            service = str(payload.get("service", "?"))
            problems = "; ".join(str(p) for p in payload.get("problems") or [])
            return Notice(
                Kind.SERVICE_DEGRADED, Severity.CRITICAL, f"{service} degraded", problems, service
            )
        case "service.recovered":
            service = str(payload.get("service", "?"))
            return Notice(
                Kind.SERVICE_RECOVERED, Severity.INFO, f"{service} recovered", "", service
            )
        case "model.promoted":
            # A trained version is a challenger: only a promotion changes what serves.
            version = payload.get("version", "?")
            title = f"Model {version} promoted by {payload.get('actor', '?')}"
            body = _reason(payload)
            if payload.get("previous"):
                body += f" (replacing {payload['previous']})"
            return Notice(Kind.MODEL_PROMOTED, Severity.INFO, title, body)
        case "model.rolled_back":
            title = (
                f"Model rolled back from {payload.get('from_version', '?')} to "
                f"{payload.get('version', '?')} by {payload.get('actor', '?')}"
            )
            return Notice(Kind.MODEL_ROLLED_BACK, Severity.WARNING, title, _reason(payload))
        case "position.liquidated":
            title = f"Liquidated: {payload.get('symbol', '?')}"
            return Notice(Kind.LIQUIDATION, Severity.CRITICAL, title, _reason(payload))
        case "backtest.parity_mismatch":
            title = f"Backtest parity mismatch: {payload.get('strategy', '?')}"
            return Notice(Kind.PARITY_MISMATCH, Severity.WARNING, title, _reason(payload))
    return None


def _reason(payload: Mapping) -> str:
    return str(payload.get("reason") or payload.get("detail") or "")


# The types notice_for_event reads, for the consumer group to ignore the rest cheaply.
EVENT_TYPES = frozenset(
    {
        "risk.state_changed", "order.denied", "selftest.finished", "service.degraded",
        "service.recovered", "model.promoted", "model.rolled_back", LIQUIDATED,
        PARITY_MISMATCH,
    }
)  # fmt: skip


def notices_for_alertmanager(payload: Mapping) -> list[Notice]:
    """One notice per alert of an Alertmanager webhook message (version 4): firing alerts at
    their ``severity`` label, resolved ones as info. Raises ValueError on a malformed message."""
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise ValueError("an Alertmanager message has a list of alerts")
    notices = []
    for alert in alerts:
        if not isinstance(alert, Mapping):
            raise ValueError("each alert is an object")
        labels = alert.get("labels") or {}
        annotations = alert.get("annotations") or {}
        if not isinstance(labels, Mapping) or not isinstance(annotations, Mapping):
            raise ValueError("an alert's labels and annotations are objects")
        name = str(labels.get("alertname", "alert"))
        status = str(alert.get("status") or payload.get("status") or "firing")
        resolved = status == "resolved"
        severity = Severity.INFO if resolved else Severity.parse(labels.get("severity"))
        summary = annotations.get("summary") or annotations.get("description") or ""
        where = ", ".join(
            f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("alertname", "severity")
        )
        title = f"[{status.upper()}] {name}" + (f": {summary}" if summary else "")
        body = "\n".join(
            part
            for part in (str(annotations.get("description") or ""), where and f"labels: {where}")
            if part
        )
        notices.append(Notice(Kind.ALERT, severity, title[:250], body, name))
    return notices


def channel_wants(kinds: Sequence[str], min_severity: str, notice: Notice) -> bool:
    """Whether a channel subscribed to ``kinds`` (empty: every kind) at ``min_severity`` is
    told of the notice."""
    if kinds and notice.kind.value not in kinds:
        return False
    return notice.severity.rank >= Severity.parse(min_severity).rank


def window_open(last_sent: datetime | None, now: datetime, window_seconds: float) -> bool:
    """Whether a channel that last sent at ``last_sent`` may send again at ``now``."""
    return last_sent is None or now - last_sent >= timedelta(seconds=window_seconds)


@dataclass(frozen=True)
class Waiting:
    """A notice as it waits for its channel: what ``compose`` needs."""

    kind: str
    severity: str
    title: str
    body: str
    reason: str


MAX_TITLES = 10


def compose(waiting: Sequence[Waiting]) -> Message:
    """One message for everything a channel has waiting, oldest first: a single notice as it is,
    several as a summary counting them by kind and, within a kind, by reason."""
    if not waiting:
        raise ValueError("nothing to compose")
    if len(waiting) == 1:
        only = waiting[0]
        return Message(only.kind, only.title, only.body or only.title, 1)
    by_kind = Counter(w.kind for w in waiting)
    worst = max((Severity.parse(w.severity) for w in waiting), key=lambda s: s.rank)
    kind = next(iter(by_kind)) if len(by_kind) == 1 else "grouped"
    if len(by_kind) == 1:
        title = f"{len(waiting)} {_kind_label(kind)} ({worst})"
    else:
        title = f"{len(waiting)} notifications ({worst}): " + ", ".join(
            f"{count} {_kind_label(k)}" for k, count in by_kind.items()
        )
    lines: list[str] = []
    for k in by_kind:
        of_kind = [w for w in waiting if w.kind == k]
        lines.append(f"{_kind_label(k)}: {len(of_kind)}")
        reasons = Counter(w.reason for w in of_kind if w.reason)
        if reasons and k == Kind.DENIALS:
            lines.extend(f"  {reason}: {count}" for reason, count in reasons.most_common())
        else:
            lines.extend(f"  {w.title}" for w in of_kind[:MAX_TITLES])
            if len(of_kind) > MAX_TITLES:
                lines.append(f"  ... and {len(of_kind) - MAX_TITLES} more")
    return Message(kind, title[:250], "\n".join(lines), len(waiting))


def _kind_label(kind: str) -> str:
    try:
        return NOUNS[Kind(kind)]
    except ValueError:
        return kind


def select(notices: Iterable[Notice], channels: Iterable[tuple[int, Sequence[str], str]]):
    """(channel id, notice) for each channel that wants each notice."""
    channels = list(channels)
    for notice in notices:
        for channel_id, kinds, min_severity in channels:
            if channel_wants(kinds, min_severity, notice):
                yield channel_id, notice
