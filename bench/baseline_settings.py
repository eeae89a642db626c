"""The platform's settings with one change: the URLconf is ``bench.baseline_urls``, a trivial
view. ``bench/health_load.py`` serves it with the platform's own command
(``uvicorn controlpanel.asgi:application``, ``DJANGO_SETTINGS_MODULE=bench.baseline_settings``),
so the baseline has the same server, ASGI application, middleware and settings as the health
views it is compared with."""

from controlpanel.settings import *  # noqa: F403

ROOT_URLCONF = "bench.baseline_urls"
