"""A trivial Django view for the health benchmark's baseline: no database, no Redis."""

from django.http import HttpRequest, HttpResponse
from django.urls import path


def ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [path("ok", ok)]
