"""Q-guided Monte Carlo Tree Search: PUCT whose priors and first-play values come from a Q-network.

The search runs over a *searchable state* (duck-typed, see `Searchable`; deepq.games.adapters' OpenSpielGame and
PettingZooGame have it): `clone()`, `legal_mask() -> (A,) bool` (all False when terminal), `step(a) -> float` (the
mover's reward), `is_terminal`, `to_move`, `observation()` (from the player to move's view) and `n_actions`.

Value convention: every node's values are from the view of ITS player to move. An edge (s, a) has
Q(s, a) = r + γ·σ·V(s'), r the mover's reward, σ = −1 when the player to move in s' is not the mover of s
(two-player, alternating turns: the opponent's value, negated), σ = +1 otherwise (single-agent); V(terminal) = 0.
Worked example, tic-tac-toe, γ = 1, X to move in s:
  * X plays a and completes a line: r = +1, s' is terminal, so Q(s, a) = 1 + (−1)·0 = +1.
  * X plays b (r = 0) and O can then win at once: V(s') = +1 for O, so Q(s, b) = 0 + (−1)·(+1) = −1.
Backups carry this sign up the path, one edge at a time.

Search: each simulation descends by PUCT, argmax over legal a of Q̄(s, a) + c·P(s, a)·sqrt(N(s))/(1 + N(s, a)), with
P = softmax(Q_net(s, ·)/temperature) over the legal actions and Q̄ of a never-visited action = Q_net(s, a) (the
network's estimate is the first-play value). A leaf is worth max over legal a of Q_net(leaf, a) ("network") or the
return of a uniformly random playout ("rollout"); 0 if terminal. Up to `batch` leaves are collected per round under
virtual loss (each descent in flight counts, on every edge of its path, as one visit worth −1) and their
observations evaluated in ONE evaluator call, which also expands them (priors, first-play values). A descent that
reaches a leaf already waiting in the round is a collision: it is not counted as a simulation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from deepq.errors import ConfigError

Evaluator = Callable[[np.ndarray], np.ndarray]
"""Observations (B, *obs) -> Q values (B, A), each row from the view of that observation's player to move."""


class Searchable(Protocol):
    """The state interface the search needs (OpenSpielGame and PettingZooGame have it)."""

    n_actions: int

    @property
    def to_move(self) -> int: ...

    @property
    def is_terminal(self) -> bool: ...

    def clone(self) -> Searchable: ...

    def legal_mask(self) -> np.ndarray: ...

    def step(self, action: int) -> float: ...

    def observation(self) -> np.ndarray: ...


@dataclass
class MCTSConfig:
    """Search settings."""

    simulations: int = 200
    """Simulations per search (descents from the root; the root's own expansion is not counted)."""
    c_puct: float = 1.25
    """Weight of the prior term in PUCT (values are in [−1, 1] in games)."""
    temperature: float = 1.0
    """Temperature of the prior softmax over the legal actions' Q_net values (lower: sharper)."""
    gamma: float = 1.0
    """Discount per ply (1.0 for games)."""
    leaf: str = "network"
    """Leaf value: 'network' (max legal Q_net) or 'rollout' (uniformly random playout)."""
    batch: int = 16
    """Leaves evaluated per evaluator call (1: unbatched)."""
    rollout_limit: int = 1000
    """Most plies of one rollout (a cap for long single-agent envs); a cut rollout's remainder counts 0."""
    virtual_loss: float = 1.0
    """A simulation in flight counts as one visit of value −virtual_loss on every edge of its path."""
    seed: int = 0
    """Seed of the rollouts."""

    def __post_init__(self) -> None:
        checks = [("simulations", self.simulations >= 1, "an int >= 1"),
                  ("c_puct", self.c_puct >= 0, ">= 0"),
                  ("temperature", self.temperature > 0, "> 0"),
                  ("gamma", 0 <= self.gamma <= 1, "in [0, 1]"),
                  ("leaf", self.leaf in ("network", "rollout"), "'network' or 'rollout'"),
                  ("batch", self.batch >= 1, "an int >= 1"),
                  ("rollout_limit", self.rollout_limit >= 1, "an int >= 1"),
                  ("virtual_loss", self.virtual_loss >= 0, ">= 0")]
        for name, ok, want in checks:
            if not ok:
                raise ConfigError(f"MCTSConfig.{name}={getattr(self, name)!r}: must be {want}")


@dataclass
class SearchResult:
    """What one search found at the root, from the root player's view."""

    visits: np.ndarray
    """(A,) int: visits per action."""
    q: np.ndarray
    """(A,) float: mean return per action, NaN where never visited."""
    value: float
    """Root value: the visit-weighted mean of q (the mean return of all simulations)."""
    simulations: int
    seconds: float
    """Wall time of the search."""
    evaluator_calls: int
    evaluator_seconds: float
    """Time spent inside the evaluator."""
    rng: np.random.Generator = field(default_factory=np.random.default_rng, repr=False)

    @property
    def simulations_per_second(self) -> float:
        return self.simulations / self.seconds if self.seconds > 0 else math.inf

    def action(self, temperature: float = 0.0) -> int:
        """Most visited action (ties: higher q) at temperature 0, else one sampled ∝ visits^(1/temperature)."""
        visited = self.visits > 0
        if temperature <= 0:
            most = visited & (self.visits == self.visits.max())
            return int(np.argmax(np.where(most, self.q, -np.inf)))
        logits = np.where(visited, np.log(np.maximum(self.visits, 1)) / temperature, -np.inf)  # log-space: no overflow
        p = np.exp(logits - logits.max())
        return int(self.rng.choice(len(p), p=p / p.sum()))


class _Node:
    """One position: its state and per-action statistics, all (A,), from its player to move's view."""

    __slots__ = ("children", "cprior", "expanded", "legal", "n", "player", "q_net", "qbar", "reward", "sign",
                 "state", "terminal", "total", "w")

    def __init__(self, state: Searchable) -> None:
        self.state = state
        self.player = int(state.to_move)
        self.legal = np.asarray(state.legal_mask(), dtype=bool)  # (A,)
        self.terminal = bool(state.is_terminal) or not self.legal.any()
        self.expanded = False  # priors and first-play values set (from one evaluator call)
        a = len(self.legal)
        self.cprior = np.zeros(a)  # (A,) c_puct·P(s, a), 0 where illegal
        self.q_net = np.zeros(a)  # (A,) the network's Q(s, a): the first-play value
        self.n = np.zeros(a)  # (A,) visits, virtual ones included while a round is in flight
        self.w = np.zeros(a)  # (A,) summed returns (minus virtual losses in flight)
        self.total = 0.0  # N(s) = n.sum(), kept as it changes
        # (A,) what selection reads as Q̄: w/n where visited, q_net where not, −inf where illegal. Kept up to date
        # entry by entry, since recomputing it over all actions at every selection dominated the search's time.
        self.qbar = np.where(self.legal, 0.0, -np.inf)
        self.reward = np.zeros(a)  # (A,) r of the edge (s, a), the mover's reward
        self.sign = np.ones(a)  # (A,) σ of the edge: −1 if the child's player to move is the other player
        self.children: list[_Node | None] = [None] * a

    def add(self, a: int, visits: float, value: float) -> None:
        """Add `visits` visits and `value` summed return to action a."""
        self.n[a] += visits
        self.w[a] += value
        self.total += visits
        self.qbar[a] = self.w[a] / self.n[a] if self.n[a] > 0 else self.q_net[a]


class MCTS:
    """Q-guided PUCT search; `search(state)` leaves the state untouched (the tree holds clones)."""

    def __init__(self, evaluator: Evaluator | None, cfg: MCTSConfig, two_player: bool) -> None:
        """`evaluator` None: uniform priors and zero first-play values (plain MCTS, for rollout leaves)."""
        if evaluator is None and cfg.leaf == "network":
            raise ConfigError("MCTSConfig.leaf='network' needs an evaluator (e.g. agent.q_values)")
        self.evaluator = evaluator
        self.cfg = cfg
        self.two_player = two_player
        self.rng = np.random.default_rng(cfg.seed)
        self._calls = 0
        self._eval_seconds = 0.0

    def search(self, state: Searchable) -> SearchResult:
        """Run cfg.simulations simulations from `state` and report the root's statistics."""
        if state.is_terminal:
            raise ValueError("cannot search a terminal state: it has no legal actions")
        start = time.perf_counter()
        self._calls, self._eval_seconds = 0, 0.0
        root = _Node(state.clone())
        self._expand([root])
        cfg, done = self.cfg, 0
        while done < cfg.simulations:
            # One round: up to `batch` descents under virtual loss (terminal leaves back up at once), then one
            # evaluator call for the leaves found. A descent that ends on a leaf already waiting is a collision: not a
            # simulation (its value would only repeat the leaf's); its virtual loss stays until the round ends, to
            # steer the round's later descents elsewhere.
            pending: dict[int, tuple[_Node, list[tuple[_Node, int]], float]] = {}
            collided: list[list[tuple[_Node, int]]] = []
            for _ in range(cfg.batch):
                if done >= cfg.simulations:
                    break
                leaf, path = self._descend(root)
                if leaf.terminal:
                    self._backup(path, 0.0)
                elif id(leaf) in pending:
                    collided.append(path)
                    continue
                else:
                    pending[id(leaf)] = (leaf, path, self._rollout(leaf) if cfg.leaf == "rollout" else 0.0)
                done += 1
            values = self._expand([leaf for leaf, _, _ in pending.values()])  # (L,) max legal Q_net
            for (_, path, rollout), v in zip(pending.values(), values, strict=True):
                self._backup(path, rollout if cfg.leaf == "rollout" else float(v))
            for path in collided:
                self._undo_virtual_loss(path)
        visits = root.n.astype(np.int64)  # virtual losses are all removed: integral again
        with np.errstate(invalid="ignore", divide="ignore"):
            q = np.where(visits > 0, root.w / root.n, np.nan)
        return SearchResult(visits=visits, q=q, value=float(root.w.sum() / root.n.sum()), simulations=done,
                            seconds=time.perf_counter() - start, evaluator_calls=self._calls,
                            evaluator_seconds=self._eval_seconds, rng=self.rng)

    def _descend(self, root: _Node) -> tuple[_Node, list[tuple[_Node, int]]]:
        """PUCT from the root to a terminal or unexpanded node, adding a virtual loss on each edge taken."""
        node, path = root, []
        vl = self.cfg.virtual_loss
        while node.expanded and not node.terminal:
            a = self._select(node)
            node.add(a, 1.0, -vl)
            path.append((node, a))
            child = node.children[a]
            if child is None:
                state = node.state.clone()
                node.reward[a] = state.step(a)
                child = node.children[a] = _Node(state)
                node.sign[a] = -1.0 if self.two_player and child.player != node.player else 1.0
            node = child
        return node, path

    def _select(self, node: _Node) -> int:
        """PUCT: argmax of Q̄ + c·P·sqrt(N(s))/(1 + N(s, a)); illegal actions have Q̄ = −inf."""
        return int(np.argmax(node.qbar + node.cprior * (math.sqrt(node.total) / (1.0 + node.n))))

    def _backup(self, path: list[tuple[_Node, int]], value: float) -> None:
        """Carry `value` (from the leaf player's view) up the path, turning each virtual visit into a real one."""
        g, gamma, vl = value, self.cfg.gamma, self.cfg.virtual_loss
        for node, a in reversed(path):
            g = node.reward[a] + gamma * node.sign[a] * g  # now from node's player's view
            node.add(a, 0.0, vl + g)  # the virtual visit becomes the real one (n unchanged); its loss is undone

    def _undo_virtual_loss(self, path: list[tuple[_Node, int]]) -> None:
        for node, a in path:
            node.add(a, -1.0, self.cfg.virtual_loss)

    def _expand(self, leaves: list[_Node]) -> np.ndarray:
        """Priors and first-play values for each leaf from one evaluator call; returns (L,) max legal Q_net."""
        if not leaves:
            return np.zeros(0)
        n_actions = len(leaves[0].legal)
        if self.evaluator is None:
            q = np.zeros((len(leaves), n_actions))
        else:
            obs = np.stack([leaf.state.observation() for leaf in leaves])  # (L, *obs)
            t0 = time.perf_counter()
            q = np.asarray(self.evaluator(obs), dtype=np.float64)  # (L, A)
            self._eval_seconds += time.perf_counter() - t0
            self._calls += 1
            if q.shape != (len(leaves), n_actions):
                raise ValueError(f"evaluator returned shape {q.shape} for {len(leaves)} observations; "
                                 f"expected {(len(leaves), n_actions)}")
        legal = np.stack([leaf.legal for leaf in leaves])  # (L, A)
        masked = np.where(legal, q, -np.inf) / self.cfg.temperature  # (L, A)
        p = np.exp(masked - masked.max(axis=1, keepdims=True))  # (L, A), 0 where illegal
        p /= p.sum(axis=1, keepdims=True)
        for i, leaf in enumerate(leaves):
            leaf.cprior, leaf.expanded = self.cfg.c_puct * p[i], True
            leaf.q_net = np.where(legal[i], q[i], 0.0)
            leaf.qbar = np.where(legal[i], q[i], -np.inf)  # nothing visited yet: all first-play values
        return np.where(legal, q, -np.inf).max(axis=1)

    def _rollout(self, leaf: _Node) -> float:
        """Return of a uniformly random playout from `leaf`, from the leaf player's view (γ and σ applied)."""
        state = leaf.state.clone()
        steps: list[tuple[float, float]] = []  # (the mover's reward, σ) per ply
        while not state.is_terminal and len(steps) < self.cfg.rollout_limit:
            legal = np.flatnonzero(state.legal_mask())
            mover = state.to_move
            reward = state.step(int(legal[self.rng.integers(len(legal))]))
            steps.append((reward, -1.0 if self.two_player and state.to_move != mover else 1.0))
        g = 0.0
        for reward, sign in reversed(steps):
            g = reward + self.cfg.gamma * sign * g
        return g


def search_policy(evaluator: Evaluator | None, cfg: MCTSConfig, two_player: bool = True
                  ) -> Callable[[Searchable], int]:
    """state -> the most visited action of a search from it (one MCTS, so its rollout seed advances)."""
    mcts = MCTS(evaluator, cfg, two_player)
    return lambda state: mcts.search(state).action()
