"""The exchange the execution services trade on: the configured venue, one per process, and
the paper exchange's balance book of each account."""

from __future__ import annotations

import functools

from django.conf import settings

from trading.execution.adapter import ExchangeAdapter
from trading.ledger import services as ledger
from trading.models import Account


@functools.cache
def venue_adapter(kind: str) -> ExchangeAdapter:
    if kind == "binance":
        from trading.execution.binance import BinanceAdapter, BinanceConfig

        return BinanceAdapter(BinanceConfig.from_env())
    if kind == "binance-futures":
        from trading.execution.binance import BinanceConfig
        from trading.execution.binance_futures import BinanceFuturesAdapter

        return BinanceFuturesAdapter(BinanceConfig.from_env())
    from trading.execution.paper import PaperConfig
    from trading.execution.paper_exchange import PaperExchange

    return PaperExchange(
        PaperConfig(
            maker_fee_rate=settings.PAPER_MAKER_FEE_RATE,
            taker_fee_rate=settings.PAPER_TAKER_FEE_RATE,
            slippage_bps=settings.PAPER_SLIPPAGE_BPS,
            max_volume_share=settings.PAPER_MAX_VOLUME_SHARE,
        )
    )


def exchange(account: Account | None = None) -> ExchangeAdapter:
    """The configured exchange, one per process (built after the worker forks). A sandbox
    account (the system checks') always trades on the paper exchange, whatever is configured.
    On the paper exchange each account trades from a balance book of its own; on Binance a
    futures account trades through the futures adapter."""
    if account is not None and (account.is_sandbox or settings.EXCHANGE == "paper"):
        paper = venue_adapter("paper")
        return paper.for_account(  # type: ignore[attr-defined]
            paper_book(account), account.starting_cash, margin=ledger.is_futures(account)
        )
    if account is not None and settings.EXCHANGE == "binance" and ledger.is_futures(account):
        # A futures account trades USDⓈ-M perpetuals: the same keys, the /fapi endpoints.
        return venue_adapter("binance-futures")
    return venue_adapter(settings.EXCHANGE)


def paper_book(account: Account) -> str:
    """The account's balance book on the paper exchange: its name and creation time, so that an
    account made again under an old name starts from its own starting cash."""
    return f"{account.name}-{int(account.created_at.timestamp() * 1_000_000)}"
