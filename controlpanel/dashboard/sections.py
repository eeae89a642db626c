"""The dashboard's sections (docs/dashboard-protocol.md), built from the ledger and Redis.

Each builder returns one section, complete; the consumer sends the ones that changed."""

from __future__ import annotations

import json
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable
from decimal import Decimal

from django.db.models import Q

from trading.ledger import services as ledger
from trading.marketdata.prices import latest_quotes, recent_bars
from trading.models import (
    EquitySnapshot,
    Fill,
    LearningRecord,
    MarketBar,
    ModelVersion,
    Order,
    Signal,
    TradingStateChange,
    TradingStateRecord,
)
from trading.observability.probes import queue_length, service_report
from trading.observability.services import SERVICES
from trading.risk import services as risk
from trading.selftest.runner import SANDBOX
from trading.store import redis_client, rkey

ZERO = Decimal("0")


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


def _str(value) -> str | None:
    return None if value is None else str(value)


def prices() -> dict:
    now = time.time()
    section = {}
    for symbol, quote in sorted(latest_quotes().items()):
        history = recent_bars(symbol, 2)
        change = None
        if len(history) == 2 and history[0].close:
            change = (history[1].close / history[0].close - 1) * 100
        section[symbol] = {
            "price": str(quote.price),
            "close_time": _iso(quote.bar.close_time),
            "age_seconds": round(quote.age(now), 1),
            "change_pct": None if change is None else f"{change:.3f}",
        }
    return section


def _marks() -> dict[str, Decimal]:
    return {symbol: quote.price for symbol, quote in latest_quotes().items()}


def pnl() -> dict:
    summary = ledger.portfolio_summary(risk.get_account(), _marks())
    keys = ("equity", "cash", "realized_pnl", "unrealized_pnl", "daily_pnl", "daily_trades",
            "total_exposure")  # fmt: skip
    return {key: summary[key] for key in keys}


def equity_curve() -> list[dict]:
    account = risk.get_account()
    points = [
        {"ts": _iso(s.ts), "equity": str(s.equity)}
        for s in reversed(EquitySnapshot.objects.filter(account=account).order_by("-ts")[:499])
    ]
    points.append({"ts": _iso_now(), "equity": str(ledger.account_equity(account, _marks()))})
    return points


def _iso_now() -> str:
    from django.utils import timezone

    return timezone.now().isoformat()


def positions() -> list[dict]:
    """The open positions; a futures account's also carry their leverage, initial and
    maintenance margin and liquidation price, as the portfolio API values them."""
    account = risk.get_account()
    marks = _marks()
    margins = (
        ledger.futures_summary(account, marks)["positions"] if ledger.is_futures(account) else {}
    )
    rows = []
    for p in ledger.open_positions(account):
        mark = marks.get(p.symbol)
        rows.append(
            {
                "symbol": p.symbol,
                "quantity": str(p.quantity),
                "average_entry_price": str(p.average_entry_price),
                "mark_price": _str(mark),
                "unrealized_pnl": str(ledger.position_unrealized(p, mark)),
                "realized_pnl": str(p.net_realized_pnl),
                "opened_at": _iso(p.opened_at),
                "stop_loss_price": _str(p.stop_loss_price),
                "take_profit_price": _str(p.take_profit_price),
                **margins.get(p.symbol, {}),
            }
        )
    return rows


FILLS_SHOWN = 200


def fills() -> list[dict]:
    """The operator's newest fills, oldest first, each with ``bar_time``: the open time of the
    newest bar of its symbol stored when it filled, the bar whose price it traded on. A replay's
    bars carry the times of their history, not the wall clock a fill is stamped with, so that
    bar is where the fill belongs on a price chart."""
    recent = list(
        Fill.objects.filter(order__account=risk.get_account()).order_by("-ts", "-id")[:FILLS_SHOWN]
    )
    recent.reverse()
    bar_times = {
        symbol: iter(_bar_times(symbol, [f.ts for f in recent if f.symbol == symbol]))
        for symbol in {f.symbol for f in recent}
    }
    return [
        {
            "symbol": f.symbol,
            "side": f.side,
            "quantity": str(f.quantity),
            "price": str(f.price),
            "ts": _iso(f.ts),
            "bar_time": _iso(next(bar_times[f.symbol])),
            "order_id": f.order_id,
        }
        for f in recent
    ]


def _bar_times(symbol: str, moments: list) -> list:
    """For each moment (ascending), the open time of the newest bar stored by then, or None."""
    bars = MarketBar.objects.filter(symbol=symbol).order_by("-stored_at", "-open_time")
    before = bars.filter(stored_at__lt=moments[0]).values_list("stored_at", "open_time")[:1]
    during = bars.filter(stored_at__gte=moments[0], stored_at__lte=moments[-1]).values_list(
        "stored_at", "open_time"
    )
    stored = sorted([*before, *during])
    stamps = [at for at, _ in stored]
    found = []
    for moment in moments:
        index = bisect_right(stamps, moment)
        found.append(stored[index - 1][1] if index else None)
    return found


def signals() -> list[dict]:
    return [
        {
            "id": str(s.id),
            "created_at": _iso(s.created_at),
            "symbol": s.symbol,
            "side": s.side,
            "confidence": str(s.confidence),
            "source": s.source,
            "status": s.status,
            "reason": s.reason,
            "model_version": s.model_version,
        }
        for s in Signal.objects.filter(account__is_sandbox=False).order_by("-created_at")[:30]
    ]


def orders() -> list[dict]:
    return [
        {
            "id": o.pk,
            "created_at": _iso(o.created_at),
            "client_order_id": o.client_order_id,
            "symbol": o.symbol,
            "side": o.side,
            "quantity": str(o.quantity),
            "filled_quantity": str(o.filled_quantity),
            "average_price": _str(o.average_price),
            "status": o.status,
            "purpose": o.purpose,
        }
        for o in Order.objects.filter(account__is_sandbox=False).order_by("-created_at", "-id")[:30]
    ]


def denials() -> list[dict]:
    denied = (
        Signal.objects.filter(Q(status=Signal.Status.DENIED) | Q(status=Signal.Status.REJECTED))
        .filter(account__is_sandbox=False)
        .order_by("-updated_at")[:20]
    )
    return [
        {
            "created_at": _iso(s.created_at),
            "symbol": s.symbol,
            "side": s.side,
            "reason": s.reason,
            "detail": s.detail,
            "source": s.source,
        }
        for s in denied
    ]


def summarize_event(event: dict) -> str:
    """One line for the event feed."""
    p = event.get("payload") or {}
    kind = event.get("type", "")
    if kind == "market.bar":
        return f"{p.get('symbol')} closed at {p.get('close')}"
    if kind == "order.denied":
        return f"{p.get('side')} {_amount(p)} {p.get('symbol')} denied: {p.get('reason')}"
    if kind.startswith("order."):
        return f"{p.get('side')} {_amount(p)} {p.get('symbol')} {p.get('status', '')}".strip()
    if kind == "position.liquidated":
        quantity = p.get("liquidated_quantity") or p.get("quantity")
        return f"LIQUIDATED {p.get('symbol')} {quantity} at {_grouped(p.get('mark_price'))}"
    if kind.startswith("position."):
        return f"{p.get('symbol')} {p.get('quantity')} @ {p.get('average_entry_price')}"
    if kind == "signal.generated":
        confidence = p.get("confidence")
        return f"{p.get('side')} {p.get('symbol')} confidence {confidence} ({p.get('source')})"
    if kind == "risk.state_changed":
        return f"{p.get('from')} -> {p.get('to')} by {p.get('actor')}: {p.get('reason')}"
    return ", ".join(f"{k}={v}" for k, v in list(p.items())[:4])


def _grouped(value) -> str:
    """A price with thousands separators ("60,000.5"), as it reads in a sentence."""
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return str(value)
    return f"{number.normalize():,f}" if number.is_finite() else str(value)


def _amount(payload: dict) -> str:
    """What an order or signal is for: its quantity, or the value of a signal sized by notional,
    or what closing a position sells."""
    if payload.get("quantity") is not None:
        return str(payload["quantity"])
    if payload.get("notional") is not None:
        return f"{payload['notional']} USDT of"
    if payload.get("close_position"):
        return "all of"
    return "?"


SANDBOX_ACCOUNTS = frozenset({SANDBOX})


def shown(event: dict) -> bool:
    """The operator's feed leaves out the system checks' sandbox trading."""
    return (event.get("payload") or {}).get("account") not in SANDBOX_ACCOUNTS


def event_row(event: dict) -> dict:
    row = {
        "ts": event["ts"],
        "type": event["type"],
        "service": event["service"],
        "correlation_id": event.get("correlation_id", ""),
        "summary": summarize_event(event),
    }
    if event["type"] == "market.bar":
        # The price charts draw each new bar from its delta.
        p = event.get("payload") or {}
        row["bar"] = {k: p.get(k) for k in ("symbol", "open_time", "open", "high", "low", "close")}
    return row


def events() -> list[dict]:
    from trading.events.log import events_stream

    raw = redis_client().xrevrange(events_stream(), count=50)
    from trading.events.envelope import Event, MalformedEvent

    rows = []
    for _id, fields in raw:
        try:
            event = Event.from_fields(fields).as_json()
        except MalformedEvent:
            continue
        if shown(event):
            rows.append(event_row(event))
    return rows


def services() -> dict:
    client = redis_client()
    section = {}
    for name, service in SERVICES.items():
        report = service_report(service)
        raw_error = client.get(rkey("last_error", name))
        error = json.loads(raw_error) if raw_error else None
        ages = [w.age(report.now) for w in report.workers]
        section[name] = {
            "title": service.title,
            "status": str(report.status),
            "ready": report.ready,
            "workers": [w.node for w in report.workers],
            "heartbeat_age_seconds": round(max(ages), 1) if ages else None,
            "queue_length": queue_length(client, service.queue),
            "failing": [c.component for c in report.failing],
            "last_error": None if error is None else f"{error['task']}: {error['error']}",
        }
    return section


def trading() -> dict:
    account = risk.get_account()
    record = TradingStateRecord.objects.get(account=account)
    return {
        "state": record.state,
        "reason": record.reason,
        "changed_at": _iso(record.changed_at),
        "history": [
            {
                "from": c.from_state,
                "to": c.to_state,
                "actor": c.actor,
                "reason": c.reason,
                "at": _iso(c.at),
            }
            for c in TradingStateChange.objects.filter(account=account)[:5]
        ],
    }


def model() -> dict | None:
    from trading.ai.champion import models_overview
    from trading.ai.live import figures_json, recent_live_figures

    latest = ModelVersion.objects.serving().defer("artifact", "metadata").first()
    if latest is None:
        return None
    records = LearningRecord.objects.filter(model_version=latest.version)
    closed = records.count()
    won = records.filter(won=True).count()
    raw = redis_client().get(rkey("drift", "last"))
    drift = json.loads(raw) if raw else {}
    checked = drift.get("model_version") == latest.version
    return {
        "version": latest.version,
        "age_seconds": round(time.time() - latest.trained_at.timestamp(), 1),
        "oos_accuracy": round(latest.accuracy, 4),
        "baseline_accuracy": round(latest.baseline_accuracy, 4),
        "oos_brier": round(latest.brier, 4),
        "train_start": _iso(latest.window_start),
        "train_end": _iso(latest.window_end),
        # Every signal of this version judged at its horizon, traded or denied.
        "live": figures_json(recent_live_figures([latest.version])[latest.version]),
        "hit_rate": round(won / closed, 4) if closed else None,
        "closed_trades": closed,
        "drift_detected": drift.get("detected") if checked else None,
        "max_psi": drift.get("max_psi") if checked else None,
        # The champion, the challenger on trial and the rollback target side by side.
        "versions": models_overview(),
    }


def checks() -> dict | None:
    """The newest run of the system checks with its results so far."""
    from trading.models import SelfTestRun

    run = SelfTestRun.objects.prefetch_related("results").first()
    if run is None:
        return None
    from trading.selftest.base import SUITES

    return {
        "id": run.pk,
        "suite": run.suite,
        "status": run.status,
        "trigger": run.trigger,
        "actor": run.actor,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "total": len(SUITES.get(run.suite, [])),
        "passed": sum(r.status == "PASS" for r in run.results.all()),
        "failed": sum(r.status == "FAIL" for r in run.results.all()),
        "skipped": sum(r.status == "SKIP" for r in run.results.all()),
        "results": [
            {
                "position": r.position,
                "name": r.name,
                "title": r.title,
                "status": r.status,
                "duration_seconds": r.duration_seconds,
                "detail": r.detail,
            }
            for r in run.results.all()
        ],
    }


BUILDERS: dict[str, Callable[[], object]] = {
    "prices": prices,
    "pnl": pnl,
    "equity_curve": equity_curve,
    "positions": positions,
    "fills": fills,
    "signals": signals,
    "orders": orders,
    "denials": denials,
    "events": events,
    "services": services,
    "trading": trading,
    "model": model,
    "checks": checks,
}

# Which sections an event can change (every event also joins the feed).
AFFECTS: dict[str, tuple[str, ...]] = {
    "market.bar": ("prices", "pnl", "positions", "model"),  # a bar judges signals
    "signal.generated": ("signals",),
    "order.requested": ("signals", "orders"),
    "order.denied": ("signals", "denials"),
    "order.rejected": ("signals", "orders", "denials"),
    "order.submitted": ("signals", "orders"),
    "order.filled": ("signals", "orders", "pnl", "positions", "fills", "equity_curve"),
    "position.opened": ("positions", "pnl"),
    "position.changed": ("positions", "pnl"),
    "position.closed": ("positions", "pnl", "equity_curve"),
    "position.liquidated": ("positions", "pnl", "equity_curve"),
    "risk.state_changed": ("trading",),
    "model.trained": ("model",),
    "model.promoted": ("model",),
    "model.rolled_back": ("model",),
    "drift.detected": ("model",),
    "learning.recorded": ("model",),
    "selftest.started": ("checks",),
    "selftest.result": ("checks",),
    "selftest.finished": ("checks",),
}


def build(names: Iterable[str]) -> dict[str, object]:
    return {name: BUILDERS[name]() for name in names}
