"""The operators' bot as `manage.py run_telegram_bot` runs it, long polling a local stand-in of
Telegram's Bot API: linked chats act as their user, others get no answer."""

from __future__ import annotations

import sys
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from tests import environment
from tests.support.http_receivers import TelegramBotAPI
from tests.support.processes import Process, wait_for
from trading.models import Position, TelegramChat, TradingStateChange
from trading.risk import services as risk

pytestmark = pytest.mark.django_db(transaction=True)

OPERATOR_CHAT, VIEWER_CHAT, STRANGER_CHAT = 1001, 1002, 1003


@pytest.fixture
def bot_api():
    with TelegramBotAPI() as api:
        yield api


@pytest.fixture
def bot(bot_api, process_env, olivia, victor):
    TelegramChat.objects.create(chat_id=OPERATOR_CHAT, user=olivia)
    TelegramChat.objects.create(chat_id=VIEWER_CHAT, user=victor)
    env = {
        **process_env,
        "QT_TELEGRAM_BOT_TOKEN": "123456:stand-in-token",
        "QT_TELEGRAM_API_URL": bot_api.base_url,
    }
    command = [sys.executable, "manage.py", "run_telegram_bot"]
    process = Process("telegram-bot", command, env, environment.VAR_DIR / "log").start()
    try:
        wait_for(
            lambda: bot_api.polls > 0 or not process.alive(), 60, "the bot to poll for updates"
        )
        assert process.alive(), process.log_tail()
        bot_api.process = process
        yield bot_api
    finally:
        process.stop()


def ask(api: TelegramBotAPI, chat_id: int, text: str) -> str:
    """Sends a command and returns the bot's reply to it."""
    before = len(api.replies_to(chat_id))
    api.send_command(chat_id, text)
    try:
        replies = wait_for(
            lambda: (r := api.replies_to(chat_id))[before:] and r, 30, f"the reply to {text}"
        )
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}; the bot's log:\n{api.process.log_tail()}") from None
    return replies[before]


def test_an_operator_chat_reads_halts_and_resumes_and_each_action_is_audited(bot):
    assert "Trading ACTIVE" in ask(bot, OPERATOR_CHAT, "/status")
    assert ask(bot, OPERATOR_CHAT, "/positions") == "No open positions."
    assert "Daily PnL" in ask(bot, OPERATOR_CHAT, "/pnl")

    assert ask(bot, OPERATOR_CHAT, "/halt exchange maintenance") == "Trading HALTED."
    account = risk.get_account()
    assert str(risk.current_state(account)) == "HALTED"
    halt = TradingStateChange.objects.filter(account=account).first()
    assert (halt.actor, halt.reason, halt.to_state) == ("olivia", "exchange maintenance", "HALTED")

    assert ask(bot, OPERATOR_CHAT, "/resume") == "Trading ACTIVE."
    assert TradingStateChange.objects.filter(account=account).first().actor == "olivia"


def test_a_stranger_gets_no_answer(bot):
    bot.send_command(STRANGER_CHAT, "/halt")
    # Updates are handled in order: once the later one is answered, the stranger's was handled.
    assert "Trading" in ask(bot, OPERATOR_CHAT, "/status")
    assert bot.replies_to(STRANGER_CHAT) == []
    assert str(risk.current_state(risk.get_account())) == "ACTIVE"


def test_a_viewer_chat_reads_but_may_not_halt(bot):
    assert "Trading ACTIVE" in ask(bot, VIEWER_CHAT, "/status")
    assert "Daily PnL" in ask(bot, VIEWER_CHAT, "/pnl")
    assert "for operators" in ask(bot, VIEWER_CHAT, "/halt now")
    assert str(risk.current_state(risk.get_account())) == "ACTIVE"
    assert not TradingStateChange.objects.exists()


def test_close_goes_through_the_signal_intake_and_risk_checks(bot, service_workers, market, olivia):
    api = APIClient()
    api.force_authenticate(olivia)
    body = {"symbol": "BTCUSDT", "side": "BUY", "confidence": 0.9, "notional": "1000"}
    assert api.post("/api/v1/signals", body, format="json").status_code == 202
    wait_for(
        lambda: Position.objects.filter(symbol="BTCUSDT", status="open").exists(),
        30,
        "the position to open",
    )
    assert "BTCUSDT" in ask(bot, VIEWER_CHAT, "/positions")
    assert "for operators" in ask(bot, VIEWER_CHAT, "/close BTCUSDT")

    assert ask(bot, OPERATOR_CHAT, "/close \u017fOLUSDT").startswith("Not sent")
    assert ask(bot, OPERATOR_CHAT, "/close btcusdt").startswith("Closing BTCUSDT")
    closed = wait_for(
        lambda: Position.objects.filter(symbol="BTCUSDT", status="closed").first(),
        30,
        "the position to close",
    )
    assert closed.quantity == Decimal("0") or closed.closed_at is not None
    signal = closed.account.signals.filter(source="telegram").get()
    assert signal.side == "SELL" and signal.status == "filled" and signal.close_position
