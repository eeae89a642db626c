from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from trading.observability.services import SERVICES


@login_required
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/index.html", {"services": SERVICES.values()})
