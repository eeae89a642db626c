"""The web process as make run serves it: gunicorn's workers for HTTP, uvicorn for the
dashboard's websocket, and one metrics page for all of gunicorn's workers."""

from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import environment

pytestmark = pytest.mark.django_db(transaction=True)


def get(url: str, **headers: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read().decode()


def requests_counted(web_url: str, view: str) -> float:
    _, text = get(f"{web_url}/metrics")
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "django_http_requests_total_by_view_transport_method_total"
        and sample.labels.get("view") == view
    )


def test_the_metrics_page_adds_up_every_gunicorn_worker(web_url):
    before = requests_counted(web_url, "health-web")
    for _ in range(40):
        get(f"{web_url}/health")
    # Whichever worker answers each scrape, it counts the requests every worker served.
    counts = [requests_counted(web_url, "health-web") - before for _ in range(6)]
    assert counts == [40.0] * 6


def test_the_dashboard_names_the_websocket_server_and_it_speaks_the_protocol(
    web_url, olivia, service_workers
):
    import asyncio

    import websockets

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{web_url}/accounts/login/", timeout=10) as response:
        page = response.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = f"username=olivia&password=operator+password+1&csrfmiddlewaretoken={token}".encode()
    login = urllib.request.Request(
        f"{web_url}/accounts/login/", data=form, headers={"Referer": f"{web_url}/accounts/login/"}
    )
    opener.open(login, timeout=10).close()
    with opener.open(f"{web_url}/", timeout=10) as response:
        page = response.read().decode()
    script = r'<script id="dashboard-socket-url" type="application/json">(.*?)</script>'
    socket_url = json.loads(re.search(script, page).group(1))
    assert socket_url == f"ws://127.0.0.1:{environment.WS_PORT}/ws/dashboard/"
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)

    async def first_message() -> dict:
        async with websockets.connect(
            socket_url, additional_headers={"Cookie": cookie, "Origin": web_url}
        ) as socket:
            return json.loads(await asyncio.wait_for(socket.recv(), 10))

    message = asyncio.run(first_message())
    assert message["type"] == "snapshot"
    assert message["user"]["username"] == "olivia"
