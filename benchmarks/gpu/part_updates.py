"""The GPU check's update speed: gradient updates per second of each preset's network at its batch size, on the
device and on CPU, by update path.

    python benchmarks/gpu/part_updates.py --device cuda --results RESULTS.jsonl [--seconds 1] [--tiny]

Networks and batches are the presets': cartpole (MLP 64-64, batch 64), minatar-breakout (small CNN, 32),
minatar-breakout-pqn (small CNN with LayerNorm, PQN minibatch 128), atari (Nature CNN, 32) and atari-pqn (Nature
CNN with LayerNorm, 128), each with the preset's optimizer, loss and gradient clipping. Paths:
  deepq      what deepq's loop runs per update today: DQN presets draw the minibatch from a host ReplayMemory
             (copied to the device), PQN presets index the rollout already on the device; then Learner.update /
             fit_returns, and the loop's float(loss) (a device-to-host sync per update, as the loop has)
  resident   DQN presets: the replay rows held on the device, indices drawn there (benchmarks/updates.py's)
  graph      the whole update (draw, loss, backward, clipping, optimizer step) captured once as a CUDA graph and
             replayed; the loss is read back every 100 updates only. CUDA only; on CPU the same step runs eagerly
             for a few updates, as a check of its code, and no rate is recorded
  compiled   the loss under torch.compile(mode="reduce-overhead"), backward and step eager (as benchmarks/updates.py);
             CUDA only, run last (compiling takes tens of seconds per network)
  cpu        the deepq path on CPU (1 thread for the MLP, all cores for the CNNs), when --device is not CPU
Replay contents are random (uniform frames, rewards, 5% terminal): the update's cost does not depend on them.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from common import Deadline, add_benchmarks_to_path, cpu_threads, device_name, record
from torch import nn

import deepq
from deepq.agent import Agent
from deepq.core.device import set_cpu_threads
from deepq.core.losses import lambda_regression_loss
from deepq.core.replay import Batch, ReplayMemory

add_benchmarks_to_path()
from updates import resident_sampler  # noqa: E402 (benchmarks/updates.py)

SHAPES = {"cartpole": ((4,), np.float32, 2), "minatar-breakout": ((4, 10, 10), np.uint8, 6),
          "minatar-breakout-pqn": ((4, 10, 10), np.uint8, 6), "atari": ((4, 84, 84), np.uint8, 6),
          "atari-pqn": ((4, 84, 84), np.uint8, 6)}  # obs shape, dtype, actions (Pong's and MinAtar -v0's: 6)
ROWS = 2_000  # replay rows (DQN) or rollout size (PQN) the minibatches are drawn from
Step = Callable[[], torch.Tensor]


def preset_config(name: str, device: str) -> tuple[deepq.Config, int]:
    """The preset on `device`, and its minibatch size (PQN: one of its rollout's minibatches)."""
    cfg = deepq.preset(name, device=device, buffer_size=ROWS)
    batch = cfg.num_envs * cfg.rollout_len // cfg.minibatches if cfg.target == "pqn" else cfg.batch_size
    return cfg, batch


def random_obs(rng: np.random.Generator, name: str, n: int) -> np.ndarray:
    shape, dtype, _ = SHAPES[name]
    if dtype == np.uint8:
        return rng.integers(0, 256 if len(shape) == 3 and shape[1] == 84 else 2, size=(n, *shape), dtype=np.uint8)
    return rng.normal(size=(n, *shape)).astype(np.float32)


def filled_replay(name: str, device: torch.device, rng: np.random.Generator) -> ReplayMemory:
    shape, dtype, n_actions = SHAPES[name]
    mem = ReplayMemory(ROWS, shape, obs_dtype=dtype, device=device)
    for _ in range(ROWS // 500):
        mem.add(random_obs(rng, name, 500), rng.integers(n_actions, size=500),
                rng.normal(size=500).astype(np.float32), random_obs(rng, name, 500), rng.random(500) < 0.05)
    return mem


def rollout(name: str, device: torch.device, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
    """A PQN rollout on the device, as PQN's _prepare leaves it: obs (R, ...), actions (R,), returns (R,)."""
    n_actions = SHAPES[name][2]
    return (torch.as_tensor(random_obs(rng, name, ROWS), device=device),
            torch.as_tensor(rng.integers(n_actions, size=ROWS), device=device),
            torch.as_tensor(rng.normal(size=ROWS).astype(np.float32), device=device))


def capturable_optimizer(net: nn.Module, cfg: deepq.Config, device: torch.device) -> torch.optim.Optimizer:
    """The preset's optimizer (deepq.core.learner.make_optimizer's settings) with capturable state on CUDA."""
    cap = device.type == "cuda"
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(net.parameters(), lr=cfg.lr, alpha=0.95, eps=0.01, centered=True, momentum=0.95,
                                   capturable=cap)
    if cfg.optimizer == "radam":
        return torch.optim.RAdam(net.parameters(), lr=cfg.lr, foreach=True, capturable=cap)
    return torch.optim.Adam(net.parameters(), lr=cfg.lr, foreach=True, capturable=cap)  # (fused in deepq)


def graphed(agent: Agent, loss_of: Callable[[], torch.Tensor], device: torch.device) -> Step:
    """The whole update as one CUDA graph (PyTorch's whole-network capture): warm up on a side stream, capture
    once, then each call replays it. On CPU the uncaptured step itself."""
    params = list(agent.online.parameters())
    optimizer = capturable_optimizer(agent.online, agent.cfg, device)
    clip = agent.cfg.max_grad_norm

    def step() -> torch.Tensor:
        loss = loss_of()
        loss.backward()
        if clip > 0:
            nn.utils.clip_grad_norm_(params, clip)  # on tensors: no host sync, so it can be captured
        optimizer.step()
        return loss.detach()

    def eager() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        return step()

    if device.type != "cuda":
        return eager
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            eager()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)  # the captured backward then writes fresh gradients each replay
    with torch.cuda.graph(graph):
        static_loss = step()
    calls = [0]

    def replay() -> torch.Tensor:
        graph.replay()
        calls[0] += 1
        if calls[0] % 100 == 0 and not torch.isfinite(static_loss):
            raise FloatingPointError("the graphed update's loss is not finite")
        return static_loss

    return replay


def update_fn(variant: str, name: str, device: torch.device, seed: int = 0) -> tuple[Step, int]:
    """One zero-argument call = one update of `variant` on preset `name`; and the minibatch size."""
    cfg, batch = preset_config(name, str(device))
    shape, _, n_actions = SHAPES[name]
    torch.manual_seed(seed)
    agent = Agent(shape, n_actions, cfg)
    rng = np.random.default_rng(seed)
    if cfg.target == "pqn":
        obs, actions, returns = rollout(name, device, rng)

        def pqn_loss() -> torch.Tensor:
            idx = torch.randint(0, ROWS, (batch,), device=device)  # (B,) drawn on the device, capturable
            return lambda_regression_loss(agent.online, obs[idx], actions[idx], returns[idx], cfg.loss).loss

        if variant == "graph":
            return graphed(agent, pqn_loss, device), batch
        if variant == "compiled":
            return compiled_step(agent, pqn_loss, device), batch

        def deepq_pqn() -> torch.Tensor:  # PQN's learn(): a NumPy permutation slice, moved, then fit_returns
            idx = torch.as_tensor(rng.integers(0, ROWS, batch), device=device)
            return torch.tensor(float(agent.learner.fit_returns(obs[idx], actions[idx], returns[idx]).loss))
        return deepq_pqn, batch
    mem = filled_replay(name, device, rng)
    if variant in ("deepq", "cpu"):
        return (lambda: torch.tensor(float(agent.learner.update(mem.sample(batch, rng)).loss))), batch
    draw = resident_sampler(mem, device, seed) if variant == "resident" else default_sampler(mem, device)
    if variant == "resident":
        return (lambda: torch.tensor(float(agent.learner.reference_update(draw(batch)).loss))), batch

    def dqn_loss() -> torch.Tensor:
        return agent.learner.loss(draw(batch)).loss  # the preset's TD loss (double, Huber, C51 as it says)

    return (graphed(agent, dqn_loss, device) if variant == "graph" else compiled_step(agent, dqn_loss, device)), batch


def default_sampler(mem: ReplayMemory, device: torch.device) -> Callable[[int], Batch]:
    """resident_sampler with torch's default generator, which a CUDA graph capture can use."""
    n = mem.size
    rows = {k: torch.from_numpy(np.ascontiguousarray(getattr(mem, k)[:n])).to(device)
            for k in ("obs", "next_obs", "actions", "rewards", "terminated")}
    rows["actions"] = rows["actions"].long()
    gamma = mem.gamma

    def sample(batch_size: int) -> Batch:
        idx = torch.randint(0, n, (batch_size,), device=device)  # (B,)
        terminated = rows["terminated"].index_select(0, idx)
        return Batch(rows["obs"].index_select(0, idx), rows["actions"].index_select(0, idx),
                     rows["rewards"].index_select(0, idx), rows["next_obs"].index_select(0, idx), terminated,
                     gamma * (1.0 - terminated.float()))

    return sample


def compiled_step(agent: Agent, loss_of: Callable[[], torch.Tensor], device: torch.device) -> Step:
    """loss_of under torch.compile (CUDA graphs through mode='reduce-overhead'); backward and step eager."""
    compiled = torch.compile(loss_of, mode="reduce-overhead" if device.type == "cuda" else "default")
    optimizer = agent.optimizer
    params, clip = list(agent.online.parameters()), agent.cfg.max_grad_norm

    def step() -> torch.Tensor:
        loss = compiled()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip > 0:
            nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        return loss.detach()

    return step


def rate(fn: Step, device: torch.device, seconds: float) -> float:
    """Updates per second over at least `seconds`, the device synchronized at both ends; chunks of updates grow
    from 1, so a slow path (a Nature CNN on CPU) is not held to a fixed count."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    sync()
    n, chunk, start = 0, 1, time.perf_counter()
    while True:
        for _ in range(chunk):
            fn()
        n += chunk
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed
        chunk = min(2 * chunk, 100)


def measure(variant: str, name: str, device: torch.device, seconds: float, warmup: int) -> dict[str, float]:
    t0 = time.perf_counter()
    fn, batch = update_fn(variant, name, device)
    for _ in range(warmup):  # compiling and capturing happen here, timed apart
        fn()
    setup = time.perf_counter() - t0
    return {"updates_per_s": round(rate(fn, device, seconds), 1), "setup_s": round(setup, 2), "batch": batch}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--results", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=1.0, help="timed seconds per measurement (default 1)")
    ap.add_argument("--budget", type=float, default=85.0, help="seconds for the whole part; later ones skip")
    ap.add_argument("--presets", default=",".join(SHAPES))
    ap.add_argument("--tiny", action="store_true", help="the dry run: short timings, no compile")
    args = ap.parse_args()
    deadline = Deadline(args.budget)
    device = torch.device(args.device)
    torch.set_flush_denormal(True)  # as deepq.train does (Config.flush_denormal): denormals slow CPU updates
    presets = [p for p in args.presets.split(",") if p]
    on_gpu = device.type == "cuda"
    plan = [("deepq", device), *([("resident", device), ("graph", device)] if on_gpu else [("resident", device)]),
            *([("cpu", torch.device("cpu"))] if on_gpu else [])]
    compiled = [("compiled", device)] if on_gpu and not args.tiny else []
    for variant, dev in plan + compiled:
        # compiling takes tens of seconds a network: the Pong preset's first, then the MLP's, while time lasts
        first = ("atari-pqn", "cartpole") if variant == "compiled" else ()
        order = [p for p in first if p in presets] + [p for p in presets if p not in first]
        for name in order:
            if variant == "resident" and deepq.preset(name).target == "pqn":
                continue  # PQN's rollout is on the device already: its deepq path is resident
            if deadline.left() < (30 if variant == "compiled" else 3):
                record(args.results, "updates", preset=name, variant=variant, skipped="out of the part's time")
                continue
            threads = cpu_threads(name, args.tiny) if dev.type == "cpu" else 1
            set_cpu_threads(threads)
            warmup = 2 if args.tiny else 5 if dev.type == "cpu" else 20  # a CPU Nature CNN update takes ~0.1 s
            try:
                m = measure(variant, name, dev, 0.2 if args.tiny else args.seconds, warmup)
                record(args.results, "updates", preset=name, variant=variant, device=device_name(str(dev)),
                       threads=threads, **m)
            except Exception as e:  # a path failing on this device is a result: record it and go on
                record(args.results, "updates", preset=name, variant=variant, error=f"{type(e).__name__}: {e}"[:300])
    if not on_gpu:  # the graph step's code, run eagerly: it is the one captured on CUDA
        for name in presets:
            fn, _ = update_fn("graph", name, device)
            losses = [float(fn()) for _ in range(3)]
            record(args.results, "updates", preset=name, variant="graph", skipped="CUDA only (ran 3 uncaptured "
                   f"steps here, losses {', '.join(f'{x:.3g}' for x in losses)})")


if __name__ == "__main__":
    main()
