"""The WSGI application, for serving plain HTTP with a WSGI server."""

from __future__ import annotations

from controlpanel.startup import load_settings_or_exit

load_settings_or_exit()

from django.core.wsgi import get_wsgi_application  # noqa: E402

from controlpanel.request_limits import ChunkedBodyBuffer  # noqa: E402

application = ChunkedBodyBuffer(get_wsgi_application())
