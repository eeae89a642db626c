"""Talking to the dashboard's websocket consumer in-process, with WebsocketCommunicator."""

from __future__ import annotations

from channels.testing.websocket import WebsocketCommunicator
from django.conf import settings

from tests import environment

# The page's own origin: the web server's scheme, host and port.
ORIGIN = (b"origin", f"http://localhost:{environment.WEB_PORT}".encode())


def communicator(session_key: str | None = None) -> WebsocketCommunicator:
    from controlpanel.asgi import application

    headers = [ORIGIN, (b"host", b"localhost")]
    if session_key:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_key}".encode()))
    return WebsocketCommunicator(application, "/ws/dashboard/", headers=headers)


def login(user) -> str:
    """A session of ``user``; returns its key for the cookie."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.session.session_key


async def next_of_type(socket: WebsocketCommunicator, kind: str, timeout: float = 10) -> dict:
    """The next message of a kind, past the deltas and heartbeats the consumer sends on its
    own."""
    while True:
        message = await socket.receive_json_from(timeout=timeout)
        if message["type"] == kind:
            return message
        assert message["type"] in ("delta", "heartbeat"), message
