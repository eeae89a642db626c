"""The ASGI application: HTTP through Django, websockets through Channels."""

from __future__ import annotations

from controlpanel.startup import load_settings_or_exit

load_settings_or_exit()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from controlpanel.dashboard.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Only the dashboard's own pages may open its socket (scheme, host and port compared);
        # another origin is refused before the handshake completes (HTTP 403).
        "websocket": OriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
            # channels spells "any subdomain of" as a leading dot, Django's CSRF setting as "*.".
            [origin.replace("://*.", "://.") for origin in settings.DASHBOARD_ORIGINS],
        ),
    }
)
