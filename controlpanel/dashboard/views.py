from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from trading.backtest import services as backtests_service
from trading.ledger.book import AccountKind
from trading.models import BacktestRun, ModelVersion
from trading.observability.services import SERVICES
from trading.risk.services import get_account

SOCKET_PATH = "/ws/dashboard/"


def socket_url(request: HttpRequest) -> str:
    """Where this page's browser opens the dashboard websocket (``QT_DASHBOARD_SOCKET_URL``)."""
    configured = settings.DASHBOARD_SOCKET_URL
    if configured.startswith(("ws://", "wss://")):
        return configured
    scheme = "wss" if request.is_secure() else "ws"
    if configured:
        return f"{scheme}://{request.get_host()}{configured}"
    host = request.get_host()
    name, _, port = host.rpartition(":")
    if not (name and port.isdigit()):  # no port in the Host header ("[::1]" ends in "]")
        name = host
    return f"{scheme}://{name}:{settings.WS_PORT}{SOCKET_PATH}"


@login_required
def index(request: HttpRequest) -> HttpResponse:
    context = {
        "services": SERVICES.values(),
        "can_operate": request.user.has_perm("trading.operate_trading"),
        # Leverage and reduce-only belong to margin accounts; a spot ticket does not offer them.
        "margin_account": get_account().kind != AccountKind.SPOT,
        "symbols": settings.SYMBOLS,
        "socket_url": socket_url(request),
    }
    return render(request, "dashboard/index.html", context)


# How much of the newest data the form offers by default: a week of 5-minute bars per symbol.
BACKTEST_DEFAULT_SPAN = timedelta(days=7)


@login_required
def backtests(request: HttpRequest) -> HttpResponse:
    """Backtests: the stored runs, a report with its charts, two runs side by side, and (for
    operators) a form that starts one; backtests.js does the rest through the API."""
    symbols = list(settings.SYMBOLS)
    span = backtests_service.available_range(symbols[0]) if symbols else None
    # A bar closes at :59.999; the minute after keeps the last one in the range.
    end = span[1] + timedelta(minutes=1) if span else None
    start = max(span[0], end - BACKTEST_DEFAULT_SPAN) if span else None
    runs = BacktestRun.objects.defer("fills")[:50]
    context = {
        "can_operate": request.user.has_perm("trading.operate_trading"),
        "symbols": symbols,
        "strategies": backtests_service.strategy_choices(),
        "model_versions": list(
            ModelVersion.objects.order_by("-trained_at").values_list("version", flat=True)[:20]
        ),
        "defaults": {
            "start": start.strftime("%Y-%m-%dT%H:%M") if start else "",
            "end": end.strftime("%Y-%m-%dT%H:%M") if end else "",
            "fee": settings.PAPER_TAKER_FEE_RATE,
            "slippage_bps": settings.PAPER_SLIPPAGE_BPS,
            "volume_share": settings.PAPER_MAX_VOLUME_SHARE,
            "starting_cash": settings.STARTING_CASH,
        },
        "runs": [backtests_service.run_summary(run) for run in runs],
    }
    return render(request, "dashboard/backtests.html", context)
