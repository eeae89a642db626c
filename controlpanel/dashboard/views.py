from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from trading.observability.services import SERVICES


@login_required
def index(request: HttpRequest) -> HttpResponse:
    context = {
        "services": SERVICES.values(),
        "can_operate": request.user.has_perm("trading.operate_trading"),
        "symbols": settings.SYMBOLS,
    }
    return render(request, "dashboard/index.html", context)
