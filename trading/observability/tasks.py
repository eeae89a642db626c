"""Tasks every service answers, whatever its area: the RPC used to reach a service directly."""

from __future__ import annotations

import os
import socket
import time

from celery import shared_task


@shared_task(name="trading.observability.ping_service")
def ping_service(payload: str = "") -> dict[str, object]:
    """Answers with the identity of the worker process that ran it.

    Sent by name to a service's queue (``bus.send(bus.PING_SERVICE, queue=service.queue)``);
    system checks use it as the round trip to each service.
    """
    request = ping_service.request
    return {
        "node": request.hostname,
        "queue": (request.delivery_info or {}).get("routing_key"),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "payload": payload,
        "answered_at": time.time(),
    }
