"""Stable-Baselines3 DQN on the benchmark's settings (a benchmark-only peer; imported only by speed.py's worker).

SB3 counts `train_freq` in calls to the vector env's step (n_envs env steps each) and does
`gradient_steps` updates after each such rollout, so for a deepq train_freq k (env steps,
summed over envs) and n envs the same gradient steps per env step is

    train_freq = k / gcd(k, n) vector steps,   gradient_steps = n / gcd(k, n)

e.g. k=10, n=8: 4 updates every 5 vector steps (40 env steps). SB3's own defaults differ from
the benchmark's and are overridden: tau=1.0 (hard copy), max_grad_norm=inf (SB3 always calls
clip_grad_norm_; inf makes it a no-op numerically, the norm is still computed), and
exploration_fraction = eps_decay_steps / total_steps. What cannot be changed without
subclassing: the loss is Huber (smooth_l1), not MSE; the target copy happens every
target_every // n_envs vector steps (496 env steps for 500 and 8 envs); ε is drawn once per
step for all envs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import gymnasium as gym
from stable_baselines3 import DQN
from stable_baselines3.common.env_util import make_vec_env


def sb3_train_freq(train_freq: int, num_envs: int) -> tuple[int, int]:
    """(train_freq in vector steps, gradient_steps) giving one update per `train_freq` env steps."""
    g = math.gcd(train_freq, num_envs)
    return train_freq // g, num_envs // g


def train(env_fn: Callable[[], gym.Env], total_steps: int, num_envs: int, seed: int, settings: dict[str, Any]) -> DQN:
    """Build SB3's DQN on `settings` (the harness's SETTINGS plus train_freq) and learn for total_steps env steps."""
    freq, grad_steps = sb3_train_freq(settings["train_freq"], num_envs)
    env = make_vec_env(env_fn, n_envs=num_envs, seed=seed)  # DummyVecEnv (in-process) + Monitor, as users get
    model = DQN(
        "MlpPolicy", env, seed=seed, device="cpu", verbose=0,
        policy_kwargs={"net_arch": list(settings["hidden_sizes"])},
        learning_rate=settings["lr"], gamma=settings["gamma"], batch_size=settings["batch_size"],
        buffer_size=settings["buffer_size"], learning_starts=settings["learning_starts"],
        train_freq=(freq, "step"), gradient_steps=grad_steps,
        target_update_interval=settings["target_update_interval"], tau=1.0, max_grad_norm=math.inf,
        exploration_initial_eps=settings["eps_start"], exploration_final_eps=settings["eps_end"],
        exploration_fraction=settings["eps_decay_steps"] / total_steps,  # may exceed 1: SB3 handles it
    )
    model.learn(total_timesteps=total_steps)
    env.close()
    return model
