"""Evaluation episodes (greedy or with a small epsilon) and optional video of an episode."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np

from deepq.config import Config, EnvSpec
from deepq.core.agent import Agent
from deepq.core.results import EvalResult
from deepq.envs.base import check_spaces, episode_seed, obs_converter
from deepq.envs.gym import make_env
from deepq.envs.kinds import EnvKind
from deepq.errors import ConfigError
from deepq.games.kind import GameKind
from deepq.training.setup import check, env_kind

EVAL_SEED_OFFSET = 1_000_003  # evaluation episodes never share reset seeds with training episodes


def evaluate(agent: Agent, env: EnvSpec | None = None, episodes: int = 10, eps: float | None = None,
             seed: int | None = None, video_dir: str | os.PathLike[str] | None = None,
             opponent: str | None = None) -> EvalResult:
    """Run `episodes` full episodes acting greedily (or eps-greedily) and return their returns.

    Two-player games: `episodes` greedy games from each seat against `opponent` ('random', 'perfect'
    or 'mcts:N'; default the agent's eval_opponent); returns are +1 win, 0 draw, −1 loss.

    Episode i is reset with a seed derived from (seed, i), so the same call gives the same numbers.
    Up to 32 episodes run side by side, with one batched forward pass per step.
    With `video_dir`, the first episode is recorded there as an mp4 (needs `pip install moviepy`).
    """
    if episodes <= 0:
        raise ConfigError(f"episodes={episodes} is not valid: evaluate at least 1 episode")
    spec = env if env is not None else agent.cfg.env
    if isinstance(spec, str) and spec.startswith("<callable"):
        raise ConfigError("this agent was trained on an env factory; pass env=... to evaluate it")
    return evaluate_kind(agent, env_kind(agent.cfg.replace(env=spec)), episodes, eps, seed, video_dir, opponent)


def evaluate_kind(agent: Agent, kind: EnvKind, episodes: int, eps: float | None = None, seed: int | None = None,
                  video_dir: str | os.PathLike[str] | None = None, opponent: str | None = None) -> EvalResult:
    """evaluate() on the env `kind` resolved already (the training loop's, once per run)."""
    from deepq.core.memory import Need, available_bytes, evaluation_bytes, refuse

    refuse([Need("evaluation (each episode's return and length)", f"episodes={episodes:,}", "evaluate fewer episodes",
                 evaluation_bytes(agent.cfg, episodes, two_player=kind.two_player))], available_bytes(), "this machine")
    spec = kind.spec
    eps = agent.cfg.eval_eps if eps is None else eps
    seed = agent.cfg.seed + EVAL_SEED_OFFSET if seed is None else seed
    if isinstance(kind, GameKind):
        if opponent is not None:  # the rules Config.validate and the game kind apply to eval_opponent, for this game
            check(agent.cfg.replace(env=spec, eval_opponent=opponent))

        if video_dir is not None:
            raise ConfigError("video is for Gymnasium envs; watch a game with `deepq play` instead")
        return kind.evaluate(agent, agent.cfg.replace(env=spec), episodes, seed, opponent)
    if opponent is not None:
        raise ConfigError(f"opponent={opponent!r} is for two-player games; {spec!r} is a single-agent env")
    rng = np.random.default_rng(seed)
    returns, lengths = np.zeros(episodes), np.zeros(episodes, dtype=np.int64)
    was_training = agent.online.training
    agent.online.eval()  # noisy nets act on their mean weights (no exploration noise) while evaluated
    try:
        _evaluate_batches(agent, spec, episodes, eps, seed, rng, video_dir, returns, lengths)
    finally:
        agent.online.train(was_training)
    return EvalResult([float(r) for r in returns], [int(n) for n in lengths], kind.eval_protocol(agent.cfg, eps))


def _evaluate_batches(agent: Agent, spec: EnvSpec, episodes: int, eps: float, seed: int, rng: np.random.Generator,
                      video_dir: str | os.PathLike[str] | None, returns: np.ndarray, lengths: np.ndarray) -> None:
    for first in range(0, episodes, EVAL_BATCH):
        ids = range(first, min(first + EVAL_BATCH, episodes))
        envs = [_recorder(spec, str(video_dir), agent.cfg) if i == 0 and video_dir is not None
                else make_env(spec, cfg=agent.cfg) for i in ids]
        _run_episodes(agent, envs, [episode_seed(seed, 0, i) for i in ids], eps, rng,
                      returns[first:], lengths[first:])


EVAL_BATCH = 32


def _run_episodes(agent: Agent, envs: list[gym.Env], seeds: list[int], eps: float, rng: np.random.Generator,
                  returns: np.ndarray, lengths: np.ndarray) -> None:
    """One episode in each env, stepped together; writes returns[i], lengths[i]; closes the envs."""
    obs_shape, n_actions = check_spaces(envs[0], custom_network=agent.cfg.network is not None)
    if (obs_shape, n_actions) != (agent.obs_shape, agent.n_actions):
        raise ConfigError(f"this env has observations {obs_shape} and {n_actions} actions; the agent was "
                          f"trained on {agent.obs_shape} and {agent.n_actions}")
    convert = obs_converter(envs[0].observation_space)
    offset = int(envs[0].action_space.start)  # type: ignore[attr-defined]
    obs = np.stack([convert(e.reset(seed=s)[0]) for e, s in zip(envs, seeds, strict=True)])  # (E, *obs_shape)
    active = np.ones(len(envs), dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        actions = agent.act(obs[idx])  # (n_active,)
        if eps > 0:
            explore = rng.random(len(idx)) < eps
            actions = np.where(explore, rng.integers(n_actions, size=len(idx)), actions)
        for i, a in zip(idx, actions, strict=True):
            o, r, terminated, truncated, _ = envs[i].step(int(a) + offset)
            returns[i] += float(r)
            lengths[i] += 1
            if terminated or truncated:
                active[i] = False
                envs[i].close()  # also finishes a video file
            else:
                obs[i] = convert(o)


def _recorder(spec: EnvSpec, video_dir: str, cfg: Config) -> gym.Env:
    try:
        import moviepy  # noqa: F401
    except ImportError:
        raise ConfigError("recording video needs moviepy: pip install 'deepq[video]' (or pip install moviepy)") \
            from None
    if callable(spec):
        raise ConfigError("video needs an env id so it can be made with render_mode='rgb_array'")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")  # rendering needs no sound device
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        # No display at all (a server, a container): SDL (pygame, which classic-control envs render with)
        # would try X11, then Wayland, whose libwayland-client prints "error: XDG_RUNTIME_DIR is invalid or
        # not set in the environment." to the terminal. rgb_array frames need no display: SDL's dummy driver.
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    env = make_env(spec, render_mode="rgb_array", cfg=cfg)
    return gym.wrappers.RecordVideo(env, video_dir, episode_trigger=lambda ep: ep == 0, disable_logger=True)

