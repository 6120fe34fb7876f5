"""Matches between bots on 2-player OpenSpiel games, always over both seats and reported per seat.

How the numbers are made meaningful:

* Seats. Many games favour one seat (the first player never loses tic-tac-toe or connect four with perfect play),
  so every match plays as many games with our agent first as second, alternating game by game, and reports each
  seat separately.
* Variety. The random, MCTS and perfect opponents are stochastic: every bot a factory builds gets the next seed
  of a stream started at the factory's seed, so successive games differ while a whole run stays reproducible.
  Greedy-vs-greedy games (e.g. a trained agent against itself or any deterministic bot) would repeat one game over
  and over; `opening_plies` plays the first plies uniformly at random for both sides, from the arena's own seeded
  generator, so each game starts from a different position. Those opening moves are not the agent's: it is judged
  on how it plays on from there.

Bots are `pyspiel.Bot` objects; an opponent (or our agent) is given as a factory `Callable[[int], pyspiel.Bot]`
that builds a bot for the seat (player id) it is told; factories are called afresh for every game.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyspiel

from deepq.config_checks import SEED, is_int
from deepq.errors import ConfigError
from deepq.games.limits import MAX_MCTS_OPPONENT_SIMULATIONS
from deepq.games.solve import PerfectBot, load, shared_solver

BotFactory = Callable[[int], pyspiel.Bot]

MCTS_MEMORY_MB = 1000  # the tree cap of OpenSpiel's mcts_example; 1000 simulations use well under 1 MB


@dataclass
class Opponent:
    """A bot factory with a name, so that results can say what they were measured against."""

    name: str
    build: BotFactory

    def __call__(self, player: int) -> pyspiel.Bot:
        return self.build(player)


def _seed_stream(seed: int) -> Callable[[], int]:
    # One generator per factory: the n-th bot it builds always gets the same seed, and no two bots share one.
    SEED("seed", seed)
    rng = np.random.default_rng(seed)
    return lambda: int(rng.integers(2**31 - 1))  # C++ bots take a 32-bit int seed


def _check_two_player(game: pyspiel.Game) -> None:
    if game.num_players() != 2:
        raise ConfigError(f"{game} has {game.num_players()} players; the arena plays 2-player games")
    if game.get_type().dynamics != pyspiel.GameType.Dynamics.SEQUENTIAL:
        raise ConfigError(f"{game} has simultaneous moves; the arena plays sequential (turn-based) games")


def random_opponent(game: pyspiel.Game | str, seed: int) -> Opponent:
    """Uniformly random legal moves (OpenSpiel's uniform random bot)."""
    _check_two_player(load(game))
    next_seed = _seed_stream(seed)
    return Opponent("random", lambda player: pyspiel.make_uniform_random_bot(player, next_seed()))


def mcts_opponent(game: pyspiel.Game | str, simulations: int, seed: int, uct_c: float = 2.0,
                  solve: bool = True) -> Opponent:
    """OpenSpiel's C++ MCTS bot (`pyspiel.MCTSBot`), as in OpenSpiel's MCTS example and AlphaZero evaluation.

    Settings: UCT child selection with exploration constant `uct_c` (2.0); `simulations` simulations per move,
    each ending in one uniformly random rollout to the end of the game (`RandomRolloutEvaluator(1, seed)`); the
    MCTS-Solver on (`solve=True`, the default of OpenSpiel's examples and of the MCTS opponent in its AlphaZero
    evaluator), so proven wins and losses are backed up exactly; the move played is the most visited child (the
    proven best one when solved); a 1000 MB tree cap; a fresh tree for every move; no Dirichlet noise.
    """
    game = load(game)
    _check_two_player(game)
    if game.get_type().reward_model != pyspiel.GameType.RewardModel.TERMINAL:
        raise ConfigError(f"{game} gives rewards before the end; OpenSpiel's MCTS bot needs terminal rewards only")
    if not (is_int(simulations) and 2 <= simulations <= MAX_MCTS_OPPONENT_SIMULATIONS):
        # With one simulation pyspiel's MCTSBot samples from the evaluator's prior: a random bot in disguise.
        raise ConfigError(f"mcts_opponent needs 2 to {MAX_MCTS_OPPONENT_SIMULATIONS:,} simulations (about 50 s a "
                          f"move on connect_four), got {simulations!r}")
    next_seed = _seed_stream(seed)

    def build(player: int) -> pyspiel.Bot:
        evaluator = pyspiel.RandomRolloutEvaluator(1, next_seed())
        return pyspiel.MCTSBot(game, evaluator, uct_c, simulations, MCTS_MEMORY_MB, solve, next_seed(), False)

    return Opponent(f"mcts-{simulations}", build)


def perfect_opponent(game: pyspiel.Game | str, seed: int) -> Opponent:
    """Optimal play, random among optimal moves; the game is solved once per process (tic-tac-toe size only)."""
    solver = shared_solver(game)
    next_seed = _seed_stream(seed)
    return Opponent("perfect", lambda player: PerfectBot(solver, next_seed()))


@dataclass
class SeatRecord:
    """Results of the games our agent played from one seat."""

    wins: int = 0
    draws: int = 0
    losses: int = 0

    @property
    def games(self) -> int:
        return self.wins + self.draws + self.losses

    def add(self, our_return: float) -> None:
        """Count one game by the sign of our agent's return."""
        if our_return > 0:
            self.wins += 1
        elif our_return < 0:
            self.losses += 1
        else:
            self.draws += 1

    def __str__(self) -> str:
        return f"{self.wins}W {self.draws}D {self.losses}L"


@dataclass
class ArenaResult:
    """A match against one opponent; `seats[i]` holds the games our agent played as player i (0 moves first)."""

    opponent: str
    seats: list[SeatRecord] = field(default_factory=lambda: [SeatRecord(), SeatRecord()])

    @property
    def games(self) -> int:
        return sum(s.games for s in self.seats)

    @property
    def wins(self) -> int:
        return sum(s.wins for s in self.seats)

    @property
    def draws(self) -> int:
        return sum(s.draws for s in self.seats)

    @property
    def losses(self) -> int:
        return sum(s.losses for s in self.seats)

    @property
    def win_rate(self) -> float:
        """Wins over games played (0.0 before any game)."""
        return self.wins / self.games if self.games else 0.0

    @property
    def score(self) -> float:
        """Mean result from our side, a win counting +1, a draw 0 and a loss -1 (0.0 before any game)."""
        return (self.wins - self.losses) / self.games if self.games else 0.0

    def __str__(self) -> str:
        names = ("as first player", "as second player")
        per_seat = ", ".join(f"{name} {s}" for name, s in zip(names, self.seats, strict=True))
        return f"vs {self.opponent}: {per_seat}"


def play_game(game: pyspiel.Game, bots: list[pyspiel.Bot], rng: np.random.Generator,
              opening_plies: int = 0) -> list[float]:
    """Play one game with `bots[p]` as player p and return each player's return.

    Chance outcomes are sampled with `rng`; so are the first `opening_plies` decision moves (uniform over legal
    moves, for whichever player is to move). Every bot is told of every move it did not choose itself.
    """
    if len(bots) != game.num_players():
        raise ValueError(f"{game} needs {game.num_players()} bots, got {len(bots)}")
    state = game.new_initial_state()
    plies = 0  # decision moves played so far (chance outcomes do not count)
    while not state.is_terminal():
        if state.is_simultaneous_node():
            raise ConfigError(f"{game} has simultaneous moves; play_game plays sequential games")
        if state.is_chance_node():
            actions, probs = zip(*state.chance_outcomes(), strict=True)
            action = int(actions[rng.choice(len(actions), p=np.asarray(probs))])
            movers: set[int] = set()
        elif plies < opening_plies:
            legal = state.legal_actions()
            action = int(legal[rng.integers(len(legal))])
            movers = set()  # the opening move is nobody's choice, so every bot must hear of it
            plies += 1
        else:
            player = state.current_player()
            bot = bots[player]
            action = bot.step(state)
            legal = state.legal_actions()
            if action not in legal:
                raise RuntimeError(
                    f"{type(bot).__name__} playing player {player} chose action {action}, which is not legal here; "
                    f"legal actions: {legal}\n{state}"
                )
            action = int(action)
            movers = {player}
            plies += 1
        player = state.current_player()
        for i, other in enumerate(bots):
            if i not in movers:
                other.inform_action(state, player, action)
        state.apply_action(action)
    return list(state.returns())


def arena(game: pyspiel.Game | str, agent: BotFactory, opponent: BotFactory, games_per_seat: int, seed: int = 0,
          opening_plies: int = 0, name: str | None = None) -> ArenaResult:
    """Play `games_per_seat` games with our agent as player 0 and as many as player 1, alternating seats.

    Game k puts the agent in seat k % 2 (first, second, first, ...). Both bots come fresh from their factories
    every game. Chance and the random openings use one generator seeded with `seed`, so a match is reproducible
    given its seed and the factories' seeds. `name` defaults to the opponent's own name (see `Opponent`).
    """
    game = load(game)
    _check_two_player(game)
    if not (is_int(games_per_seat) and games_per_seat >= 1):
        raise ConfigError(f"games_per_seat must be an integer of at least 1, got {games_per_seat!r}")
    if not (is_int(opening_plies) and opening_plies >= 0):
        raise ConfigError(f"opening_plies must be an integer of 0 or more, got {opening_plies!r}")
    SEED("seed", seed)
    rng = np.random.default_rng(seed)
    result = ArenaResult(name if name is not None else getattr(opponent, "name", "opponent"))
    for k in range(2 * games_per_seat):
        seat = k % 2
        bots = [agent(0), opponent(1)] if seat == 0 else [opponent(0), agent(1)]
        returns = play_game(game, bots, rng, opening_plies)
        result.seats[seat].add(returns[seat])
    return result
