"""Evaluation episodes (greedy or with a small epsilon) and optional video of an episode."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from deepq.agent import Agent
from deepq.config import Config, EnvSpec
from deepq.config_checks import IN_0_1, POSITIVE_INT, SEED
from deepq.core.explore import random_legal
from deepq.core.results import EvalResult
from deepq.envs.base import check_spaces, env_label, episode_seed, obs_converter
from deepq.envs.gym import make_env
from deepq.envs.kinds import EnvKind
from deepq.envs.masks import KEY, checked_mask
from deepq.errors import ConfigError
from deepq.games.kind import GameKind
from deepq.games.limits import opponent_simulations
from deepq.presets import PRESETS
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
    With `video_dir`, the first episode is recorded there as an mp4 (needs `pip install moviepy`), named
    eval-<n>-episode-0.mp4 with the first n free.
    Every argument is checked before an env is made: a mistake is one ConfigError naming it and what is valid.
    """
    _check_arguments(episodes, eps, seed, opponent)
    spec = env if env is not None else agent.cfg.env
    if isinstance(spec, str) and spec.startswith("<callable"):
        raise ConfigError("this agent was trained on an env factory; pass env=... to evaluate it")
    if isinstance(spec, str) and spec.lower() in PRESETS:  # `--env cartpole`: the env the preset trains on
        spec = PRESETS[spec.lower()].env
    kind = env_kind(agent.cfg.replace(env=spec))
    if kind.two_player and eps:
        raise ConfigError(f"eps={eps} does not apply to the two-player game {spec!r}: its games are played greedily "
                          "against the opponent (leave eps out, or use 0)")
    return evaluate_kind(agent, kind, episodes, eps, seed, video_dir, opponent)


def _check_arguments(episodes: int, eps: float | None, seed: int | None, opponent: str | None) -> None:
    """The numbers (and the opponent) as given, before any env is made: one ConfigError naming the first bad one."""
    POSITIVE_INT("episodes", episodes)
    if eps is not None:
        IN_0_1("eps", eps)  # nan and 2 were accepted, and reported as "eps=2"
    if seed is not None:
        SEED("seed", seed)  # -1 ended in numpy's "expected non-negative integer"
    if opponent is not None:
        opponent_simulations(opponent, "opponent")


def evaluate_kind(agent: Agent, kind: EnvKind, episodes: int, eps: float | None = None, seed: int | None = None,
                  video_dir: str | os.PathLike[str] | None = None, opponent: str | None = None) -> EvalResult:
    """evaluate() on the env `kind` resolved already (the training loop's, once per run)."""
    from deepq.memory import Need, available_bytes, evaluation_bytes, refuse

    refuse([Need("evaluation (each episode's return and length)", f"episodes={episodes:,}", "evaluate fewer episodes",
                 evaluation_bytes(agent.cfg, episodes, seats=2 if kind.two_player else 1))], available_bytes(),
           "this machine")
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
    started = [e.reset(seed=s) for e, s in zip(envs, seeds, strict=True)]
    obs = np.stack([convert(o) for o, _ in started])  # (E, *obs_shape)
    # an env that masks actions (info["action_mask"], deepq/envs/masks.py): greedy and random choices among legal ones
    legal = (np.stack([_mask(envs[i], info, n_actions, "at the reset") for i, (_, info) in enumerate(started)])
             if agent.cfg.action_masks and KEY in started[0][1] else None)  # (E, A)
    active = np.ones(len(envs), dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        actions = agent.act(obs[idx], None if legal is None else legal[idx])  # (n_active,)
        if eps > 0:
            explore = rng.random(len(idx)) < eps
            random = rng.integers(n_actions, size=len(idx)) if legal is None else random_legal(legal[idx], rng)
            actions = np.where(explore, random, actions)
        for i, a in zip(idx, actions, strict=True):
            o, r, terminated, truncated, info = envs[i].step(int(a) + offset)
            returns[i] += float(r)
            lengths[i] += 1
            if terminated or truncated:
                active[i] = False
                envs[i].close()  # also finishes a video file
            else:
                obs[i] = convert(o)
                if legal is not None:
                    legal[i] = _mask(envs[i], info, n_actions, f"at step {lengths[i]} of an evaluation episode")


def _mask(env: gym.Env, info: dict[str, Any], n_actions: int, where: str) -> np.ndarray:
    return checked_mask(info, n_actions, where, env_label(env))


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
    prefix = _video_prefix(Path(video_dir))
    env = make_env(spec, render_mode="rgb_array", cfg=cfg)
    with warnings.catch_warnings():  # "Overwriting existing videos": the prefix keeps earlier videos
        warnings.simplefilter("ignore", UserWarning)
        return gym.wrappers.RecordVideo(env, video_dir, episode_trigger=lambda ep: ep == 0, name_prefix=prefix,
                                        disable_logger=True)


def _video_prefix(video_dir: Path) -> str:
    """Makes `video_dir` and returns a file-name prefix no video there has yet ('eval-0', 'eval-1', ...), so an
    evaluation never overwrites an earlier one's video. A folder that cannot be written is a ConfigError now,
    before any episode runs, not a traceback from the video writer after the episode."""
    try:
        video_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=video_dir).close()
    except OSError as e:
        raise ConfigError(f"cannot record the video into {video_dir}: {e.strerror or e}; deepq eval --video writes "
                          "to the 'videos' folder beside the agent file: evaluate a copy of the agent in a writable "
                          "folder (or pass another video_dir to deepq.evaluate)") from None
    k = 0
    while (video_dir / f"eval-{k}-episode-0.mp4").exists():
        k += 1
    return f"eval-{k}"

