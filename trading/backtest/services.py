"""Backtests at the edges: the bars (the bar store, else the bundled history), the strategy of a
stored configuration or a model version, the run stored with its report and fills."""

from __future__ import annotations

import functools
import logging
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings as django_settings
from django.db.models import Max, Min

from trading.backtest.engine import Backtest, Result, Settings, steps_of
from trading.backtest.report import build_report
from trading.execution.paper import PaperConfig
from trading.ledger.book import AccountKind
from trading.marketdata.bars import Bar
from trading.marketdata.barstore import bar_of
from trading.marketdata.klines import UnknownSymbolError, load_bundled_bars
from trading.marketdata.services import symbol_rules
from trading.models import BacktestRun, MarketBar, ModelVersion, StrategyConfig
from trading.risk.services import limits_for
from trading.strategies.ai import KIND as AI_MODEL
from trading.strategies.base import Strategy
from trading.strategies.kinds import KINDS, build_strategy

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def code_version() -> str:
    """``git describe`` of the working tree, else the package's version."""
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=ROOT, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "quantum-trader 0.1.0"


def strategy_of(name: str, model_version: str = "") -> tuple[Strategy, dict[str, Any]]:
    """The strategy of a stored configuration, or ``ai_model`` (the serving model, or
    ``model_version``); with the parameters it runs with."""
    from trading.ai.services import _load

    config = StrategyConfig.objects.filter(name=name).first()
    kind = config.kind if config is not None else name
    parameters = dict(config.parameters) if config is not None else {}
    confidence = config.confidence if config is not None else Decimal("0.8")
    model = None
    if kind == AI_MODEL:
        version = model_version or parameters.get("model_version") or serving_model_version()
        if not version:
            raise ValueError("no model version to backtest: train one first")
        model = _load(version)
        parameters["model_version"] = version
    strategy = build_strategy(kind, parameters, confidence, model=model,
                              default_notional=django_settings.AI_ORDER_NOTIONAL)  # fmt: skip
    return strategy, parameters


def bar_series(symbol: str, start: datetime, end: datetime) -> tuple[Iterator[Bar], int]:
    """The symbol's stored bars closing in [start, end], read in chunks; the bundled history's
    when the store has none there. With how many there are."""
    rows = MarketBar.objects.filter(
        symbol=symbol, interval=django_settings.KLINE_INTERVAL,
        close_time__gte=start, close_time__lte=end,
    ).order_by("open_time")  # fmt: skip
    count = rows.count()
    if count:
        return (bar_of(row) for row in rows.iterator(chunk_size=2000)), count
    try:
        bundled = [b for b in load_bundled_bars(symbol) if start <= b.close_time <= end]
    except UnknownSymbolError:
        bundled = []
    return iter(bundled), len(bundled)


def bar_count(symbols: list[str], start: datetime, end: datetime) -> int:
    """How many bars of ``symbols`` a run from ``start`` to ``end`` would see."""
    return sum(bar_series(symbol, start, end)[1] for symbol in symbols)


def available_range(symbol: str) -> tuple[datetime, datetime] | None:
    """The closing times of the first and last bars of ``symbol`` a backtest can read: the bar
    store's, else the bundled history's; None when there are none."""
    rows = MarketBar.objects.filter(symbol=symbol, interval=django_settings.KLINE_INTERVAL)
    span = rows.aggregate(first=Min("close_time"), last=Max("close_time"))
    if span["first"] is not None:
        return span["first"], span["last"]
    try:
        bundled = load_bundled_bars(symbol)
    except UnknownSymbolError:
        return None
    return (bundled[0].close_time, bundled[-1].close_time) if bundled else None


def strategy_choices() -> list[str]:
    """What a run may name as its strategy: the stored configurations, then the kinds."""
    names = list(StrategyConfig.objects.order_by("name").values_list("name", flat=True))
    return names + [kind for kind in KINDS if kind not in names]


def strategy_kind(name: str) -> str | None:
    """The kind a run of ``name`` runs: a stored configuration's, or ``name`` itself when it is
    a kind; None when it is neither."""
    config = StrategyConfig.objects.filter(name=name).values_list("kind", flat=True).first()
    if config is not None:
        return config
    return name if name in KINDS else None


def serving_model_version() -> str | None:
    """The champion's version (what the ai strategy runs unless a run names another)."""
    return ModelVersion.objects.serving().values_list("version", flat=True).first()


def run_settings(options: dict[str, Any], symbols: list[str]) -> Settings:
    paper = PaperConfig(
        taker_fee_rate=Decimal(str(options.get("fee", django_settings.PAPER_TAKER_FEE_RATE))),
        maker_fee_rate=django_settings.PAPER_MAKER_FEE_RATE,
        slippage_bps=Decimal(str(options.get("slippage_bps",
                                             django_settings.PAPER_SLIPPAGE_BPS))),
        max_volume_share=Decimal(str(options.get("volume_share",
                                                 django_settings.PAPER_MAX_VOLUME_SHARE))),
    )  # fmt: skip
    cash = Decimal(str(options.get("starting_cash", django_settings.STARTING_CASH)))
    return Settings(paper=paper, limits=limits_for(symbols[0]), rules=symbol_rules(),
                    starting_cash=cash, kind=AccountKind(options.get("account_kind", "spot")),
                    leverage=int(options.get("leverage", 1)))  # fmt: skip


def settings_json(settings: Settings) -> dict[str, Any]:
    limits = asdict(settings.limits)
    limits["allowed_symbols"] = sorted(limits["allowed_symbols"])
    return {
        "taker_fee_rate": str(settings.paper.taker_fee_rate),
        "slippage_bps": str(settings.paper.slippage_bps),
        "max_volume_share": str(settings.paper.max_volume_share),
        "starting_cash": str(settings.starting_cash),
        "account_kind": str(settings.kind),
        "leverage": settings.leverage,
        "limits": {k: str(v) if isinstance(v, Decimal) else v for k, v in limits.items()},
    }


def create_run(
    strategy: str,
    symbols: list[str],
    start: datetime,
    end: datetime,
    *,
    options: dict[str, Any] | None = None,
    requested_by: str = "",
) -> BacktestRun:
    """A run, queued: ``run_backtest`` runs it."""
    return BacktestRun.objects.create(
        strategy=strategy, symbols=symbols, start=start, end=end,
        settings=options or {}, requested_by=requested_by,
    )  # fmt: skip


class RunNotRunnable(Exception):
    """The run is gone, or already finished (a redelivered task): nothing to do."""


def run_backtest(run_id: int, progress: Callable[[int, int], None] | None = None) -> BacktestRun:
    """Runs a stored run and stores its report and fills; a failure is stored as such. A run
    already done or failed is not run again (``RunNotRunnable``); one left running by a worker
    that died is run again from the start, which overwrites what it had stored."""
    claimed = BacktestRun.objects.filter(
        pk=run_id, status__in=(BacktestRun.Status.QUEUED, BacktestRun.Status.RUNNING)
    ).update(status=BacktestRun.Status.RUNNING, progress=0.0, bars_done=0)
    if claimed != 1:
        raise RunNotRunnable(f"backtest {run_id} is not queued")
    run = BacktestRun.objects.get(pk=run_id)
    try:
        _execute(run, progress)
    except Exception as error:
        logger.exception("backtest %s failed", run.pk)
        BacktestRun.objects.filter(pk=run.pk).update(
            status=BacktestRun.Status.FAILED, error=str(error)[:300]
        )
        raise
    run.refresh_from_db()
    return run


def _execute(run: BacktestRun, progress: Callable[[int, int], None] | None) -> Result:
    options = dict(run.settings)
    strategy, parameters = strategy_of(run.strategy, options.get("model_version", ""))
    settings = run_settings(options, list(run.symbols))
    series, total = [], 0
    for symbol in run.symbols:
        bars, count = bar_series(symbol, run.start, run.end)
        series.append(bars)
        total += count
    if not total:
        raise ValueError(f"no bars of {', '.join(run.symbols)} from {run.start} to {run.end}")
    BacktestRun.objects.filter(pk=run.pk).update(bars_total=total)
    last_saved = [0.0, time.monotonic()]

    def report_progress(done: int) -> None:
        share = done / total
        if progress is not None:
            progress(done, total)
        # Often enough for a page polling every second, without a write per bar.
        now = time.monotonic()
        if share - last_saved[0] >= 0.05 or now - last_saved[1] >= 0.5 or done == total:
            last_saved[:] = [share, now]
            BacktestRun.objects.filter(pk=run.pk).update(progress=round(share, 4), bars_done=done)

    result = Backtest(strategy, settings).run(steps_of(series), progress=report_progress)
    BacktestRun.objects.filter(pk=run.pk).update(
        status=BacktestRun.Status.DONE,
        progress=1.0,
        bars_done=total,
        strategy_kind=strategy.kind,
        strategy_version=strategy.version[:200],
        parameters=parameters,
        settings={**options, **settings_json(settings)},
        code_version=code_version(),
        report=build_report(result),
        fills=fills_json(result),
    )
    return result


def fills_json(result: Result) -> list[dict[str, str]]:
    return [
        {
            "ts": f.ts.isoformat(),
            "symbol": f.symbol,
            "side": f.side,
            "quantity": str(f.quantity),
            "price": str(f.price),
            "fee": str(f.fee),
            "realized_pnl": str(f.realized_pnl),
            "purpose": result.orders[f.order_index].purpose,
        }
        for f in result.fills
    ]


def run_summary(run: BacktestRun) -> dict[str, Any]:
    """What the list of runs shows of one."""
    return {
        "id": run.pk,
        "created_at": run.created_at.isoformat(),
        "status": run.status,
        "progress": run.progress,
        "bars_done": run.bars_done,
        "bars_total": run.bars_total,
        "strategy": run.strategy,
        "strategy_kind": run.strategy_kind,
        "strategy_version": run.strategy_version,
        "parameters": run.parameters,
        "settings": run.settings,
        "code_version": run.code_version,
        "symbols": run.symbols,
        "start": run.start.isoformat(),
        "end": run.end.isoformat(),
        "error": run.error,
        "requested_by": run.requested_by,
        "model_version": run.parameters.get("model_version")
        or run.settings.get("model_version", ""),
        # The bars it ran on, within the range asked for: known once it has run.
        "data_start": (run.report or {}).get("start"),
        "data_end": (run.report or {}).get("end"),
        "bars": (run.report or {}).get("bars"),
        "total_return": (run.report or {}).get("total_return"),
    }
