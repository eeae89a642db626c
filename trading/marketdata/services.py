"""Market data at the edges: symbol rules in the database, bars into Redis and the event log."""

from __future__ import annotations

import dataclasses
import logging
import time

from django.db import transaction
from django.utils import timezone

from trading import bus
from trading.events.envelope import Event, new_event
from trading.events.log import publish_many
from trading.marketdata.bars import Bar
from trading.marketdata.prices import record_bars
from trading.marketdata.symbols import SymbolRules, load_bundled_rules, parse_exchange_info
from trading.models import FeedPosition, Symbol

logger = logging.getLogger(__name__)

_RULE_FIELDS = [f.name for f in dataclasses.fields(SymbolRules)]
_cache: dict[str, object] = {"at": 0.0, "rules": {}}
CACHE_SECONDS = 30.0


def store_symbol_rules(rules: dict[str, SymbolRules], source: str) -> int:
    """Writes (or replaces) the rules of these symbols; returns how many were stored."""
    now = timezone.now()
    with transaction.atomic():
        for rule in rules.values():
            values = {name: getattr(rule, name) for name in _RULE_FIELDS if name != "symbol"}
            Symbol.objects.update_or_create(
                symbol=rule.symbol, defaults={**values, "source": source, "refreshed_at": now}
            )
    _cache["at"] = 0.0
    return len(rules)


def refresh_symbol_rules(adapter=None, symbols: list[str] | None = None) -> str:
    """Loads the rules from the exchange when it answers, else from the bundled snapshot.

    Returns the source used ("exchange" or "bundled").
    """
    if adapter is not None and getattr(adapter, "name", "") != "paper":
        try:
            payload = adapter.exchange_info(symbols or [])
            store_symbol_rules(parse_exchange_info(payload), "exchange")
            return "exchange"
        except Exception as exc:  # any failure falls back to the snapshot, loudly
            logger.warning("exchangeInfo unavailable (%s); using the bundled snapshot", exc)
    store_symbol_rules(load_bundled_rules(), "bundled")
    return "bundled"


def symbol_rules() -> dict[str, SymbolRules]:
    """The rules of every known symbol, cached per process for a short while.

    On first use of an empty database, the bundled snapshot is stored.
    """
    if time.monotonic() - float(_cache["at"]) < CACHE_SECONDS and _cache["rules"]:
        return dict(_cache["rules"])  # type: ignore[arg-type]
    rows = list(Symbol.objects.all())
    if not rows:
        refresh_symbol_rules()
        rows = list(Symbol.objects.all())
    rules = {
        row.symbol: SymbolRules(**{name: getattr(row, name) for name in _RULE_FIELDS})
        for row in rows
    }
    _cache.update(at=time.monotonic(), rules=rules)
    return dict(rules)


def publish_bars(bars: list[Bar]) -> None:
    """A step of closed bars: each becomes its symbol's latest quote and a ``market.bar`` event,
    and the services that act on bars are told there is work. (The feed does the same in
    stages that it retries through Redis outages: ``trading.marketdata.feed``.)"""
    if not bars:
        return
    record_bars(bars)
    publish_many(bar_events(bars))
    notify_bar_consumers()


def bar_events(bars: list[Bar]) -> list[Event]:
    """One ``market.bar`` event per bar, each with its own id."""
    return [new_event("market.bar", bar.to_payload(), service="feed") for bar in bars]


def notify_bar_consumers() -> None:
    """Tells the services that act on bars that new ones are in the event log."""
    bus.send(bus.EXEC_DRAIN_MARKET_EVENTS, expires=30, ignore_result=True)
    bus.send(bus.AI_DRAIN_MARKET_EVENTS, expires=30, ignore_result=True)


def record_feed_position(source: str, bars: list[Bar]) -> None:
    """Remembers the newest of these bars, per symbol, as the last one the feed published."""
    newest: dict[str, Bar] = {}
    for bar in bars:
        if bar.symbol not in newest or bar.close_time > newest[bar.symbol].close_time:
            newest[bar.symbol] = bar
    with transaction.atomic():
        for bar in newest.values():
            FeedPosition.objects.update_or_create(
                source=source,
                symbol=bar.symbol,
                defaults={"open_time": bar.open_time, "close_time": bar.close_time},
            )


def feed_positions(source: str, symbols: list[str]) -> dict[str, FeedPosition]:
    """The last bar published by this source for each of these symbols that has one."""
    return {
        row.symbol: row
        for row in FeedPosition.objects.filter(source=source, symbol__in=list(symbols))
    }
