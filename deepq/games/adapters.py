"""Two-player game adapters: one small interface over OpenSpiel and PettingZoo classic games.

A game is seen from the player to move: `observation()` encodes the position for that player and
`legal_mask()` marks that player's legal actions. `step(a)` plays the mover's action and returns
the mover's reward for it. Supported: 2-player, zero-sum, turn-based, perfect-information games
whose turns strictly alternate (checked on every move).

Env ids: 'openspiel:<game>' (any pyspiel game string, e.g. 'openspiel:tic_tac_toe',
'openspiel:breakthrough(rows=6,columns=6)') and 'pettingzoo:<module>' for PettingZoo classic
AEC games (e.g. 'pettingzoo:tictactoe_v3' or its registry id 'pettingzoo:classic/tictactoe-v3').
"""

from __future__ import annotations

import copy
import difflib
import importlib
import re
import warnings
from typing import Any

import numpy as np

from deepq.errors import ConfigError

# OpenSpiel games whose observation tensor is one plane per player (plus others): reordered so the
# mover's own pieces always come first, a truly perspective-relative input (both seats share what
# they learn). Values: (plane of player 0's pieces, plane of player 1's pieces).
PLAYER_PLANES = {"tic_tac_toe": (2, 1), "connect_four": (0, 1)}


class OpenSpielGame:
    """A pyspiel game as deepq sees it; `state` is the live pyspiel.State (cloneable)."""

    def __init__(self, name: str) -> None:
        import pyspiel

        from deepq.games.loading import load_game, quiet_spiel

        self.game = load_game(name)  # unknown names, bad parameters and impossible sizes: one ConfigError
        t = self.game.get_type()
        problems = [what for what, ok in (
            ("2 players", self.game.num_players() == 2),
            ("zero-sum", t.utility in (pyspiel.GameType.Utility.ZERO_SUM, pyspiel.GameType.Utility.CONSTANT_SUM)),
            ("turn-based", t.dynamics == pyspiel.GameType.Dynamics.SEQUENTIAL),
            ("perfect information", t.information == pyspiel.GameType.Information.PERFECT_INFORMATION),
            ("an observation tensor", t.provides_observation_tensor)) if not ok]
        if problems:
            raise ConfigError(f"OpenSpiel game {name!r} is not supported by deepq's self-play: it needs "
                              f"{', '.join(problems)}")
        self.name = name
        self.short_name = t.short_name
        self.n_actions = self.game.num_distinct_actions()
        self._planes = PLAYER_PLANES.get(t.short_name)
        tensor = tuple(self.game.observation_tensor_shape())
        # Other games get a constant plane (or one feature) saying which player is to move.
        if self._planes is not None:
            self.obs_shape = tensor
        elif len(tensor) == 3:
            self.obs_shape = (tensor[0] + 1, *tensor[1:])
        else:
            self.obs_shape = (int(np.prod(tensor)) + 1,)
        self._tensor_shape = tensor
        self._rng = np.random.default_rng(0)
        self._chance = t.chance_mode != pyspiel.GameType.ChanceMode.DETERMINISTIC
        with quiet_spiel(name):  # some parameters are only checked, by a SpielError, when a state is made
            self.state = self.game.new_initial_state()
        if self.state.is_terminal():
            raise ConfigError(f"OpenSpiel game {name!r} ends before its first move: check its parameters")
        self.to_move = 0  # the player to move; after the game ends, the one who would have moved next

    def reset(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)  # chance nodes (games with dice or deals)
        self.state = self.game.new_initial_state()
        self._resolve_chance()
        self.to_move = self.state.current_player()

    def _resolve_chance(self) -> None:
        while self.state.is_chance_node():
            actions, probs = zip(*self.state.chance_outcomes(), strict=True)
            self.state.apply_action(int(self._rng.choice(actions, p=probs)))

    @property
    def is_terminal(self) -> bool:
        return bool(self.state.is_terminal())

    def encode(self, state: Any, player: int) -> np.ndarray:
        """The position as `player` sees it, as a float32 array of obs_shape."""
        x = np.asarray(state.observation_tensor(player), dtype=np.float32).reshape(self._tensor_shape)
        if self._planes is not None:
            mine, theirs = self._planes if player == 0 else self._planes[::-1]
            rest = [i for i in range(len(x)) if i not in (mine, theirs)]
            return x[[mine, theirs, *rest]]
        if len(self.obs_shape) == 3:
            return np.concatenate([x, np.full((1, *x.shape[1:]), player, np.float32)])
        return np.append(x.ravel(), np.float32(player))

    def legal(self, state: Any) -> np.ndarray:
        """(A,) bool: the legal actions of the player to move; all False at a terminal state."""
        mask = np.zeros(self.n_actions, dtype=bool)
        if not state.is_terminal():
            mask[state.legal_actions()] = True
        return mask

    def observation(self) -> np.ndarray:
        return self.encode(self.state, self.to_move)

    def legal_mask(self) -> np.ndarray:
        return self.legal(self.state)

    def step(self, action: int) -> float:
        mover = self.to_move
        self.state.apply_action(int(action))
        self._resolve_chance()
        if self.state.is_terminal():
            self.to_move = 1 - mover
            return float(self.state.returns()[mover])
        self.to_move = self.state.current_player()
        if self.to_move == mover:
            raise ConfigError(f"{self.name}: player {mover} moved twice in a row; deepq's self-play target "
                              "(the opponent's value, negated) needs strictly alternating turns")
        return float(self.state.rewards()[mover])

    def returns(self) -> list[float]:
        return [float(r) for r in self.state.returns()]

    def at(self, state: Any) -> OpenSpielGame:
        """An adapter positioned at a copy of the pyspiel `state` (of this game), e.g. to search from it."""
        other = self.clone()
        other.state = state.clone()
        other.to_move = state.current_player() if not state.is_terminal() else 0
        return other

    def clone(self) -> OpenSpielGame:
        other = copy.copy(self)
        other.state = self.state.clone()
        if self._chance:  # a deterministic game never draws from it: sharing is safe and saves half a search
            other._rng = copy.deepcopy(self._rng)
        return other


class PettingZooGame:
    """A PettingZoo classic AEC game; observations come with their `action_mask`."""

    def __init__(self, name: str) -> None:
        self.env = _pettingzoo_env(name)
        self.name = name
        self.short_name = name
        self.env.reset(seed=0)
        self.agents = list(self.env.possible_agents)
        if len(self.agents) != 2:
            raise ConfigError(f"PettingZoo game {name!r} has {len(self.agents)} agents; self-play needs 2")
        first = self.env.observation_space(self.agents[0])
        if not hasattr(first, "spaces") or "action_mask" not in first.spaces:
            raise ConfigError(f"PettingZoo game {name!r} has no action_mask in its observations; deepq needs it "
                              "to mask illegal actions")
        self.n_actions = int(self.env.action_space(self.agents[0]).n)
        shape = first["observation"].shape
        self.obs_shape = (shape[2], shape[0], shape[1]) if len(shape) == 3 else tuple(shape)  # channels first
        self.to_move = 0
        self._done = False
        self._returns = [0.0, 0.0]

    def reset(self, seed: int) -> None:
        self.env.reset(seed=seed)
        self.to_move = self.agents.index(self.env.agent_selection)
        self._done = False
        self._returns = [0.0, 0.0]

    @property
    def is_terminal(self) -> bool:
        return self._done

    def _encode(self, obs: Any) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float32)
        return np.ascontiguousarray(np.moveaxis(x, -1, 0)) if x.ndim == 3 else x

    def observation(self) -> np.ndarray:
        return self._encode(self.env.observe(self.agents[self.to_move])["observation"])

    def legal_mask(self) -> np.ndarray:
        if self._done:
            return np.zeros(self.n_actions, dtype=bool)
        return np.asarray(self.env.observe(self.agents[self.to_move])["action_mask"], dtype=bool)

    def step(self, action: int) -> float:
        mover = self.to_move
        name = self.agents[mover]
        self.env.step(int(action))
        reward = float(self.env.rewards[name])
        for i, a in enumerate(self.agents):  # a move can reward both players (a win is the other's loss)
            self._returns[i] += float(self.env.rewards[a])
        self._done = any(self.env.terminations.values()) or any(self.env.truncations.values())
        if self._done:
            self.to_move = 1 - mover
            return reward
        self.to_move = self.agents.index(self.env.agent_selection)
        if self.to_move == mover:
            raise ConfigError(f"{self.name}: {name} moved twice in a row; deepq's self-play target needs "
                              "strictly alternating turns")
        return reward

    @property
    def truncated(self) -> bool:
        return self._done and not any(self.env.terminations.values())

    def returns(self) -> list[float]:
        return list(self._returns)

    def clone(self) -> PettingZooGame:
        return copy.deepcopy(self)


def _pettingzoo_env(name: str) -> Any:
    """A classic AEC env by registry id ('classic/tictactoe-v3') or module name ('tictactoe_v3')."""
    import pettingzoo
    from pettingzoo.env_registry.registration import aec_registry

    base, _, version = name.rpartition("_v")
    env_id = name if "/" in name else f"classic/{base}-v{version}"
    if env_id in aec_registry:
        return pettingzoo.make("aec", env_id)
    module = None
    if re.fullmatch(r"[a-z0-9_]+_v\d+", name):  # a module name; a subpackage such as 'tictactoe' has no env()
        try:
            with warnings.catch_warnings():  # importing the module directly is PettingZoo's older way
                warnings.simplefilter("ignore", DeprecationWarning)
                module = importlib.import_module(f"pettingzoo.classic.{name}")
        except ImportError:
            pass
    if module is not None and callable(getattr(module, "env", None)):
        return module.env()
    known = [k.partition("/")[2].replace("-v", "_v") for k in aec_registry if k.startswith("classic/")]
    close = difflib.get_close_matches(name.strip().lower(), known, n=2)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    raise ConfigError(f"PettingZoo has no classic game {name!r}{hint}; classic games: {', '.join(known)} "
                      "(pip install 'deepq[games]')")


Game = OpenSpielGame | PettingZooGame


def make_game(spec: str) -> Game:
    """'openspiel:<game string>' or 'pettingzoo:<classic module>' -> an adapter."""
    kind, _, name = spec.partition(":")
    if not name:
        raise ConfigError(f"env={spec!r} names no game: use e.g. 'openspiel:tic_tac_toe' or 'pettingzoo:tictactoe_v3'")
    try:
        if kind == "openspiel":
            import pyspiel  # noqa: F401
        else:
            import pettingzoo  # noqa: F401
    except ImportError:
        raise ConfigError(f"env={spec!r} needs the {kind} package: pip install 'deepq[games]'") from None
    return OpenSpielGame(name) if kind == "openspiel" else PettingZooGame(name)
