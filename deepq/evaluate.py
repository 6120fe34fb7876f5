"""Evaluation episodes (greedy or with a small epsilon) and optional video of an episode."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from deepq.agent import Agent
from deepq.config import EnvSpec
from deepq.envs import VecEnv, make_env
from deepq.errors import ConfigError

EVAL_SEED_OFFSET = 1_000_003  # evaluation episodes never share reset seeds with training episodes


@dataclass
class EvalResult:
    returns: list[float]
    lengths: list[int] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))

    def __str__(self) -> str:
        return f"mean {self.mean:.2f} ± {self.std:.2f} over {len(self.returns)} episodes"


def evaluate(agent: Agent, env: EnvSpec | None = None, episodes: int = 10, eps: float | None = None,
             seed: int | None = None, video_dir: str | os.PathLike[str] | None = None) -> EvalResult:
    """Run `episodes` full episodes acting greedily (or eps-greedily) and return their returns.

    Episode i is reset with a seed derived from (seed, i), so the same call gives the same numbers.
    With `video_dir`, the first episode is recorded there as an mp4 (needs `pip install moviepy`).
    """
    if episodes <= 0:
        raise ConfigError(f"episodes={episodes} is not valid: evaluate at least 1 episode")
    spec = env if env is not None else agent.cfg.env
    if isinstance(spec, str) and spec.startswith("<callable"):
        raise ConfigError("this agent was trained on an env factory; pass env=... to evaluate it")
    eps = agent.cfg.eval_eps if eps is None else eps
    seed = agent.cfg.seed + EVAL_SEED_OFFSET if seed is None else seed
    rng = np.random.default_rng(seed)
    vec = VecEnv([lambda: make_env(spec)], seed, custom_network=agent.cfg.network is not None)
    if (vec.obs_shape, vec.n_actions) != (agent.obs_shape, agent.n_actions):
        raise ConfigError(f"env {spec!r} has observations {vec.obs_shape} and {vec.n_actions} actions; the "
                          f"agent was trained on {agent.obs_shape} and {agent.n_actions}")
    if video_dir is not None:
        vec.envs[0] = _recorder(spec, str(video_dir))
    returns, lengths = [], []
    for i in range(episodes):
        vec.episodes[0] = i
        obs = vec.reset()
        total, length, done = 0.0, 0, False
        while not done:
            action = agent.act(obs)
            if eps > 0 and rng.random() < eps:
                action = rng.integers(agent.n_actions, size=1)
            step = vec.step(np.asarray(action))
            total += float(step.rewards[0])
            length += 1
            done = bool(step.terminated[0] or step.truncated[0])
            obs = step.obs
        returns.append(total)
        lengths.append(length)
        if i == 0 and video_dir is not None:
            vec.envs[0].close()  # finishes the video file
            vec.envs[0] = make_env(spec)
    vec.close()
    return EvalResult(returns, lengths)


def _recorder(spec: EnvSpec, video_dir: str) -> gym.Env:
    try:
        import moviepy  # noqa: F401
    except ImportError:
        raise ConfigError("recording video needs moviepy: pip install 'deepq[video]' (or pip install moviepy)") \
            from None
    if callable(spec):
        raise ConfigError("video needs an env id so it can be made with render_mode='rgb_array'")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")  # rendering needs no sound device
    env = make_env(spec, render_mode="rgb_array")
    return gym.wrappers.RecordVideo(env, video_dir, episode_trigger=lambda ep: ep == 0, disable_logger=True)

