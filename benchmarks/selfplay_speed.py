"""Connect Four self-play, acting only: plies per second on one core, OpenSpiel's games one by one against deepq's
NumPy Connect4Vec.

    taskset -c 1 python benchmarks/selfplay_speed.py                    # N = 128, 256, 512, 2 s each (~20 s)
    taskset -c 1 python benchmarks/selfplay_speed.py --envs 512 --seconds 5 --backends numpy
    taskset -c 1 python benchmarks/selfplay_speed.py --layer-norm       # the network as target='pqn' builds it

What one ply costs when self-play only acts (no replay, no update): N games stepped in lockstep, each step one
ε-greedy move per game among its legal moves, chosen the way training chooses it (SelfPlay.act -> the Agent's
Policy.explore: one batched forward pass of the connect4 preset's network, arch 'small_cnn', then the legal mask
and the ε draws), then one env step of all N games. The training env is built as training builds it
(GameKind.make_vec_env with cfg.backend 'gymnasium': GameVecEnv over OpenSpiel's connect_four; 'numpy':
Connect4Vec). One torch thread (`torch.set_num_threads(1)`); pin the process to a core with `taskset -c`.

The table: plies/s over the timed window (after a warm-up of 20 steps); plies per second of this process's CPU
time (the same where the core is not shared; higher where another process took turns on it); and µs per ply (wall)
split into the env step (game simulation: moves, win checks, observations, resets) and acting (inference: the
forward pass, masking, ε); "other" is the rest of the loop. FLOPs per ply: the network's multiply-adds per
observation, x2 (convolutions and linear layers; ReLUs and biases not counted).

`acting_rate(backend, num_envs, seconds)` is the measurement, importable by other benchmark scripts.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch
from torch import nn

import deepq
from deepq.agent import Agent
from deepq.games.kind import GameKind

# name -> cfg.backend: 'auto' is what training picks (Connect4Vec), 'openspiel' the reference env by its name
BACKENDS = {"openspiel": "gymnasium", "gymnasium": "gymnasium", "numpy": "numpy", "auto": "auto"}


def flops_per_ply(net: nn.Module, obs_shape: tuple[int, ...]) -> int:
    """2 x the multiply-adds of the network's convolutions and linear layers for one observation."""
    total = 0

    def count(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * int(np.prod(module.kernel_size))
            total += 2 * output[0].numel() * per_output
        elif isinstance(module, nn.Linear):
            total += 2 * module.in_features * module.out_features

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.inference_mode():
        net(torch.zeros((1, *obs_shape)))
    for hook in hooks:
        hook.remove()
    return total


def acting_rate(backend: str, num_envs: int, seconds: float, eps: float = 0.1, layer_norm: bool = False,
                seed: int = 0) -> dict[str, Any]:
    """Plies per second of Connect Four self-play acting only, with `num_envs` games on `backend` ('numpy' or 'auto':
    Connect4Vec; 'openspiel' or 'gymnasium': OpenSpiel through GameVecEnv) for about `seconds`. Returns the rate,
    µs per ply in the env step and in acting, the plies timed and the network's FLOPs per ply."""
    torch.set_num_threads(1)
    cfg = deepq.preset("connect4", num_envs=num_envs, seed=seed, backend=BACKENDS[backend], layer_norm=layer_norm)
    kind = GameKind(str(cfg.env))
    envs = kind.make_vec_env(cfg)
    players = kind.self_play(envs, cfg)
    agent = Agent(envs.obs_shape, envs.n_actions, cfg, arch=kind.arch(cfg, envs.obs_shape))
    rng = np.random.default_rng(seed)
    obs = envs.reset()
    for _ in range(20):  # warm-up: games in progress at every stage, torch's first calls done
        obs = envs.step(players.act(agent.policy, obs, eps, rng)).obs
    steps, t_act, t_env = 0, 0.0, 0.0
    start, cpu_start = time.perf_counter(), time.process_time()
    while True:
        t0 = time.perf_counter()
        actions = players.act(agent.policy, obs, eps, rng)  # (N,)
        t1 = time.perf_counter()
        obs = envs.step(actions).obs
        t2 = time.perf_counter()
        t_act, t_env, steps = t_act + t1 - t0, t_env + t2 - t1, steps + 1
        if t2 - start >= seconds:
            break
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    plies = steps * num_envs
    envs.close()
    return {"backend": backend, "env": type(envs).__name__, "num_envs": num_envs, "plies": plies,
            "plies_per_s": plies / wall, "plies_per_cpu_s": plies / cpu, "us_per_ply": 1e6 * wall / plies,
            "env_us_per_ply": 1e6 * t_env / plies,
            "act_us_per_ply": 1e6 * t_act / plies, "other_us_per_ply": 1e6 * (wall - t_act - t_env) / plies,
            "flops_per_ply": flops_per_ply(agent.online, envs.obs_shape), "eps": eps, "layer_norm": layer_norm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", default=["openspiel", "numpy"], choices=sorted(BACKENDS))
    parser.add_argument("--envs", nargs="+", type=int, default=[128, 256, 512])
    parser.add_argument("--seconds", type=float, default=2.0, help="timed window per row")
    parser.add_argument("--eps", type=float, default=0.1, help="ε of the ε-greedy moves (the preset's eps_end)")
    parser.add_argument("--layer-norm", action="store_true", help="LayerNorm in the network (target='pqn')")
    args = parser.parse_args()
    rows = [acting_rate(b, n, args.seconds, args.eps, args.layer_norm) for b in args.backends for n in args.envs]
    print(f"Connect Four self-play, acting only; one torch thread; ε={args.eps:g}; network small_cnn"
          f"{' with LayerNorm' if args.layer_norm else ''}, {rows[0]['flops_per_ply'] / 1e6:.3f} MFLOP per ply")
    print(f"{'env':<12} {'N':>5} {'plies/s':>10} {'plies/CPU-s':>12} {'µs/ply':>8} {'game sim':>9} {'inference':>10} "
          f"{'other':>7}")
    for r in rows:
        print(f"{r['env']:<12} {r['num_envs']:>5} {r['plies_per_s']:>10,.0f} {r['plies_per_cpu_s']:>12,.0f} "
              f"{r['us_per_ply']:>8.2f} "
              f"{r['env_us_per_ply']:>9.2f} {r['act_us_per_ply']:>10.2f} {r['other_us_per_ply']:>7.2f}")


if __name__ == "__main__":
    main()
