"""The "textbook" DQN: the plain single-file PyTorch loop most users start from (CleanRL's dqn.py style).

    python benchmarks/textbook_dqn.py --steps 50000 --train-freq 10 --num-envs 1

It is the yardstick of benchmarks/speed.py, not product code: per env step one env step
(a plain Gymnasium env; gymnasium's SyncVectorEnv when num_envs > 1) and, unless exploring,
one forward pass under no_grad to act; per update a minibatch from a NumPy replay buffer,
the target under no_grad, gather, MSE, backward and a default (non-fused) Adam step; a hard
target copy. Env steps are counted over all envs, so train_freq and target_every mean the
same whatever num_envs is. ε is drawn once per step for all envs, as CleanRL does.
The loop calls `greedy_action`, `update` and `ReplayBuffer.sample` by name, so the
harness can time them (see speed.py); nothing else is instrumented.

The replay buffer, the network, the ε schedule, acting and the update are the newcomer's example's
(examples/dqn_single_file.py, plain DQN: no Double DQN, MSE); this loop adds what the benchmark needs
and the example leaves out for readability: an env factory, vector envs, and no evaluation.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

# examples/ is not a package: put it on the path. speed.py replaces greedy_action and update in THIS module's
# namespace to time them, which is why the loop below calls them through these imported names.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from dqn_single_file import ReplayBuffer, epsilon, greedy_action, q_net, update


def train(env_fn: Callable[[], gym.Env], total_steps: int, num_envs: int = 1, seed: int = 0,
          hidden: tuple[int, int] = (120, 84), lr: float = 2.5e-4, gamma: float = 0.99, batch_size: int = 128,
          buffer_size: int = 10_000, learning_starts: int = 1_000, train_freq: int = 10, target_every: int = 500,
          eps_start: float = 1.0, eps_end: float = 0.05, eps_decay_steps: int = 5_000) -> list[float]:
    """Train for total_steps env steps (over all envs); returns the finished episodes' returns."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    vec = num_envs > 1
    # SAME_STEP: an env whose episode ended is reset within the same step(); its final obs is in info
    env: Any = (gym.vector.SyncVectorEnv([env_fn] * num_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
                if vec else env_fn())
    obs_dim = int(np.prod((env.single_observation_space if vec else env.observation_space).shape))
    n_actions = int((env.single_action_space if vec else env.action_space).n)
    q_network = q_net(obs_dim, n_actions, hidden)
    target_network = q_net(obs_dim, n_actions, hidden).requires_grad_(False)
    target_network.load_state_dict(q_network.state_dict())
    optimizer = torch.optim.Adam(q_network.parameters(), lr=lr)
    rb = ReplayBuffer(buffer_size, obs_dim, rng)

    obs, _ = env.reset(seed=seed)
    returns: list[float] = []
    ep_return = np.zeros(num_envs)
    for step in range(0, total_steps, num_envs):  # step: env steps collected so far
        if rng.random() < epsilon(step, eps_start, eps_end, eps_decay_steps):
            actions = rng.integers(n_actions, size=num_envs)
        else:
            actions = greedy_action(q_network, np.asarray(obs, np.float32).reshape(num_envs, obs_dim))
        if not vec:
            next_obs, reward, terminated, truncated, _ = env.step(int(actions[0]))
            rb.add(obs, int(actions[0]), float(reward), next_obs, bool(terminated))
            ep_return[0] += float(reward)
            if terminated or truncated:
                returns.append(float(ep_return[0]))
                ep_return[0] = 0.0
                next_obs, _ = env.reset()
        else:
            next_obs, rewards, terms, truncs, infos = env.step(actions)
            ep_return += rewards
            for i in range(num_envs):
                done = terms[i] or truncs[i]
                # on truncation the true final obs is s' (bootstrapped from); next_obs[i] is the reset obs
                rb.add(obs[i], int(actions[i]), float(rewards[i]), infos["final_obs"][i] if done else next_obs[i],
                       bool(terms[i]))
                if done:
                    returns.append(float(ep_return[i]))
                    ep_return[i] = 0.0
        obs = next_obs

        now = step + num_envs
        if now >= learning_starts:
            for _ in range(now // train_freq - step // train_freq):  # updates due in (step, now]
                update(q_network, target_network, optimizer, rb.sample(batch_size), gamma)
        if now // target_every > step // target_every:
            target_network.load_state_dict(q_network.state_dict())
    env.close()
    return returns


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=50_000)
    ap.add_argument("--train-freq", type=int, default=10)
    ap.add_argument("--num-envs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    returns = train(lambda: gym.make("CartPole-v1"), args.steps, args.num_envs, args.seed, train_freq=args.train_freq)
    print(f"{len(returns)} episodes; mean return of the last 20: {np.mean(returns[-20:]):.1f}")


if __name__ == "__main__":
    main()
