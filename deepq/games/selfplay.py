"""Self-play for two-player games: who moves in the training games (SelfPlay: masked acting, the pool of past
opponents, each game's return logged for the first player), and evaluation games.

SelfPlay is the `Players` of deepq/training/dqn.py's Transitions, which keeps the replay, PER and update plumbing
it shares with single-agent DQN. A game's replay stores the legal moves of s' and discounts by −γ (the game kind's
`discount`, deepq/games/kind.py), since each ply hands the turn to the opponent, whose value is ours negated.

Who plays. By default the learner plays both seats: every ply is chosen ε-greedily among the legal
moves by the current network. With `opponent_pool = K`, the last K snapshots of the network (taken
at target syncs) are kept, and each new game gives one seat, drawn at random, to one snapshot, drawn
at random; it plays ε-greedily too. Every ply is stored, whoever played it: Q-learning is
off-policy, and each ply is a transition from its mover's point of view.

Who is the opponent in the target: with a target network (DQN), that network, an older snapshot of our own,
refreshed every `target_update_interval` env steps (plies): y = r − γ max Q_opponent(s', ·); with PQN, the
network itself, through λ-returns discounted by −γ; with target='mcts', the search's values, the opponent's
negated at each ply (deepq/core/mcts.py).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from deepq.config import Config
from deepq.core.explore import masked_epsilon_greedy
from deepq.errors import ConfigError
from deepq.games.vec import GameVecEnv

if TYPE_CHECKING:
    from deepq.agent import Agent
    from deepq.core.policy import Policy
    from deepq.core.results import EvalResult
    from deepq.games.adapters import PettingZooGame


class OpponentPool:
    """Up to `size` frozen snapshots of the online network, and which one plays which seat of each game."""

    def __init__(self, size: int, num_envs: int) -> None:
        self.size = size
        self.nets: list[nn.Module] = []
        self.pick = np.full(num_envs, -1, dtype=np.int64)  # (N,) snapshot index playing in each game; -1 none
        self.seat = np.zeros(num_envs, dtype=np.int64)  # (N,) the seat it plays

    def add(self, online: nn.Module) -> None:
        """Snapshot the online network (the oldest snapshot goes once there are `size`)."""
        self.nets = [*self.nets, copy.deepcopy(online).requires_grad_(False).eval()][-self.size:]
        self.pick = np.minimum(self.pick, len(self.nets) - 1)  # a game's dropped snapshot -> the oldest kept

    def new_games(self, ended: np.ndarray, rng: np.random.Generator) -> None:
        """Assign a snapshot and a seat to each game that just restarted (all draws happen, even unused)."""
        picks = rng.integers(0, max(len(self.nets), 1), size=len(ended))
        seats = rng.integers(0, 2, size=len(ended))
        self.pick = np.where(ended, picks if self.nets else -1, self.pick)
        self.seat = np.where(ended, seats, self.seat)

    def act(self, actions: np.ndarray, obs: np.ndarray, legal: np.ndarray, to_move: np.ndarray, eps: float,
            rng: np.random.Generator) -> np.ndarray:
        """Replace the learner's actions where a snapshot is to move; one forward pass per snapshot."""
        theirs = (self.pick >= 0) & (to_move == self.seat)  # (N,)
        out = actions.copy()
        for k in np.unique(self.pick[theirs]):
            rows = np.flatnonzero(theirs & (self.pick == k))
            out[rows] = masked_epsilon_greedy(_greedy(self.nets[int(k)]), obs[rows], legal[rows], eps, rng)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"nets": [n.state_dict() for n in self.nets], "pick": torch.from_numpy(self.pick.copy()),
                "seat": torch.from_numpy(self.seat.copy())}

    def load_state_dict(self, state: dict[str, Any], online: nn.Module) -> None:
        self.nets = []
        for weights in state["nets"]:
            self.add(online)
            self.nets[-1].load_state_dict(weights)
        self.pick, self.seat = state["pick"].numpy().copy(), state["seat"].numpy().copy()


def _greedy(net: nn.Module) -> Any:
    """net's greedy legal move for each row: (obs (n, *obs_shape), legal (n, A)) -> (n,)."""
    device = next(net.parameters()).device

    def greedy(obs: np.ndarray, legal: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            q = net(torch.as_tensor(obs, device=device)).float().cpu().numpy()  # (n, A)
        return np.where(legal, q, -np.inf).argmax(axis=1)
    return greedy


class SelfPlay:
    """Who moves in self-play training (see the module doc): the learner everywhere, or with
    cfg.opponent_pool a past snapshot in one seat of each game; ε-greedy among legal moves either way."""

    def __init__(self, envs: GameVecEnv, cfg: Config) -> None:
        self.envs = envs
        self.pool = OpponentPool(cfg.opponent_pool, cfg.num_envs) if cfg.opponent_pool else None

    def act(self, policy: Policy, obs: np.ndarray, eps: float, rng: np.random.Generator,
            q: np.ndarray | None = None) -> np.ndarray:
        return act(policy, self.envs, obs, eps, rng, self.pool, q)  # (N,)

    def logged(self, rewards: np.ndarray) -> np.ndarray:
        """Each game's return for the first player: the mover's reward, signed by the mover's seat."""
        return np.where(self.envs.movers == 0, rewards, -rewards)

    def new_episodes(self, ended: np.ndarray, rng: np.random.Generator) -> None:
        if self.pool is not None:
            self.pool.new_games(ended, rng)  # a snapshot and a seat for each new game

    def target_synced(self, online: nn.Module) -> None:
        if self.pool is not None:
            self.pool.add(online)  # snapshots are taken at target syncs

    def state_dict(self) -> dict[str, Any] | None:
        return self.pool.state_dict() if self.pool is not None else None

    def load_state_dict(self, state: dict[str, Any] | None, online: nn.Module) -> None:
        if self.pool is not None:
            assert state is not None, "a run with an opponent pool checkpoints it"
            self.pool.load_state_dict(state, online)


def act(policy: Policy, envs: GameVecEnv, obs: np.ndarray, eps: float, rng: np.random.Generator,
        pool: OpponentPool | None, q: np.ndarray | None = None) -> np.ndarray:
    """(N,) moves for the players to move: ε-greedy among legal moves (the learner, or a pool snapshot); `q` the
    learner's Q values of obs where the caller has them."""
    actions = policy.explore(obs, eps, rng, envs.legal, q)
    if pool is not None:
        actions = pool.act(actions, obs, envs.legal, envs.to_move, eps, rng)
    return actions


def evaluate_game(agent: Agent, cfg: Config, games_per_seat: int, seed: int,
                  opponent: str | None = None) -> EvalResult:
    """Greedy games against `opponent` (default cfg.eval_opponent) from both seats; returns are the
    agent's results, +1 win, 0 draw, −1 loss, and the protocol line gives the per-seat record."""
    from deepq.core.results import EvalResult
    from deepq.games.adapters import OpenSpielGame, make_game

    opponent = opponent or cfg.eval_opponent
    assert isinstance(cfg.env, str)
    game = make_game(cfg.env)  # cfg.env, which evaluate(env=...) may have set to another game than the agent's
    if (game.obs_shape, game.n_actions) != (agent.obs_shape, agent.n_actions):
        raise ConfigError(f"{cfg.env!r} has observations {game.obs_shape} and {game.n_actions} actions; the agent "
                          f"was trained on {agent.obs_shape} and {agent.n_actions}")
    was_training = agent.online.training
    agent.online.eval()  # noisy nets play on their mean weights
    try:
        if isinstance(game, OpenSpielGame):
            from deepq.games.arena import arena
            from deepq.games.bot import AgentBot

            result = arena(game.game, lambda player: AgentBot(agent, game), opponent_factory(game.game, opponent, seed),
                           games_per_seat, seed=seed)
            returns = [1.0] * result.wins + [0.0] * result.draws + [-1.0] * result.losses
            seats = tuple((s.wins - s.losses) / max(1, s.games) for s in result.seats)
            return EvalResult(returns, protocol=f"greedy agent {result}", seats=seats)  # type: ignore[arg-type]
        return _pettingzoo_vs_random(agent, game, games_per_seat, seed)
    finally:
        agent.online.train(was_training)


def opponent_factory(game: Any, name: str, seed: int) -> Any:
    """'random', 'perfect' or 'mcts:N' -> a factory (player id) -> pyspiel.Bot."""
    from deepq.games import arena
    from deepq.games.limits import opponent_simulations

    simulations = opponent_simulations(name, "eval_opponent")
    if simulations is not None:
        return arena.mcts_opponent(game, simulations, seed)
    if name == "random":
        return arena.random_opponent(game, seed)
    return arena.perfect_opponent(game, seed)


def _pettingzoo_vs_random(agent: Agent, game: PettingZooGame, games_per_seat: int, seed: int) -> EvalResult:
    from deepq.core.explore import random_legal
    from deepq.core.results import EvalResult

    rng = np.random.default_rng(seed)
    returns, record = [], [[0, 0, 0], [0, 0, 0]]  # per seat: wins, draws, losses
    for i in range(2 * games_per_seat):
        seat = i % 2
        game.reset(int(rng.integers(2**31)))
        while not game.is_terminal:
            legal = game.legal_mask()
            if game.to_move == seat:
                a = agent.act(game.observation(), legal)
            else:
                a = int(random_legal(legal[None], rng)[0])
            game.step(a)
        r = float(np.sign(game.returns()[seat]))
        returns.append(r)
        record[seat][0 if r > 0 else 1 if r == 0 else 2] += 1
    seats = ", ".join(f"as {'first' if s == 0 else 'second'} player {w}W {d}D {lo}L"
                      for s, (w, d, lo) in enumerate(record))
    means = tuple((w - lo) / max(1, w + d + lo) for w, d, lo in record)
    return EvalResult(returns, protocol=f"greedy agent vs random: {seats}", seats=means)  # type: ignore[arg-type]
