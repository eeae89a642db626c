"""Local HTTP stand-ins for what notifications talk to: a webhook receiver (apprise's json://
posts here) and Telegram's Bot API (the operators' bot polls here). Never the real services."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl


class _Server:
    """A threading HTTP server on 127.0.0.1 (a free port unless told); a context manager."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.server.owner = self  # type: ignore[attr-defined]
        self.lock = threading.Condition()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _body(handler: BaseHTTPRequestHandler) -> dict:
    length = int(handler.headers.get("Content-Length") or 0)
    raw = handler.rfile.read(length) if length else b""
    kind = handler.headers.get("Content-Type", "")
    if "json" in kind:
        return json.loads(raw or b"{}")
    fields = dict(parse_qsl(raw.decode()))
    for key, value in fields.items():
        try:
            fields[key] = json.loads(value)
        except ValueError:
            pass
    return fields


def _reply(handler: BaseHTTPRequestHandler, status: int, body: object) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class WebhookReceiver(_Server):
    """Records every JSON body POSTed to it; answers ``status`` (200 unless told otherwise)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = _body(self)
                with receiver.lock:
                    receiver.received.append({"path": self.path, "body": body})
                    receiver.lock.notify_all()
                _reply(self, receiver.status, {})

            def log_message(self, *args) -> None:
                pass

        super().__init__(Handler)

    def url(self, path: str = "hook") -> str:
        """The apprise URL that posts here."""
        return f"json://127.0.0.1:{self.port}/{path}"


class TelegramBotAPI(_Server):
    """Telegram's Bot API as the bot uses it: ``getMe``, ``deleteWebhook``, ``getUpdates``
    (long polling the scripted updates fed with ``send_command``) and ``sendMessage``
    (recorded in ``sent``). ``base_url`` is what python-telegram-bot's ``base_url`` takes."""

    BOT = {"id": 4242, "is_bot": True, "first_name": "Quantum Trader", "username": "qt_test_bot"}

    def __init__(self, port: int = 0) -> None:
        self.updates: list[dict] = []
        self.sent: list[dict] = []
        self.polls = 0
        self.next_update_id = 1
        self.next_message_id = 1
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                method = self.path.rsplit("/", 1)[-1]
                body = _body(self)
                handle = getattr(api, f"_api_{method}", None)
                if handle is None:
                    _reply(self, 404, {"ok": False, "error_code": 404, "description": "Not Found"})
                    return
                _reply(self, 200, {"ok": True, "result": handle(body)})

            do_GET = do_POST

            def log_message(self, *args) -> None:
                pass

        super().__init__(Handler, port)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    def send_command(self, chat_id: int, text: str) -> int:
        """Queues a message from a private chat for the bot's next getUpdates; its update id."""
        with self.lock:
            update_id = self.next_update_id
            self.next_update_id += 1
            self.updates.append(
                {
                    "update_id": update_id,
                    "message": {
                        "message_id": update_id,
                        "date": 1_700_000_000,
                        "chat": {"id": chat_id, "type": "private"},
                        "from": {"id": chat_id, "is_bot": False, "first_name": "Op"},
                        "text": text,
                        "entities": [
                            {"type": "bot_command", "offset": 0, "length": len(text.split()[0])}
                        ],
                    },
                }
            )
            self.lock.notify_all()
        return update_id

    def forget(self) -> None:
        """Drops what was recorded so far (a stand-in shared by several tests)."""
        with self.lock:
            self.updates, self.sent = [], []

    def replies_to(self, chat_id: int) -> list[str]:
        with self.lock:
            return [m["text"] for m in self.sent if int(m["chat_id"]) == chat_id]

    def _api_getMe(self, body: dict) -> dict:
        return self.BOT

    def _api_deleteWebhook(self, body: dict) -> bool:
        return True

    def _api_getUpdates(self, body: dict) -> list[dict]:
        offset = int(body.get("offset") or 0)
        timeout = min(float(body.get("timeout") or 0), 1.0)
        with self.lock:
            self.polls += 1
            self.lock.notify_all()
            self.lock.wait_for(
                lambda: any(u["update_id"] >= offset for u in self.updates), timeout=timeout
            )
            # Confirmed updates (below the offset) are forgotten, as Telegram does.
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
            return list(self.updates)

    def _api_sendMessage(self, body: dict) -> dict:
        with self.lock:
            message_id = self.next_message_id
            self.next_message_id += 1
            self.sent.append(body)
            self.lock.notify_all()
        return {
            "message_id": message_id,
            "date": 1_700_000_000,
            "chat": {"id": int(body["chat_id"]), "type": "private"},
            "from": self.BOT,
            "text": body.get("text", ""),
        }
