"""The two-player game kind ('openspiel:<game>', 'pettingzoo:<game>'), named by id prefix in GAME_KINDS, the table
deepq/training/setup.py resolves every run's env with (deepq/envs/kinds.py's `resolve` takes it as an argument), so
the env layer resolves game ids without importing the games, and nothing registers itself on import.

What a game changes: self-play on GameVecEnv (one ply per step, legal masks, −γ targets: deepq/games/selfplay.py),
or for Connect Four with cfg.backend 'auto' or 'numpy' on deepq's NumPy Connect4Vec (the same plies, all games at
once: deepq/games/numpy_connect4.py); the adapter itself as the searchable env; evaluation games against
cfg.eval_opponent from both seats (always on the adapters); and the Config fields that do not apply to games
(checked at set-up, before anything is written).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepq.config import Config
from deepq.core.networks import resolve_arch
from deepq.envs.base import AUTO_NUMPY_MIN_ENVS
from deepq.envs.kinds import EnvKind, PrefixKinds
from deepq.errors import ConfigError
from deepq.games.adapters import Game, OpenSpielGame, make_game
from deepq.games.limits import opponent_simulations
from deepq.games.numpy_connect4 import GAME_ID as CONNECT4_ID
from deepq.games.numpy_connect4 import Connect4Vec
from deepq.games.vec import GameVecEnv

if TYPE_CHECKING:
    import torch

    from deepq.agent import Agent
    from deepq.core.results import EvalResult
    from deepq.games.selfplay import SelfPlay

PREFIXES = ("openspiel:", "pettingzoo:")
NUMPY_GAMES = (CONNECT4_ID,)  # the games with a NumPy vector env (cfg.backend 'auto' or 'numpy' trains on it)


MIRRORED = ("openspiel:connect_four", "openspiel:tic_tac_toe")  # cfg.mirror's games: their moves are columns, cells


class GameKind(EnvKind):
    """A two-player, alternating, zero-sum game through its adapter (deepq/games/adapters.py)."""

    two_player = True
    return_label = "1st-player return"  # each game's return for the first player (the mover's reward, by seat)

    def __init__(self, spec: str) -> None:
        super().__init__(spec)
        self.game_id: str = spec
        self.name = spec.partition(":")[0]  # 'openspiel' or 'pettingzoo'

    def check(self, cfg: Config) -> None:
        """The fields that do not apply to games; eval_opponent other than 'random' needs OpenSpiel, 'mcts:N' a
        bounded N, 'perfect' a game small enough to solve."""
        for name, ok, why in (("frame_stack", cfg.frame_stack == 1, "1: a game position is its own history"),
                              ("backend", cfg.backend != "envpool",
                               "'auto', 'numpy' or 'gymnasium' (EnvPool is Atari only)"),
                              ("episodic_life", not cfg.episodic_life, "False (Atari only)"),
                              ("clip_rewards", not cfg.clip_rewards, "False (game rewards are already -1/0/1)")):
            if not ok:
                raise ConfigError(f"{name}={getattr(cfg, name)!r} does not apply to the two-player game "
                                  f"{cfg.env!r}: use {why}")
        numpy_games_only(self.game_id, cfg.backend)
        if cfg.mirror and (cfg.target != "pqn" or self.game_id not in MIRRORED):
            raise ConfigError(f"mirror=True needs target='pqn' and one of {', '.join(MIRRORED)} (boards whose "
                              f"left-right mirror image is the same game); this run has target={cfg.target!r} and "
                              f"{cfg.env!r}")
        opponent_simulations(cfg.eval_opponent, "eval_opponent")  # bounded: 'mcts:1e12' would never finish a move
        if cfg.eval_opponent != "random" and self.name != "openspiel":
            raise ConfigError(f"eval_opponent={cfg.eval_opponent!r} needs an OpenSpiel game (its MCTS bot and "
                              f"minimax work on OpenSpiel states); {cfg.env!r} can use eval_opponent='random'")
        if cfg.eval_opponent == "perfect":  # solved now (34 ms for tic_tac_toe, kept), not at the first evaluation
            from deepq.games.solve import shared_solver

            game = self.make_game()
            assert isinstance(game, OpenSpielGame)
            shared_solver(game.game)

    def make_game(self) -> Game:
        """The adapter (an unknown or unsupported game is a ConfigError here)."""
        return make_game(self.game_id)

    def make_vec_env(self, cfg: Config) -> GameVecEnv | Connect4Vec:
        """cfg.num_envs games for self-play, one ply per step: deepq's NumPy env where the game has one and
        cfg.backend is 'auto' or 'numpy', else the adapters' (OpenSpiel's or PettingZoo's games one by one)."""
        numpy_games_only(self.game_id, cfg.backend)
        auto = cfg.backend == "auto" and cfg.num_envs >= AUTO_NUMPY_MIN_ENVS  # 1-3 games: OpenSpiel's is faster
        if self.game_id in NUMPY_GAMES and (cfg.backend == "numpy" or auto):
            return Connect4Vec(cfg.num_envs, cfg.seed)
        return GameVecEnv(self.game_id, cfg.num_envs, cfg.seed)

    def make_search_env(self, cfg: Config) -> Game:
        return self.make_game()  # the adapters clone exactly: a game is its own searchable state

    def arch(self, cfg: Config, obs_shape: tuple[int, ...]) -> str:
        """'auto' gives boards the MLP (the small CNN's unpadded 3x3 filter leaves 1x1 of tic-tac-toe)."""
        return resolve_arch(obs_shape, cfg.arch, board=True)

    def mirror(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each position's left-right mirror image and its mirrored moves (cfg.mirror: the game is the same game
        in the mirror, so is what a move there is worth): obs (B, C, H, W) flipped along W; a move into column c
        (Connect Four) or onto cell r·W + c (tic-tac-toe) becomes W − 1 − c, r·W + W − 1 − c."""
        width = obs.shape[-1]
        col = actions % width  # (B,) the move's column (Connect Four's moves are columns: a − col = 0)
        return obs.flip(-1), actions - col + (width - 1 - col)

    def discount(self, gamma: float) -> float:
        """−γ: s' is the opponent's turn, and what it is worth to the opponent is, in a zero-sum game, what it is
        worth to us negated, so y = r − γ · max_a' Q_opponent(s', a') (losses.td_target; the replay, PQN's
        λ-returns and an actor's n-step sums all store this)."""
        return -gamma

    def self_play(self, envs: GameVecEnv | Connect4Vec, cfg: Config) -> SelfPlay:
        """Who moves in the training games and how their plies are stored and logged (deepq/games/selfplay.py)."""
        from deepq.games.selfplay import SelfPlay

        # SelfPlay reads only the attributes both envs have (legal, movers, to_move); its annotation names GameVecEnv
        return SelfPlay(envs, cfg)  # type: ignore[arg-type]

    def episodes_text(self, episodes: int) -> str:
        return f"{episodes} games from each seat"

    def evaluate(self, agent: Agent, cfg: Config, games_per_seat: int, seed: int,
                 opponent: str | None = None) -> EvalResult:
        """Greedy games against `opponent` (default cfg.eval_opponent) from both seats; +1 win, 0 draw, −1 loss."""
        from deepq.games.selfplay import evaluate_game

        return evaluate_game(agent, cfg, games_per_seat, seed, opponent)


def numpy_games_only(game_id: str, backend: str) -> None:
    """backend='numpy' needs a game with a NumPy vector env: one ConfigError line otherwise."""
    if backend == "numpy" and game_id not in NUMPY_GAMES:
        raise ConfigError(f"backend='numpy' has no NumPy env for {game_id!r}; the games with one: "
                          f"{', '.join(repr(g) for g in NUMPY_GAMES)}. Use --backend gymnasium (or 'auto') "
                          "to train on the reference env")


GAME_KINDS: PrefixKinds = dict.fromkeys(PREFIXES, GameKind)  # what deepq/training/setup.py resolves game ids with
