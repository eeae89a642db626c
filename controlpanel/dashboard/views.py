from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from trading.ledger.book import AccountKind
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
