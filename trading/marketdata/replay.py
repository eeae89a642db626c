"""Replays recorded bars as if they were arriving live, paced on a wall clock.

Each step yields the bars of every configured symbol that close at the same moment, so the symbols
move in lockstep the way a live feed delivers them. Steps are ``bar_seconds`` of wall time apart.

Pacing keeps a schedule rather than sleeping a fixed amount after each step: the time the consumer
spends on a step is taken out of the wait, so the pace does not drift. A consumer that falls behind
gets the next step at once and the schedule restarts from that moment; missed steps are not fired
off in a burst to catch up.

At the end of the data, ``at_end="stop"`` ends the iteration with a ``ReplayEnd`` status (on the
run's ``end`` attribute and as the ``StopIteration`` value), and ``at_end="loop"`` starts over from
the first bar. A loop shifts every bar time forward by the span of the data (from the earliest open
to just after the latest close, 30 days for the bundled files) once per pass, so the bar times keep
rising and consumers that reject a bar older than the last one still accept them. Prices repeat;
only the times move. ``start_index`` applies to the first pass only; later passes start at
``pass_start`` (0 by default). A replay that is simulated live time starts every pass at the same
step, the end of the history the first model learnt from (``replay_start_step``): the steps before
it are each pass's seed (``ReplayRun.seed_steps``), shifted like the pass.

A replay can also resume: ``resume_after`` is the close time of the last bar a previous run
published, as it was published (shifted, if it was on a later pass of a loop). The run starts with
the step after it, on the same pass, so a restarted feed neither rewinds nor repeats a bar, and
the times it publishes keep rising across the restart. A fresh replay starts at
``REPLAY_START_STEP``: the steps before it are the warm-up history (``ReplayRun.history``).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from trading.marketdata.bars import Bar, interval_length
from trading.marketdata.klines import load_bundled_bars

AtEnd = Literal["stop", "loop"]
Clock = Callable[[], float]
Sleep = Callable[[float], object]  # time.sleep, or Event.wait to stop early
Loader = Callable[[str], Sequence[Bar]]

_ONE_MS = timedelta(milliseconds=1)


def replay_start_step(start_days: float, interval: str) -> int:
    """The step a fresh replay publishes first: the first bar after ``start_days`` of bars of
    ``interval``. The steps before it are history: the bar store's seed and the first model's
    training data, and the last of them the recent bars (no events) that give the ai service its
    features from the first published bar. The one place the start is computed
    (``settings.REPLAY_START_DAYS``)."""
    return round(start_days * 86_400 / interval_length(interval).total_seconds())


@dataclass(frozen=True)
class ReplayConfig:
    """What to replay and how fast.

    ``bar_seconds`` is wall seconds per step (1.0 plays 5-minute bars 300 times faster than live;
    0 plays them as fast as the consumer takes them). ``start_index`` is the step to begin at;
    ``resume_after``, when set, takes its place: the run begins right after the step closing then
    (see the module docstring).
    """

    symbols: tuple[str, ...]
    bar_seconds: float = 1.0
    at_end: AtEnd = "stop"
    start_index: int = 0
    resume_after: datetime | None = None
    pass_start: int = 0

    def __post_init__(self) -> None:
        symbols = (self.symbols,) if isinstance(self.symbols, str) else tuple(self.symbols)
        object.__setattr__(self, "symbols", symbols)
        if not symbols:
            raise ValueError("a replay needs at least one symbol")
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"a symbol is listed twice: {', '.join(symbols)}")
        if not math.isfinite(self.bar_seconds) or self.bar_seconds < 0:
            raise ValueError(f"bar_seconds must be 0 or more, got {self.bar_seconds!r}")
        if self.at_end not in ("stop", "loop"):
            raise ValueError(f"at_end must be 'stop' or 'loop', got {self.at_end!r}")
        if isinstance(self.start_index, bool) or not isinstance(self.start_index, int):
            raise ValueError(f"start_index must be an int, got {self.start_index!r}")
        if self.start_index < 0:
            raise ValueError(f"start_index must be 0 or more, got {self.start_index}")
        if isinstance(self.pass_start, bool) or not isinstance(self.pass_start, int):
            raise ValueError(f"pass_start must be an int, got {self.pass_start!r}")
        if self.pass_start < 0:
            raise ValueError(f"pass_start must be 0 or more, got {self.pass_start}")
        if self.resume_after is not None and self.resume_after.utcoffset() is None:
            raise ValueError(f"resume_after must be an aware datetime, got {self.resume_after!r}")


@dataclass(frozen=True)
class ReplayEnd:
    """Why and where a replay stopped, for the caller to log."""

    reason: Literal["end_of_data"]
    steps: int  # steps yielded by this run
    last_close_time: datetime | None  # of the last bar yielded, None when nothing was

    def __str__(self) -> str:
        last = self.last_close_time.isoformat() if self.last_close_time else "none"
        return f"replay reached the end of the data after {self.steps} steps (last close {last})"


class ReplayRun(Iterator[list[Bar]]):
    """The iterator ``replay_bars`` returns; ``end``, ``steps`` and ``passes`` say how it went."""

    def __init__(self, config: ReplayConfig, timeline: list[list[Bar]], clock: Clock, sleep: Sleep):
        self.config = config
        self.end: ReplayEnd | None = None
        self.steps = 0  # steps yielded so far
        self._timeline = timeline
        self._closes = [step[0].close_time for step in timeline]
        first_open = min(bar.open_time for step in timeline for bar in step)
        last_close = max(bar.close_time for step in timeline for bar in step)
        self.span = last_close + _ONE_MS - first_open
        self._first_open = first_open
        self._clock = clock
        self._sleep = sleep
        # Steps are numbered across passes: step g is timeline[g % n] on pass g // n.
        self._position, self._stop_at = self._start_position()
        self.start = self._position
        # completed passes over the data; rises each time a loop starts over
        self.passes = self._position // len(timeline)
        self._due: float | None = None
        self._last_close: datetime | None = None

    def _start_position(self) -> tuple[int, int]:
        """The first step of the run, and the step at which ``stop`` ends it: the end of the
        pass it starts on (resuming after a pass's last bar is already there)."""
        n = len(self._timeline)
        resume_after = self.config.resume_after
        if resume_after is None:
            return self.config.start_index, n
        passes = max(0, (resume_after - self._first_open) // self.span)
        index = bisect_right(self._closes, resume_after - self.span * passes)
        return passes * n + index, (passes + 1) * n

    def _step(self, position: int) -> list[Bar]:
        passes, index = divmod(position, len(self._timeline))
        step = list(self._timeline[index])  # the caller may keep or change its list
        if passes:
            shift = self.span * passes
            step = [
                replace(bar, open_time=bar.open_time + shift, close_time=bar.close_time + shift)
                for bar in step
            ]
        return step

    def seed_steps(self, passes: int) -> list[list[Bar]]:
        """The steps before ``pass_start`` on pass ``passes``, shifted like that pass: the history
        a pass that starts at ``pass_start`` follows on from."""
        first = passes * len(self._timeline)
        return [self._step(g) for g in range(first, first + self.config.pass_start)]

    def history(self, count: int) -> list[list[Bar]]:
        """Up to ``count`` steps just before the run's first, oldest first, as they were (or
        would have been) published: the recent bars a consumer needs before the first step."""
        return [self._step(g) for g in range(max(0, self.start - count), self.start)]

    def __next__(self) -> list[Bar]:
        if self.end is not None:
            raise StopIteration(self.end)
        if self.config.at_end == "stop" and self._position >= self._stop_at:
            self.end = ReplayEnd("end_of_data", self.steps, self._last_close)
            raise StopIteration(self.end)
        n = len(self._timeline)
        if self._position >= n and self._position % n < self.config.pass_start:
            self._position += self.config.pass_start - self._position % n
        step = self._step(self._position)
        self._wait_for_turn()
        self.passes = self._position // len(self._timeline)
        self._position += 1
        self.steps += 1
        self._last_close = step[0].close_time
        return step

    def _wait_for_turn(self) -> None:
        pace = self.config.bar_seconds
        if pace == 0:
            return
        now = self._clock()
        if self._due is not None and now < self._due:
            self._sleep(self._due - now)
            due = self._due
        else:
            # The first step, or a consumer that fell behind: go now and schedule from here.
            due = now
        self._due = due + pace


def replay_bars(
    config: ReplayConfig, clock: Clock, sleep: Sleep, load: Loader = load_bundled_bars
) -> ReplayRun:
    """Steps of recorded bars, one list per closing moment, paced by ``clock`` and ``sleep``.

    ``clock`` returns monotonic seconds and ``sleep`` waits that many (``time.monotonic`` and
    ``time.sleep``, or an ``Event.wait`` to make the wait interruptible). Each list holds one bar
    per symbol that has a bar closing then, in ``config.symbols`` order. The symbols are loaded
    here, so an unknown symbol or a ``start_index`` past the data raises before the first step.
    """
    by_close: dict[datetime, dict[str, Bar]] = {}
    for symbol in config.symbols:
        for bar in load(symbol):
            by_close.setdefault(bar.close_time, {})[symbol] = bar
    if not by_close:
        raise ValueError(f"no recorded bars for {', '.join(config.symbols)}")
    timeline = [
        [bars[symbol] for symbol in config.symbols if symbol in bars]
        for _, bars in sorted(by_close.items())
    ]
    if config.pass_start >= len(timeline):
        raise ValueError(
            f"pass_start {config.pass_start} is past the data: it has {len(timeline)} steps"
        )
    if config.resume_after is None and config.start_index >= len(timeline):
        raise ValueError(
            f"start_index {config.start_index} is past the data: it has {len(timeline)} steps"
        )
    return ReplayRun(config, timeline, clock, sleep)
