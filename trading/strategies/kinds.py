"""The strategy kinds and how each is built from its configuration."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from trading.ai.model import ModelArtifact
from trading.strategies.ai import KIND as AI_MODEL
from trading.strategies.ai import AiModel
from trading.strategies.base import InvalidParameters, Strategy, number, unknown
from trading.strategies.rules import RsiMeanReversion, SmaCrossover

RULES = {SmaCrossover.kind: SmaCrossover, RsiMeanReversion.kind: RsiMeanReversion}
KINDS = (*RULES, AI_MODEL)


def validate_parameters(kind: str, parameters: Mapping[str, Any], confidence: Decimal) -> None:
    """Raises ``InvalidParameters`` when ``kind`` cannot run with these parameters."""
    if not isinstance(parameters, Mapping):
        raise InvalidParameters(f"parameters must be an object, got {parameters!r}")
    if kind == AI_MODEL:
        unknown(parameters, {"model_version", "notional"})
        version = parameters.get("model_version", "")
        if not isinstance(version, str):
            raise InvalidParameters(f"model_version must be a string, got {version!r}")
        number(parameters, "notional", "100", Decimal("0.01"), Decimal("100000000"))
        return
    if kind not in RULES:
        raise InvalidParameters(f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
    RULES[kind].from_parameters(parameters, confidence)


def build_strategy(
    kind: str,
    parameters: Mapping[str, Any],
    confidence: Decimal,
    *,
    model: ModelArtifact | None = None,
    default_notional: Decimal = Decimal("100"),
) -> Strategy:
    """The strategy of this configuration; an ``ai_model`` needs its ``model``."""
    validate_parameters(kind, parameters, confidence)
    if kind == AI_MODEL:
        if model is None:
            raise InvalidParameters("the ai model strategy needs a model version")
        notional = number(parameters, "notional", str(default_notional), Decimal("0.01"),
                          Decimal("100000000"))  # fmt: skip
        return AiModel(model, notional)
    return RULES[kind].from_parameters(parameters, confidence)
