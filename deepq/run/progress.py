"""Live progress: a rich bar on a terminal, periodic plain lines otherwise. A side channel."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """update() is cheap enough to call every few hundred steps; it redraws at most a few times a second."""

    def __init__(self, total: int, start: int = 0, enabled: bool = True, title: str = "training",
                 plain_every_s: float = 10.0, return_label: str = "return") -> None:
        self.total, self.enabled, self.title, self.return_label = total, enabled, title, return_label
        self.start_step, self.start_time = start, time.perf_counter()
        self._last_plain = self.start_time
        self._last_printed = -1  # the step of the last plain line: the final one is printed once
        self.plain_every_s = plain_every_s
        self._bar: Any = None
        self._updates_start: int | None = None  # gradient steps when updates/s started counting
        if enabled and sys.stdout.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[stats]}"), TimeRemainingColumn(), transient=False)
            self._task = self._bar.add_task(title, total=total, completed=start, stats="")
            self._bar.start()

    def steps_per_sec(self, step: int) -> float:
        dt = time.perf_counter() - self.start_time
        return (step - self.start_step) / dt if dt > 0 else 0.0

    def update(self, step: int, eps: float, recent_return: float | None, last_eval: float | None,
               updates: int | None = None) -> None:
        """`updates`: gradient steps so far, shown as updates/s (distributed runs, where it is not implied)."""
        if not self.enabled:
            return
        stats = f"{self.steps_per_sec(step):,.0f} steps/s  ε {eps:.3f}"
        if updates is not None:
            if self._updates_start is None:
                self._updates_start = updates  # at the first call: 0, or a resumed run's count
            dt = time.perf_counter() - self.start_time  # the same window as steps/s
            stats += f"  {(updates - self._updates_start) / dt if dt > 0 else 0:,.0f} updates/s"
        if recent_return is not None:
            stats += f"  {self.return_label} {recent_return:.1f}"
        if last_eval is not None:
            stats += f"  eval {last_eval:.1f}"
        if self._bar is not None:
            self._bar.update(self._task, completed=step, stats=stats)
            return
        now = time.perf_counter()
        if now - self._last_plain >= self.plain_every_s or (step >= self.total and step != self._last_printed):
            self._last_plain, self._last_printed = now, step
            sps = self.steps_per_sec(step)
            eta = max(0, self.total - step) / sps if sps > 0 else float("nan")  # episodic modes may overshoot
            print(f"[{self.title}] step {step:,}/{self.total:,} ({100 * step / self.total:.0f}%)  {stats}"
                  f"  ETA {eta:,.0f}s", flush=True)

    def finish(self, step: int, why: str) -> None:
        """The run ended at `step` (maybe before total: solved, time limit): the bar shows it complete,
        with no time remaining, and one line says why it ended."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, total=max(step, 1), completed=step)
        self.message(f"training ended at step {step:,}: {why}")

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
