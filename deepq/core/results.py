"""What an evaluation returns: a leaf that evaluation, self-play and the run log all use."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class EvalResult:
    returns: list[float]  # raw scores (never clipped)
    lengths: list[int] = field(default_factory=list)  # agent steps
    protocol: str = ""  # how the episodes were played, e.g. "eps=0.05, up to 30 no-op starts, ..."
    seats: tuple[float, float] | None = None  # two-player games: mean score (+1/0/−1) playing first, second

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))

    def __str__(self) -> str:
        how = f" ({self.protocol})" if self.protocol else ""
        return f"mean {self.mean:.2f} ± {self.std:.2f} over {len(self.returns)} episodes{how}"
