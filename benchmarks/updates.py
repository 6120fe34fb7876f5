"""Gradient updates per second, deepq's update paths side by side in one run, for the MLP (batch 128) and the
Nature CNN (batch 32), on CPU or CUDA. On a GPU these are the speed issue's GPU figures.

    python benchmarks/updates.py                          # the default device (CUDA when available)
    python benchmarks/updates.py --device cpu --seconds 2 --nets mlp,small-cnn

Every variant runs the same TD update (MSE, hard target, no Double DQN, Adam lr 2.5e-4, γ 0.99): the MLP 120-84
on CartPole-sized observations (4 floats, 2 actions), the Nature CNN on uint8 4×84×84 frames (6 actions), and
deepq's small CNN on MinAtar Breakout's 4×10×10 grid (3 actions, batch 32).
  eager     deepq's plain autograd update (fused=False). Minibatches are drawn on the host from a ReplayMemory and
            copied to the device at every update, as in the usual single-file PyTorch DQN.
  deepq     `agent.learner.update` as deepq runs it by default: the NumPy update for the MLP on CPU, the autograd
            update elsewhere (a CUDA fast path comes back only when a GPU measurement here justifies it).
            Minibatches as in eager.
  resident  the eager update, with the replay held on the device: indices drawn there, rows gathered there, so no
            host-to-device copy per update.
  compiled  resident, with the TD loss (both forward passes, the target, the loss) under torch.compile; on CUDA
            with mode="reduce-overhead", which replays it as CUDA graphs. Backward and the fused Adam step are eager
            calls, and nothing reads the loss on the host (the other variants check it is finite every update).
Before timing, the compiled loss is checked against the eager one on the same minibatch (rtol 1e-4). Rates are
updates per second over `--seconds` of updates after a warm-up (which includes compiling), with the device
synchronized before and after; `--repeats` runs of each, median reported, variants interleaved.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

import deepq
from deepq.agent import Agent
from deepq.core.device import set_cpu_threads
from deepq.core.losses import td_loss, td_target
from deepq.core.replay import Batch, ReplayMemory

NETS = {  # name: (obs_shape, obs dtype, actions, batch size, replay rows)
    "mlp": ((4,), np.float32, 2, 128, 10_000),
    "cnn": ((4, 84, 84), np.uint8, 6, 32, 2_000),
    "small-cnn": ((4, 10, 10), np.uint8, 3, 32, 10_000),  # MinAtar Breakout's grid: deepq's small CNN
}
VARIANTS = ("eager", "deepq", "resident", "compiled")


def filled_replay(net: str, device: torch.device, seed: int) -> ReplayMemory:
    shape, dtype, n_actions, _, rows = NETS[net]
    rng = np.random.default_rng(seed)
    mem = ReplayMemory(rows, shape, obs_dtype=dtype, device=device)

    def obs(n: int) -> np.ndarray:
        if dtype == np.uint8:
            return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
        return rng.normal(size=(n, *shape)).astype(np.float32)

    for _ in range(rows // 500):
        mem.add(obs(500), rng.integers(n_actions, size=500), rng.normal(size=500).astype(np.float32), obs(500),
                rng.random(500) < 0.05)
    return mem


def make_agent(net: str, device: torch.device, fused: bool, seed: int) -> Agent:
    shape, _, n_actions, batch, rows = NETS[net]
    torch.manual_seed(seed)
    cfg = deepq.Config(env="CartPole-v1", device=str(device), fused=fused, batch_size=batch, buffer_size=rows,
                       loss="mse", double=False, max_grad_norm=0.0, target="hard", lr=2.5e-4, gamma=0.99)
    return Agent(shape, n_actions, cfg)


def td_loss_of(agent: Agent) -> Callable[..., torch.Tensor]:
    """The TD loss of agent's online and target nets, as one function of the minibatch's tensors."""
    online, target = agent.online, agent.target
    assert target is not None

    def loss_fn(obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, next_obs: torch.Tensor,
                discounts: torch.Tensor) -> torch.Tensor:
        q = online(obs).gather(1, actions.unsqueeze(1)).squeeze(1)  # (B,) Q(s, a)
        with torch.no_grad():
            y = td_target(rewards, discounts, target(next_obs))  # (B,)
        return td_loss(q, y, "mse")

    return loss_fn


def resident_sampler(mem: ReplayMemory, device: torch.device, seed: int) -> Callable[[int], Batch]:
    """Minibatches drawn and gathered on the device, from a copy of mem's filled rows held there."""
    n = mem.size
    rows = {k: torch.from_numpy(np.ascontiguousarray(getattr(mem, k)[:n])).to(device)
            for k in ("obs", "next_obs", "actions", "rewards", "terminated")}
    rows["actions"] = rows["actions"].long()
    gen = torch.Generator(device=device).manual_seed(seed)
    gamma = mem.gamma

    def sample(batch_size: int) -> Batch:
        idx = torch.randint(0, n, (batch_size,), device=device, generator=gen)  # (B,)
        terminated = rows["terminated"].index_select(0, idx)
        return Batch(rows["obs"].index_select(0, idx), rows["actions"].index_select(0, idx),
                     rows["rewards"].index_select(0, idx), rows["next_obs"].index_select(0, idx), terminated,
                     gamma * (1.0 - terminated.float()))

    return sample


def update_fn(variant: str, net: str, device: torch.device, seed: int) -> Callable[[], object]:
    """One zero-argument call = one gradient update of `variant` (minibatch included)."""
    batch = NETS[net][3]
    mem = filled_replay(net, device, seed)
    agent = make_agent(net, device, fused=variant == "deepq", seed=seed)
    rng = np.random.default_rng(seed)
    if variant in ("eager", "deepq"):
        return lambda: agent.learner.update(mem.sample(batch, rng))
    sample = resident_sampler(mem, device, seed)
    if variant == "resident":
        return lambda: agent.learner.reference_update(sample(batch))
    loss_fn = td_loss_of(agent)
    compiled = torch.compile(loss_fn, mode="reduce-overhead" if device.type == "cuda" else "default")
    probe = sample(batch)
    args = (probe.obs, probe.actions, probe.rewards, probe.next_obs, probe.discounts)
    expected, got = loss_fn(*args).item(), compiled(*args).item()
    if not np.isclose(got, expected, rtol=1e-4):
        raise AssertionError(f"compiled TD loss {got} differs from the eager one {expected}")
    optimizer = agent.optimizer

    def step() -> torch.Tensor:
        b = sample(batch)
        loss = compiled(b.obs, b.actions, b.rewards, b.next_obs, b.discounts)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def rate(fn: Callable[[], object], device: torch.device, seconds: float, warmup: int) -> float:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    sync()
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(20):
            fn()
        n += 20
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--nets", default="mlp,cnn,small-cnn", help="comma-separated subset of mlp,cnn,small-cnn")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {','.join(VARIANTS)}")
    ap.add_argument("--seconds", type=float, default=5.0, help="timed seconds per run (default 5)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=50, help="untimed updates first (default 50)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (torch and BLAS; default 1)")
    args = ap.parse_args()
    device = torch.device(args.device)
    nets = [n for n in args.nets.split(",") if n]
    variants = [v for v in args.variants.split(",") if v]
    bad = [n for n in nets if n not in NETS] + [v for v in variants if v not in VARIANTS]
    if bad:
        ap.error(f"unknown choice(s) {bad}: nets are {','.join(NETS)}, variants {','.join(VARIANTS)}")
    set_cpu_threads(args.threads)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    print(f"device: {name}; torch {torch.__version__}; {args.seconds:g} s per run, median of {args.repeats}\n")
    print("| net | batch | " + " | ".join(f"{v} updates/s" for v in variants)
          + " | " + " | ".join(f"{v}/eager" for v in variants if v != "eager") + " |")
    print("|---" * (2 + 2 * len(variants) - ("eager" in variants)) + "|")
    for net in nets:
        fns = {v: update_fn(v, net, device, seed=0) for v in variants}
        runs: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(args.repeats):  # interleaved, so drifting clocks or load hit every variant alike
            for v in variants:
                runs[v].append(rate(fns[v], device, args.seconds, args.warmup))
        med = {v: statistics.median(r) for v, r in runs.items()}
        ratios = [f"{med[v] / med['eager']:.2f}×" if "eager" in med else "–" for v in variants if v != "eager"]
        print(f"| {net} | {NETS[net][3]} | " + " | ".join(f"{med[v]:,.0f}" for v in variants)
              + " | " + " | ".join(ratios) + " |", flush=True)


if __name__ == "__main__":
    main()
