"""How deepq sweep, compare and tune stop on SIGINT (Ctrl-C), SIGTERM (what a scheduler sends before it kills)
and SIGHUP (the terminal closed): one line on stderr saying what stopped and what was kept, then the exit code
128 + the signal's number (deepq/cli.py's main returns it for a KeyboardInterrupt carrying .signum).

`raising` stops the code where it is (the finally blocks on the way out run); `noted` only records the signals,
for code that must not be cut in the middle (starting Ray, creating a database's tables, a loop that passes the
signal on to its runs) and acts on them where it is safe.
"""

from __future__ import annotations

import contextlib
import re
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TextIO

from deepq.errors import RunInterrupted
from deepq.signals import handlers, name


class Stopped(RunInterrupted):
    """A stop whose one line has been printed: nothing on the way out prints another (`reported`, which
    deepq/cli.py's main reads)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.reported = True


def stop(signum: int, line: str) -> NoReturn:
    """Print the stop's one line and go up as a KeyboardInterrupt: the CLI exits with 128 + signum."""
    print(line, file=sys.stderr, flush=True)
    raise Stopped(signum)


@contextlib.contextmanager
def raising(line: Callable[[str], str]) -> Iterator[None]:
    """Inside, each signal raises RunInterrupted where the code is; a stop that leaves the block unsaid is said
    as line(the signal's name)."""
    def handle(signum: int, frame: Any) -> None:
        raise RunInterrupted(signum)

    with handlers(handle):
        try:
            yield
        except KeyboardInterrupt as e:
            if getattr(e, "reported", False):  # said already, by this or by what it ran
                raise
            signum = int(getattr(e, "signum", signal.SIGINT))
            stop(signum, line(name(signum)))


# The training loop's own lines when a signal stops it (at a step, in set-up, in the final evaluation): they name
# `deepq train --resume` or `deepq eval`, which are not how a tune trial goes on (the same `deepq tune` command
# continues it), so tune drops them and says its own.
TRAIN_STOP = re.compile(r"stopped by SIG[A-Z]+ (at step|during) ")


class WithoutLines:
    """A text stream that passes what is written on to `to`, less the whole lines that `drop` matches."""

    def __init__(self, to: TextIO, drop: re.Pattern[str]) -> None:
        self.to, self.drop, self.held = to, drop, ""

    def write(self, text: str) -> int:
        *lines, self.held = (self.held + text).split("\n")  # a print writes its text, then its newline
        for line in lines:
            if not self.drop.match(line):
                self.to.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        if self.held and not self.drop.match(self.held):
            self.to.write(self.held)
        self.held = ""
        self.to.flush()

    def __getattr__(self, attr: str) -> Any:  # fileno, isatty, encoding ...: the stream's own
        return getattr(self.to, attr)


@contextlib.contextmanager
def stderr_without(drop: re.Pattern[str]) -> Iterator[None]:
    """sys.stderr, inside, without the lines that `drop` matches."""
    stream = WithoutLines(sys.stderr, drop)
    try:
        with contextlib.redirect_stderr(stream):  # type: ignore[type-var]
            yield
    finally:
        stream.flush()
