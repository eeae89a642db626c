"""The one adapter to apprise, and what it says about a channel's URL without its secrets.

Telegram channels (``tgram://<bot token>/<chat id>``) post to the Bot API server the platform is
configured with, ``QT_TELEGRAM_API_URL`` (Telegram's own by default), the same the operators' bot
polls: apprise's Telegram plugin would otherwise always post to api.telegram.org, which a local
Bot API server (or a stand-in, in tests) never sees.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, unquote, urlsplit

import apprise
from apprise.plugins.telegram import NotifyTelegram
from django.conf import settings

MASK = "****"
# Parts of a URL shorter than this are not worth hiding (ports, short path words like "hook").
MIN_SECRET_LENGTH = 6


# apprise's own log lines may quote a channel's URL or token: they reach only the capture in
# send(), which logs them scrubbed.
logging.getLogger("apprise").propagate = False


class TransportError(Exception):
    """A message that did not go out. ``permanent``: the URL itself is wrong, retrying cannot
    help; else the service or the network failed and a later attempt may succeed."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def is_valid_url(url: str) -> bool:
    return apprise.Apprise.instantiate(url) is not None


def masked_url(url: str) -> str:
    """The URL as apprise prints it for privacy (passwords and tokens elided), without its
    query, which may carry headers or tokens of its own. Never the URL itself."""
    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        scheme = url.split("://", 1)[0] if "://" in url else "?"
        return f"{scheme}://{MASK}"
    return plugin.url(privacy=True).split("?", 1)[0].rstrip("/")


def secret_parts(url: str) -> list[str]:
    """The pieces of ``url`` that may be secret: everything but the scheme and the host that is
    long enough to matter (user info, path segments, query values), longest first."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    pieces = [parts.username or "", parts.password or ""]
    pieces += [unquote(segment) for segment in parts.path.split("/")]
    pieces += [value for _key, value in parse_qsl(parts.query)]
    # tgram://<bot token>/...: the token is the "host" and carries a colon.
    netloc_tail = parts.netloc.rsplit("@", 1)[-1]
    if ":" in netloc_tail and not netloc_tail.rsplit(":", 1)[1].isdigit():
        pieces.append(netloc_tail)
    pieces += [sub for piece in list(pieces) for sub in piece.split(":")]
    found = {p for p in pieces if len(p) >= MIN_SECRET_LENGTH}
    return sorted(found, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` with the URL and any secret piece of it replaced by the mask."""
    text = text.replace(url, masked_url(url))
    for piece in secret_parts(url):
        text = re.sub(re.escape(piece), MASK, text)
    return text


def notifier_for(url: str) -> apprise.plugins.NotifyBase | None:
    """apprise's notifier for the channel at ``url`` as this platform sends to it, or None when
    apprise does not know the URL."""
    plugin = apprise.Apprise.instantiate(url)
    if isinstance(plugin, NotifyTelegram):
        # Per instance, so apprise's class (and anyone else's use of it) is left as it ships.
        plugin.notify_url = settings.TELEGRAM_API_URL
    return plugin


def send(url: str, title: str, body: str) -> None:
    """Sends one message to the channel at ``url``; raises TransportError, with apprise's
    account of the failure (secrets scrubbed), when it did not go out."""
    plugin = notifier_for(url)
    notifier = apprise.Apprise()
    if plugin is None or not notifier.add(plugin):
        raise TransportError(f"not a valid apprise URL: {masked_url(url)}", permanent=True)
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
        # Plain text: apprise escapes it for channels that read markup (Telegram reads HTML).
        ok = notifier.notify(title=title, body=body, body_format=apprise.NotifyFormat.TEXT)
    if not ok:
        detail = " ".join(captured.getvalue().split()) or "apprise reported a failure"
        raise TransportError(scrub(detail, url))
