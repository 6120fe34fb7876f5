"""The env kind: what cfg.env names, resolved once at set-up into an object that builds its envs and says what
differs between kinds, so nothing downstream sniffs env ids again.

    kind = resolve(cfg)                 # at set-up, once
    envs = kind.make_vec_env(cfg)       # the training vector env (a deepq.envs.base.VecEnv)
    env = kind.make_search_env(cfg)     # a clonable env for target='mcts'
    kind.arch(cfg, obs_shape)           # the built-in network cfg.arch resolves to ('auto': by kind and shape)
    kind.discount(cfg.gamma)            # the discount stored for a non-terminal step (games: −γ)
    kind.two_player                     # games: legal masks, per-seat evaluation

Kinds: Gymnasium ids and factories (classic control, Box2D, ...), MinAtar, Atari through ale-py, EnvPool's
Atari (backend='envpool'), and two-player games. Gymnasium and MinAtar kinds train on deepq's NumPy vector env
where the id has one (CartPole-v1: deepq/envs/numpy_cartpole.py; MinAtar Breakout, SpaceInvaders, Freeway, Asterix:
deepq/envs/numpy_minatar/) and cfg.backend is 'auto' (the default) or 'numpy', else on GymVecEnv; evaluation and
search always use the reference envs (make_env). The games are not known here: deepq/games/kind.py names their
kind by id prefix ('openspiel:', 'pettingzoo:') in a table (GAME_KINDS), which whoever builds a run passes to
`resolve` (deepq/training/setup.py does), so this layer never imports deepq.games and nothing registers itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import gymnasium as gym

from deepq.config import Config, EnvSpec
from deepq.core.networks import resolve_arch
from deepq.envs.base import AUTO_NUMPY_MIN_ENVS, VecEnv
from deepq.envs.gym import GymVecEnv, make_env, register_namespace
from deepq.envs.numpy_cartpole import CartPoleVec
from deepq.envs.numpy_minatar import ENV_IDS as MINATAR_NUMPY_IDS
from deepq.envs.numpy_minatar import MinAtarVec
from deepq.envs.search import SearchEnv
from deepq.errors import ConfigError

if TYPE_CHECKING:
    import torch


class EnvKind:
    """A single-agent Gymnasium env (an id or a factory); the other kinds change what differs."""

    name = "gymnasium"
    two_player = False  # two-player zero-sum games: legal masks, evaluation per seat (and arch, discount below)
    return_label = "return"  # what the progress line calls an episode's return

    def __init__(self, spec: EnvSpec) -> None:
        self.spec = spec

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"

    def check(self, cfg: Config) -> None:
        """Raise ConfigError for fields that do not apply to this kind (beyond Config.validate's checks)."""

    def arch(self, cfg: Config, obs_shape: tuple[int, ...]) -> str:
        """The built-in network cfg.arch names for this kind's observations ('auto': by shape, resolve_arch)."""
        return resolve_arch(obs_shape, cfg.arch)

    def discount(self, gamma: float) -> float:
        """The discount of s' in a target, for a step that did not end the episode: γ."""
        return gamma

    def mirror(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each observation's mirror image and its mirrored actions, for kinds whose envs have one (cfg.mirror:
        the games'; `check` refuses mirror for every other kind, so this is never reached)."""
        raise ConfigError(f"{self.spec!r} has no mirror image: leave mirror off")

    def make_vec_env(self, cfg: Config) -> VecEnv:
        """The training envs: deepq's NumPy vector env where cfg asks for one it can be (make_numpy_vec_env),
        else cfg.num_envs Gymnasium envs stepped in lockstep."""
        numpy_envs = make_numpy_vec_env(cfg)
        if numpy_envs is not None:
            return numpy_envs
        spec = cfg.env
        return GymVecEnv([lambda: make_env(spec, cfg=cfg) for _ in range(cfg.num_envs)], cfg.seed,
                         custom_network=cfg.network is not None, episodic_life=cfg.episodic_life,
                         action_masks=cfg.action_masks)

    def make_search_env(self, cfg: Config) -> SearchEnv:
        """A fresh env a tree search can clone (target='mcts'); a ConfigError for what cannot be cloned."""
        if not isinstance(cfg.env, str):
            raise ConfigError("target='mcts' needs an env id it can clone (a game, classic control or ALE), "
                              "not an env factory")
        from deepq.envs.search import make_search_env

        return make_search_env(cfg.env, cfg)

    def episodes_text(self, episodes: int) -> str:
        """How an evaluation of `episodes` is said: '10 episodes' (games: '10 games from each seat')."""
        return f"{episodes} episodes"

    def eval_protocol(self, cfg: Config, eps: float) -> str:
        """The evaluation protocol in words."""
        return f"eps={eps:g}, raw score"


NUMPY_ENV_IDS = ("CartPole-v1", *MINATAR_NUMPY_IDS)  # the ids deepq has a NumPy vector env for


def make_numpy_vec_env(cfg: Config) -> VecEnv | None:
    """deepq's NumPy vector env for cfg (backend 'numpy', or 'auto' with at least AUTO_NUMPY_MIN_ENVS envs; an id in
    NUMPY_ENV_IDS, frame_stack 1), else
    None; a ConfigError where backend='numpy' asks for one that cannot be. Each produces exactly what GymVecEnv over
    the reference env does (tests/test_numpy_envs.py); episodic_life changes nothing on either (no lives)."""
    if cfg.backend not in ("auto", "numpy") or (cfg.backend == "auto" and cfg.num_envs < AUTO_NUMPY_MIN_ENVS):
        return None  # 'auto' with 1-3 envs: the reference env's Python step is the faster one (base.py)
    spec = cfg.env
    if not isinstance(spec, str) or spec not in NUMPY_ENV_IDS:
        if cfg.backend == "numpy":
            name = spec if isinstance(spec, str) else "an env factory"
            raise ConfigError(f"backend='numpy' has no NumPy env for {name}: deepq has one for "
                              f"{', '.join(NUMPY_ENV_IDS)}; use --backend gymnasium (or auto) for the others")
        return None
    if cfg.frame_stack > 1:
        if cfg.backend == "numpy":
            raise ConfigError(f"backend='numpy' does not stack frames (frame_stack={cfg.frame_stack}) for {spec}: "
                              "use --backend gymnasium (or auto), or frame_stack=1")
        return None
    if spec == "CartPole-v1":
        return CartPoleVec(cfg.num_envs, cfg.seed)
    return MinAtarVec(spec, cfg.num_envs, cfg.seed, cfg.max_episode_frames)


class MinAtarKind(EnvKind):
    """MinAtar's 10x10 grids ('MinAtar/Breakout-v1'), channels first, with a time limit (deepq/envs/gym.py); trained
    on deepq's NumPy env of the game where it has one (make_numpy_vec_env)."""

    name = "minatar"


class AtariKind(EnvKind):
    """An ale-py Atari game with the standard DQN preprocessing (deepq/envs/atari.py)."""

    name = "atari"

    def eval_protocol(self, cfg: Config, eps: float) -> str:
        """With the settings Atari results are compared by."""
        start = f"up to {cfg.noop_max} no-op starts" if cfg.noop_max else "no no-op starts"
        sticky = "sticky actions p=0.25" if cfg.sticky_actions else "no sticky actions"
        return (f"{super().eval_protocol(cfg, eps)}, {start}, {sticky}, full games (no life loss ends), "
                f"{cfg.max_episode_frames:,}-frame cap")


class EnvPoolKind(AtariKind):
    """Atari trained on EnvPool's C++ envs (backend='envpool'); evaluated and searched on ale-py's, as AtariKind."""

    name = "envpool"

    def make_vec_env(self, cfg: Config) -> VecEnv:
        if not isinstance(cfg.env, str):
            raise ConfigError("backend='envpool' needs an Atari env id such as 'ALE/Pong-v5', not a factory")
        from deepq.envs.atari import EnvPoolVecEnv

        return EnvPoolVecEnv(cfg.env, cfg.num_envs, cfg.seed, cfg)


# Kinds named by id prefix (the two-player games: deepq.games.kind.GAME_KINDS): prefix -> (id -> kind)
PrefixKinds = Mapping[str, Callable[[str], EnvKind]]


def by_prefix(spec: EnvSpec, prefixed: PrefixKinds) -> EnvKind | None:
    """The kind `prefixed` gives an id with one of its prefixes, else None. Cheap: imports and builds nothing."""
    if isinstance(spec, str):
        for prefix, make in prefixed.items():
            if spec.startswith(prefix):
                return make(spec)
    return None


def check(cfg: Config, prefixed: PrefixKinds) -> None:
    """The checks of cfg.env's prefixed kind (the games' fields), at set-up, before anything is written.
    Gymnasium kinds have none beyond Config.validate, so their ids are not resolved here (that imports their
    packages: see resolve)."""
    kind = by_prefix(cfg.env, prefixed)
    if kind is not None:
        kind.check(cfg)
    elif cfg.mirror:
        raise ConfigError(f"mirror=True mirrors two-player board games (Connect Four, tic-tac-toe); {cfg.env!r} is "
                          "not one: leave mirror off")


def resolve(cfg: Config, prefixed: PrefixKinds | None = None) -> EnvKind:
    """cfg.env's kind: `prefixed`'s by id prefix (the games'), EnvPool's Atari for backend='envpool', else what
    Gymnasium's registry says (ale-py's entry point: Atari; 'MinAtar/...': MinAtar). Atari and MinAtar ids make
    their packages register first (a ConfigError says what to install); an unknown id is a Gymnasium kind whose
    make_env says it is unknown, with the close ids."""
    kind = by_prefix(cfg.env, prefixed or {})
    if kind is not None:
        return kind
    spec = cfg.env
    if cfg.backend == "envpool":
        return EnvPoolKind(spec)
    if not isinstance(spec, str):
        return EnvKind(spec)
    register_namespace(spec)
    if spec in gym.registry and "ale_py" in str(gym.registry[spec].entry_point):
        return AtariKind(spec)
    if spec.startswith("MinAtar/"):
        return MinAtarKind(spec)
    return EnvKind(spec)


def make_vec_env(cfg: Config) -> VecEnv:
    """The training envs of cfg.env's single-agent kind (a NumPy env, GymVecEnv or EnvPoolVecEnv; games resolve
    through deepq.training.setup.env_kind)."""
    return resolve(cfg).make_vec_env(cfg)


def make_search_env(cfg: Config) -> SearchEnv:
    """A clonable env of cfg.env's single-agent kind for tree search (ClassicControlState or ALEState)."""
    return resolve(cfg).make_search_env(cfg)
