"""Login throttling: django-axes' lockout check, first in ``AUTHENTICATION_BACKENDS``."""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend


class LoginThrottleBackend(AxesStandaloneBackend):
    """Refuses a locked-out login from the login page or the admin (both pass the request).

    ``authenticate()`` without a request (the test client's ``login()``, a script) is not an
    attempt over the network: there is no address to throttle, so it is left to the next backend
    instead of raising as axes does. Returns None, or raises ``PermissionDenied`` when locked out.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)
