"""The operators' Telegram bot: read the book, halt, resume and close from a chat.

Only chats linked to a user in the admin (``TelegramChat``) get answers, and each acts as that
user: the read commands want a Viewer or an Operator, the others an Operator
(``trading.operate_trading``). Actions call the same service functions as the API, so they are
audited the same way (the user's name as the actor), and ``/close`` goes through the same
signal intake and risk checks as ``POST /api/v1/signals``.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from telegram import Update
from telegram.ext import Application, CommandHandler, ContextTypes

from trading.execution.intake import InvalidSignal, SignalRequest, submit_signal
from trading.ledger import services as ledger
from trading.ledger.services import portfolio_summary
from trading.marketdata.prices import latest_prices
from trading.models import TelegramChat
from trading.primitives import InvalidInput, read_symbol
from trading.risk import services as risk
from trading.risk.state import InvalidTransition

logger = logging.getLogger(__name__)

READ = {"status", "positions", "pnl", "help"}
ACT = {"halt", "resume", "close"}
OPERATE = "trading.operate_trading"
VIEW = "trading.view_position"


def linked_user(chat_id: int) -> User | None:
    link = TelegramChat.objects.select_related("user").filter(chat_id=chat_id).first()
    return link.user if link is not None and link.user.is_active else None


def answer(chat_id: int, command: str, args: list[str]) -> str | None:
    """The bot's reply to ``/command args`` from the chat, or None: no reply at all to a chat
    that is not linked, so the bot tells strangers nothing, not even that it exists."""
    user = linked_user(chat_id)
    if user is None:
        logger.info("telegram: ignored /%s from an unlinked chat %s", command, chat_id)
        return None
    if command in ACT and not user.has_perm(OPERATE):
        return f"/{command} is for operators; {user.get_username()} may only read."
    if command in READ and not (user.has_perm(VIEW) or user.has_perm(OPERATE)):
        return f"{user.get_username()} may not read the book."
    match command:
        case "status":
            return _status()
        case "positions":
            return _positions()
        case "pnl":
            return _pnl()
        case "halt":
            return _halt(user, " ".join(args))
        case "resume":
            return _resume(user, " ".join(args))
        case "close":
            return _close(args)
    return HELP


HELP = "/status, /positions, /pnl; operators also /halt [reason], /resume, /close SYMBOL"


def _status() -> str:
    account = risk.get_account()
    summary = risk.risk_summary(account)
    book = portfolio_summary(account, latest_prices())
    last = summary["history"][0] if summary["history"] else None
    by = f" by {last['actor']}" if last else ""
    return (
        f"Trading {summary['state']}{by}: {summary['reason'] or '-'}\n"
        f"Equity {_money(book['equity'])} USDT, daily PnL {_money(book['daily_pnl'])}, "
        f"{book['open_positions']} open positions"
    )


def _positions() -> str:
    account = risk.get_account()
    marks = latest_prices()
    lines = []
    for position in ledger.open_positions(account):
        mark = marks.get(position.symbol)
        lines.append(
            f"{position.symbol} {position.quantity.normalize():f} @ "
            f"{_money(position.average_entry_price)}, mark {_money(mark) if mark else '-'}, "
            f"unrealized {_money(ledger.position_unrealized(position, mark))}"
        )
    return "\n".join(lines) or "No open positions."


def _pnl() -> str:
    book = portfolio_summary(risk.get_account(), latest_prices())
    return (
        f"Daily PnL {_money(book['daily_pnl'])} USDT; realized {_money(book['realized_pnl'])}, "
        f"unrealized {_money(book['unrealized_pnl'])}; equity {_money(book['equity'])}"
    )


def _halt(user: User, reason: str) -> str:
    account = risk.get_account()
    change = risk.halt_trading(
        account, actor=user.get_username(), reason=reason or "emergency stop from Telegram"
    )
    return "Trading HALTED." if change.changed else "Trading was already halted."


def _resume(user: User, reason: str) -> str:
    try:
        change = risk.resume_trading(
            risk.get_account(), actor=user.get_username(), reason=reason or "resumed from Telegram"
        )
    except InvalidTransition as refused:
        return f"Not resumed: {refused}"
    return "Trading ACTIVE." if change.changed else "Trading was already active."


def _close(args: list[str]) -> str:
    if len(args) != 1:
        return "Usage: /close SYMBOL"
    try:
        symbol = read_symbol(args[0])
    except InvalidInput as refused:
        return f"Not sent: {refused}"
    account = risk.get_account()
    position = next((p for p in ledger.open_positions(account) if p.symbol == symbol), None)
    if position is None:
        return f"No open position in {symbol}."
    request = SignalRequest(
        symbol=symbol,
        side="SELL" if position.quantity > 0 else "BUY",
        confidence=Decimal("1"),
        close_position=True,
    )
    try:
        signal = submit_signal(account, request, producer="web", source="telegram")
    except InvalidSignal as refused:
        return f"Not sent: {refused}"
    return f"Closing {symbol}: signal {signal.id} sent to exec-risk (its risk checks apply)."


def _money(value) -> str:
    return f"{Decimal(str(value)):,.2f}"


async def _on_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    chat = update.effective_chat
    if message is None or chat is None or not message.text:
        return
    command = message.text.split()[0].lstrip("/").split("@")[0].lower()
    reply = await sync_to_async(answer)(chat.id, command, list(context.args or []))
    if reply is not None:
        await message.reply_text(reply)


def build_application(token: str, base_url: str) -> Application:
    """The bot, long polling Telegram's Bot API at ``base_url`` (a stand-in, in tests)."""
    application = Application.builder().token(token).base_url(base_url).build()
    commands = sorted(READ | ACT)
    application.add_handler(CommandHandler(commands, _on_command))
    return application
