"""Strategies at the edges: an account's enabled configurations, and their signals on a live bar
through the one intake."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from trading.execution.intake import InvalidSignal, SignalRequest, submit_signal
from trading.marketdata.bars import Bar
from trading.models import Account, Signal, StrategyConfig
from trading.strategies.ai import KIND as AI_MODEL
from trading.strategies.base import InvalidParameters, SignalIntent, Strategy
from trading.strategies.kinds import build_strategy

logger = logging.getLogger(__name__)
SOURCE = "strategy"


def enabled_configs(account: Account) -> list[StrategyConfig]:
    """The strategies the account runs, by name; none means the ai model alone."""
    return list(StrategyConfig.objects.filter(accounts=account).order_by("name"))


def runs_ai_model(configs: Sequence[StrategyConfig]) -> bool:
    """Whether the ai model runs: when nothing is enabled (the default), or when it is."""
    return not configs or any(c.kind == AI_MODEL for c in configs)


def rule_strategies(configs: Sequence[StrategyConfig]) -> list[tuple[StrategyConfig, Strategy]]:
    """The enabled rule strategies, built; a configuration that no longer validates is skipped,
    loudly."""
    built = []
    for config in configs:
        if config.kind == AI_MODEL:
            continue
        try:
            built.append((config, build_strategy(config.kind, config.parameters,
                                                 config.confidence)))  # fmt: skip
        except InvalidParameters as error:
            logger.error("strategy %s cannot run: %s", config.name, error)
    return built


def submit_intents(
    account: Account, config: StrategyConfig, intents: Sequence[SignalIntent]
) -> list[Signal]:
    """Each intent as a signal through the intake, recorded as the strategy's."""
    signals = []
    for intent in intents:
        request = SignalRequest(
            symbol=intent.symbol,
            side=intent.side,
            confidence=intent.confidence,
            notional=intent.notional,
            close_position=intent.close_position,
        )
        try:
            signals.append(submit_signal(account, request, producer="ai", source=SOURCE,
                                         model_version=config.name[:64]))  # fmt: skip
        except InvalidSignal as error:
            logger.error("strategy %s sent a signal the intake refused: %s", config.name, error)
    return signals


def window_size(strategies: Sequence[tuple[StrategyConfig, Strategy]]) -> int:
    return max((s.warmup for _, s in strategies), default=0)


def signals_on_bar(
    account: Account, window: Sequence[Bar], strategies: Sequence[tuple[StrategyConfig, Strategy]]
) -> list[Signal]:
    """Every rule strategy's signals on the bar that closes ``window``."""
    signals = []
    for config, strategy in strategies:
        signals += submit_intents(account, config, strategy.on_bar(window[-strategy.warmup :]))
    return signals
