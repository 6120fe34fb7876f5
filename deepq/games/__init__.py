"""Two-player games by self-play: adapters (OpenSpiel, PettingZoo), the arena, a trained agent as a
pyspiel.Bot, terminal play.

    agent = deepq.train(deepq.preset("tictactoe", seed=0))
    bot = deepq.games.as_bot(agent)        # a pyspiel.Bot: bot.step(state) -> legal action

Attributes load lazily, so `import deepq` does not need OpenSpiel installed.
"""

from __future__ import annotations

from typing import Any

__all__ = ["as_bot", "make_game"]  # the arena: deepq.games.arena (a module)


def __getattr__(name: str) -> Any:
    if name == "as_bot":
        from deepq.games.bot import as_bot

        return as_bot
    if name == "make_game":
        from deepq.games.adapters import make_game

        return make_game
    raise AttributeError(f"module 'deepq.games' has no attribute {name!r}")
