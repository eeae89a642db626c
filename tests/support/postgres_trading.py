"""Signals decided on PostgreSQL, in a process of their own: ``python -m tests.support.
postgres_trading`` with ``DATABASE_URL`` and ``REDIS_URL`` set migrates, records a bar of each
symbol, decides BUY then SELL signals of each through the paper exchange and prints what became
of them as one JSON line (the statements the prepared reads and writes run are PostgreSQL's)."""

from __future__ import annotations

import json
from decimal import Decimal

QUANTITIES = {"BTCUSDT": Decimal("0.00015"), "ETHUSDT": Decimal("0.004")}


def main() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.db import connection

    from trading.execution.intake import SignalRequest, submit_signal
    from trading.execution.signals import process_signal
    from trading.ledger import services as ledger
    from trading.marketdata.klines import load_bundled_bars
    from trading.marketdata.prices import latest_prices, record_bars
    from trading.models import Fill, Position
    from trading.risk.services import get_account, global_limits

    record_bars([load_bundled_bars(symbol)[-1] for symbol in QUANTITIES])
    limits = global_limits()
    limits.allowed_symbols = ",".join(QUANTITIES)
    limits.save()
    account = get_account()
    statuses = []
    for side in ("BUY", "SELL", "BUY"):
        for symbol, quantity in QUANTITIES.items():
            request = SignalRequest(
                symbol=symbol, side=side, confidence=Decimal("0.9"), quantity=quantity
            )
            signal = submit_signal(account, request, producer="web", source="pg", hand_off=False)
            statuses.append(process_signal(signal.pk).status)
    held = {
        p.symbol: str(p.quantity) for p in Position.objects.filter(account=account, status="open")
    }
    fills = {
        symbol: str(
            sum(
                (q if side == "BUY" else -q)
                for side, q in Fill.objects.filter(symbol=symbol).values_list("side", "quantity")
            )
        )
        for symbol in QUANTITIES
    }
    print(json.dumps({
        "vendor": connection.vendor,
        "statuses": statuses,
        "open": held,
        "fills": fills,
        "closed": Position.objects.filter(account=account, status="closed").count(),
        "wrong_balances": ledger.verify_balances(),
        "daily_pnl": str(ledger.daily_pnl(account, latest_prices())),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
