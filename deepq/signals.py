"""Signals that stop deepq: SIGINT (Ctrl-C), SIGTERM (what cluster schedulers send before they kill) and SIGHUP
(the terminal closed). Every stage of every command answers them the same way: one line saying what was kept,
exit 128 + the signal's number, nothing left running.

`Interrupts` is the one handler. Outside `deferred()` a signal raises RunInterrupted at once, so `finally` blocks
release locks, shut Ray down and remove what set-up made. Inside it (the training loop) the first signal only sets
a flag that the loop checks between steps, so its checkpoint is consistent (waits inside the loop poll
`requested`), and puts back the handlers found on entry, so a second signal acts as it would without deepq's:
the command line's raises at once, Python's default SIGTERM kills. This module is the base layer's: it imports
nothing from deepq but errors.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from deepq.errors import RunInterrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def name(signum: int) -> str:
    """'SIGTERM' for 15."""
    return signal.Signals(signum).name


class Interrupts:
    """SIGINT, SIGTERM and SIGHUP handled while the context is entered (main thread only: Python runs handlers
    there); the handlers found on entry are put back on exit."""

    OVERDUE_S = 5.0  # a deferred signal waits this long for the loop's next check, then stops it where it is

    def __init__(self) -> None:
        self.signum: int | None = None  # the first signal received inside deferred()
        self.deferring = False
        self.overdue = False  # the loop did not reach its check within OVERDUE_S of the signal
        self._old: dict[int, Any] = {}
        self._old_alarm: Any = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        self.disarm()
        self._put_back()
        self._old = {}

    def _put_back(self) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)

    @contextmanager
    def deferred(self) -> Iterator[Interrupts]:
        """Within: the first signal sets `signum` for the caller to act on between steps; a second raises, and so
        does the first if no step boundary came within OVERDUE_S (a step made long by a setting: 10^9 gradient
        steps, a search of 10^9 simulations, an evaluation of 10^7 episodes must not hold a stop up). Setting
        `deferring` before entering starts the stage earlier (the training loop's set-up, once the run has files)."""
        self.deferring = True
        try:
            yield self
        finally:
            self.deferring = False
            self.disarm()

    def disarm(self) -> None:
        """The caller reached its check (or has only saving left): no stop where it is."""
        if self._old_alarm is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._old_alarm)
            self._old_alarm = None

    def raise_if_requested(self) -> None:
        """RunInterrupted for a signal deferred earlier (a stage that has nothing to save stops here)."""
        if self.signum is not None:
            raise RunInterrupted(self.signum)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.deferring and self.signum is None:
            self.signum = signum
            self._put_back()  # a second signal is not deferred
            if hasattr(signal, "setitimer"):
                self._old_alarm = signal.signal(signal.SIGALRM, self._overdue)
                signal.setitimer(signal.ITIMER_REAL, self.OVERDUE_S)
            return
        self.signum = self.signum or signum
        raise RunInterrupted(signum)

    def _overdue(self, signum: int, frame: Any) -> None:
        self.overdue = True
        self.disarm()
        raise RunInterrupted(self.signum or signal.SIGTERM)


class Noted(list[int]):
    """The signals noted, in order; itself the handler that notes them."""

    def __call__(self, signum: int, frame: Any) -> None:
        self.append(signum)

    def again(self) -> None:
        """Note them again, after code that set its own handler (ray.init sets SIGTERM's to sys.exit)."""
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                signal.signal(s, self)


@contextmanager
def noted() -> Iterator[Noted]:
    """Inside, each signal is only appended to the list yielded; the handlers before are put back on the way out."""
    signals = Noted()
    with handlers(signals):
        yield signals


@contextmanager
def handlers(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """Inside, `handler` answers SIGINT, SIGTERM and SIGHUP (main thread only); the handlers before are put back."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    old = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, previous in old.items():
            signal.signal(s, previous)
