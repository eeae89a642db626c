"""The ledger's invariants over random sequences of signals and fills on a spot account.

Each step is a signal the spot checks (``spot_shortfall``) decide on the free balances; an
accepted one fills as Binance spot fills it: a commission at most the taker rate the checks
reserve, paid in what the trade receives (the base asset for a buy, the quote for a sell), in
the quote asset (as the paper exchange charges it) or in BNB, a balance the book does not keep.
The book is what ``trading.ledger`` keeps: a position per symbol (``apply_fill``) and a balance
per asset (``fill_moves``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from trading.ledger.book import (
    Fill,
    PositionState,
    Side,
    apply_fill,
    daily_pnl,
    equity,
    exact_sum,
    fill_from_trade,
    fill_moves,
    spot_shortfall,
    total_cash_flow,
    unrealized_at_open,
    unrealized_pnl,
)
from trading.ledger.futures import Holding, bundled_brackets, liquidation_price, margin_state

T0 = datetime(2025, 9, 1, 22, 0, tzinfo=UTC)
STEP = D("0.00001")
FEE_RATE = D("0.001")
START = D("60618")
# symbol: (base, quote)
SYMBOLS = {"BTCUSDT": ("BTC", "USDT"), "ETHUSDT": ("ETH", "USDT")}


@dataclass
class Account:
    """The book of one spot account: positions, balances, and every accepted fill's cash flow."""

    positions: dict[str, PositionState] = field(
        default_factory=lambda: {s: PositionState(s) for s in SYMBOLS}
    )
    balances: dict[str, D] = field(default_factory=lambda: {"USDT": START})
    flows: list[tuple[Side, D, D, D]] = field(default_factory=list)
    accepted: int = 0

    def realized(self) -> D:
        return exact_sum(*(p.realized_pnl for p in self.positions.values()))

    def fees(self) -> D:
        return exact_sum(*(p.fees_paid for p in self.positions.values()))

    def unrealized(self, marks: dict[str, D]) -> D:
        return exact_sum(*(unrealized_pnl(p, marks[s]) for s, p in self.positions.items()))

    def cash(self) -> D:
        return self.balances["USDT"]

    def equity(self, marks: dict[str, D]) -> D:
        return equity(self.cash(), self.positions.values(), marks)


# A step: symbol, side, quantity in steps (or the most that can be traded), price in cents, the
# commission as a share of the taker rate, and where it is paid.
steps = st.tuples(
    st.sampled_from(sorted(SYMBOLS)),
    st.sampled_from([Side.BUY, Side.SELL]),
    st.one_of(st.sampled_from([0, -1]), st.integers(1, 300_000)),
    st.integers(100, 12_000_000),
    st.sampled_from([D(0), D("0.5"), D(1)]),
    st.sampled_from(["received", "quote", "BNB"]),
)
sequences = st.lists(steps, min_size=1, max_size=40)


def run(account: Account, sequence, start: int = 0) -> None:
    for offset, (symbol, side, steps_, cents, share, paid_in) in enumerate(sequence):
        base, quote = SYMBOLS[symbol]
        price = D(cents) / 100
        if steps_ <= 0:
            # All that is held, or all the cash buys: without its fee (0) or with it (-1).
            if side is Side.SELL:
                most = account.balances.get(base, D(0))
            else:
                most = account.cash() / (price * (1 + FEE_RATE if steps_ else 1))
            quantity = (most / STEP).to_integral_value(rounding="ROUND_FLOOR") * STEP
            if quantity <= 0:
                continue
        else:
            quantity = steps_ * STEP
        free = dict(account.balances)
        if spot_shortfall(side, quantity, price, FEE_RATE, free, base=base, quote=quote):
            continue
        account.accepted += 1
        rate = FEE_RATE * share
        if paid_in == "BNB":
            commission, asset = quantity * price * rate, "BNB"
        elif side is Side.BUY and paid_in == "received":
            commission, asset = quantity * rate, base
        else:
            commission, asset = quantity * price * rate, quote
        ts = T0 + timedelta(minutes=start + offset)
        fill = fill_from_trade(
            side, quantity, price, commission, asset, base_asset=base, quote_asset=quote, ts=ts
        )
        account.positions[symbol], _ = apply_fill(account.positions[symbol], fill)
        for moved_asset, moved in fill_moves(
            fill.side, fill.quantity, fill.price, fill.fee, base=base, quote=quote
        ).items():
            account.balances[moved_asset] = exact_sum(
                account.balances.get(moved_asset, D(0)), moved
            )
        account.flows.append((fill.side, fill.quantity, fill.price, fill.fee))


marks = st.fixed_dictionaries(
    {s: st.integers(1, 20_000_000).map(lambda c: D(c) / 100) for s in SYMBOLS}
)


@settings(max_examples=300, deadline=None)
@given(sequences, marks)
def test_cash_plus_positions_at_their_marks_is_the_start_plus_realized_plus_unrealized_less_fees(
    sequence, at
):
    account = Account()
    run(account, sequence)

    assert account.equity(at) == exact_sum(
        START, account.realized(), account.unrealized(at), -account.fees()
    )
    # The cash is the start and every fill's cash flow; nothing else moves it.
    assert account.cash() == START + total_cash_flow(account.flows)


@settings(max_examples=300, deadline=None)
@given(sequences)
def test_no_balance_goes_negative_for_any_sequence_the_checks_accept(sequence):
    account = Account()
    run(account, sequence)

    assert all(amount >= 0 for amount in account.balances.values()), account.balances
    # What a position holds is what the balance of its base asset holds.
    for symbol, position in account.positions.items():
        assert position.quantity == account.balances.get(SYMBOLS[symbol][0], D(0))


@settings(max_examples=200, deadline=None)
@given(sequences, sequences, marks, marks)
def test_the_daily_pnl_is_the_change_of_equity_since_the_open(before, after, at_open, now):
    account = Account()
    run(account, before)
    held = {s: p.quantity for s, p in account.positions.items()}
    realized_before = account.realized() - account.fees()
    equity_at_open = account.equity(at_open)
    open_unrealized = unrealized_at_open(
        held, at_open, total_cash_flow(account.flows), realized_before
    )
    assert open_unrealized == account.unrealized(at_open)

    run(account, after, start=len(before))
    realized_today = account.realized() - account.fees() - realized_before

    daily = daily_pnl(realized_today, account.unrealized(now), open_unrealized)
    # A partial close realizes its share of the entry cost, a division: the identity holds to
    # far below a cent, not to the last of 28 digits (the book must match to 1e-8 USDT).
    assert abs(daily - (account.equity(now) - equity_at_open)) <= D("1e-8")


def test_the_issues_cases_are_refused():
    usdt = {"USDT": START}
    assert spot_shortfall(Side.SELL, D("0.03"), D("115161"), FEE_RATE, usdt,
                          base="BTC", quote="USDT")  # fmt: skip
    assert spot_shortfall(Side.SELL, D("3.9693"), D("4300"), FEE_RATE,
                          {**usdt, "ETH": D("2.9693")}, base="ETH", quote="USDT")  # fmt: skip
    assert spot_shortfall(Side.BUY, D("0.6"), D("115161"), FEE_RATE, usdt,
                          base="BTC", quote="USDT")  # fmt: skip


# -- futures: margin balance and liquidation ----------------------------------------------------

_FUTURES_PRICES = st.decimals(min_value=D("1000"), max_value=D("90000"), places=1)
_FUTURES_QUANTITIES = st.decimals(min_value=D("0.001"), max_value=D("20"), places=3)


@st.composite
def _futures_book(draw):
    """A futures wallet and positions opened by random fills at random prices."""
    brackets = bundled_brackets()["BTCUSDT"]
    wallet = draw(st.decimals(min_value=D("100"), max_value=D("500000"), places=2))
    holdings = []
    for symbol in draw(st.lists(st.sampled_from(["BTCUSDT", "BTC2", "BTC3"]), min_size=1,
                                max_size=3, unique=True)):  # fmt: skip
        state = PositionState(symbol=symbol)
        for _ in range(draw(st.integers(1, 4))):
            fill = Fill(side=draw(st.sampled_from([Side.BUY, Side.SELL])),
                        quantity=draw(_FUTURES_QUANTITIES), price=draw(_FUTURES_PRICES),
                        fee=D(0), ts=T0)  # fmt: skip
            state = apply_fill(state, fill)[0]
        holdings.append(Holding(state, draw(st.integers(1, 125)), brackets,
                                draw(_FUTURES_PRICES)))  # fmt: skip
    return wallet, holdings


@settings(max_examples=200, deadline=None)
@given(_futures_book())
def test_futures_margin_balance_is_wallet_plus_unrealized_pnl(book):
    wallet, holdings = book
    state = margin_state(wallet, holdings)
    unrealized = exact_sum(*(unrealized_pnl(h.state, h.mark) for h in holdings))
    assert state.margin_balance == exact_sum(wallet, unrealized)


@settings(max_examples=300, deadline=None)
@given(_futures_book(), st.decimals(min_value=D("0.000001"), max_value=D("0.5"), places=6))
def test_no_futures_position_survives_past_its_liquidation_price(book, beyond):
    """Marked past its liquidation price (the others where they are), the account is
    liquidating; marked short of it, it is not. The book is one that is not liquidating at its
    marks, as every live one is: a book that is gets liquidated at once."""
    wallet, holdings = book
    assume(not margin_state(wallet, holdings).liquidating)
    target = next((h for h in holdings if not h.state.is_flat), None)
    if target is None:
        return
    others = [h for h in holdings if h is not target]
    price = liquidation_price(target, wallet, others)
    if price is None:  # a long that cannot lose enough: liquidating at no positive price
        assert not margin_state(wallet, [Holding(target.state, target.leverage,
                                target.brackets, D("0.0001")), *others]).liquidating  # fmt: skip
        return
    long = target.state.quantity > 0
    past = price * (1 - beyond) if long else price * (1 + beyond)
    short_of = price * (1 + beyond) if long else price * (1 - beyond)
    moved = Holding(target.state, target.leverage, target.brackets, past)
    assert margin_state(wallet, [moved, *others]).liquidating
    if short_of > 0:
        kept = Holding(target.state, target.leverage, target.brackets, short_of)
        assert not margin_state(wallet, [kept, *others]).liquidating
