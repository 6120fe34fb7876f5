"""A trained agent as a `pyspiel.Bot`, so OpenSpiel's own tools (evaluate_bots, its MCTS bot,
human play) work with it unchanged."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pyspiel

from deepq.components import mcts_config
from deepq.config_checks import SEED
from deepq.core.mcts import MCTS
from deepq.errors import ConfigError
from deepq.games.adapters import OpenSpielGame
from deepq.games.limits import SEARCH, TEMPERATURE, search_bytes

if TYPE_CHECKING:
    from deepq.agent import Agent


class AgentBot(pyspiel.Bot):  # type: ignore[misc]
    """Plays the agent's greedy legal move (temperature 0), or samples softmax(Q / temperature) over the
    legal moves; the position is encoded exactly as in training (from the player to move).
    With `search` (a Q-guided MCTS), plays the search's most visited move instead."""

    def __init__(self, agent: Agent, game: OpenSpielGame, temperature: float = 0.0, seed: int = 0,
                 search: MCTS | None = None) -> None:
        pyspiel.Bot.__init__(self)
        TEMPERATURE("temperature", temperature)  # nan or inf would make every sampling probability nan
        SEED("seed", seed)
        self.agent, self.game = agent, game
        self.temperature = temperature
        self.rng = np.random.default_rng(seed)
        self.search = search

    def q_values(self, state: Any) -> np.ndarray:
        """(A,) the agent's Q values for the player to move, −inf on illegal actions."""
        player = state.current_player()
        q = self.agent.q_values(self.game.encode(state, player)).astype(np.float64)  # (A,)
        return np.where(self.game.legal(state), q, -np.inf)

    def step(self, state: Any) -> int:
        if self.search is not None:
            return self.search.search(self.game.at(state)).action(self.temperature)
        q = self.q_values(state)
        if self.temperature == 0:
            return int(np.argmax(q))
        z = (q - q.max()) / self.temperature  # (A,) −inf stays −inf: probability 0
        p = np.exp(z)
        return int(self.rng.choice(len(p), p=p / p.sum()))

    def restart_at(self, state: Any) -> None:
        pass

    def inform_action(self, state: Any, player_id: int, action: int) -> None:
        pass

    def provides_policy(self) -> bool:
        return False


def game_of(agent: Agent) -> OpenSpielGame:
    """The OpenSpiel game an agent was trained on."""
    env = agent.cfg.env
    if not (isinstance(env, str) and env.startswith("openspiel:")):
        raise ConfigError(f"this agent was trained on {env!r}, not an OpenSpiel game ('openspiel:<game>'); "
                          "only OpenSpiel agents can play as a pyspiel.Bot")
    return OpenSpielGame(env.partition(":")[2])


def as_bot(agent: Agent, temperature: float = 0.0, seed: int = 0, mcts_simulations: int = 0) -> AgentBot:
    """The agent as a pyspiel.Bot: `bot.step(state)` returns its move for the player to move.

    temperature 0 plays the greedy legal move; > 0 samples softmax(Q / temperature) over legal moves
    (varied games, e.g. agent against agent, whose greedy games would all be the same).
    mcts_simulations > 0: search-augmented play, a Q-guided MCTS with that many simulations per move
    (the agent's mcts_* settings), playing the most visited move (temperature > 0: sampled ∝ visits^(1/T)).
    Checked before the game is loaded (ConfigError): temperature a finite number >= 0, seed in [0, 2**32 − 1],
    mcts_simulations an integer from 0 to 1,000,000 (about 80 s a move on connect_four) whose search tree fits
    in memory (deepq/games/limits.py).
    """
    TEMPERATURE("temperature", temperature)  # all three before the game is loaded: the cheap mistakes first
    SEED("seed", seed)
    SEARCH("mcts_simulations", mcts_simulations)
    game = game_of(agent)
    search = None
    if mcts_simulations > 0:
        _check_search_memory(mcts_simulations, game.n_actions)
        search = MCTS(agent.q_values, replace(mcts_config(agent.cfg, seed), simulations=mcts_simulations),
                      two_player=True)
    return AgentBot(agent, game, temperature, seed, search)


def _check_search_memory(simulations: int, n_actions: int) -> None:
    """The search tree of one move must fit this machine's memory (chess: ~300 kB a simulation)."""
    from deepq.memory import Need, available_bytes, refuse

    refuse([Need("the search tree of one move", f"mcts_simulations={simulations:,}", "lower mcts_simulations "
                 "(deepq play --mcts N)", search_bytes(simulations, n_actions))], available_bytes(), "this machine")
