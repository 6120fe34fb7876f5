"""How much memory a run needs, estimated before anything is allocated, so a run that cannot fit stops in
one line instead of dying later (a MemoryError traceback, or the kernel's OOM killer mid-run).

Every figure is computed from the sizes the memories and networks would have, never by allocating them:
the replay arrays from the same formulas ReplayMemory, FrameReplay and TargetMemory allocate by (tested
against their nbytes), the networks' parameter counts by building them on torch's meta device (shapes,
no storage). The replay is counted full (a resumed run may fill it), and twice over: a checkpoint copies
what it holds (ReplayMemory.state_dict, and FrameReplay's until its frame ring is full).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepq.components import network_config
from deepq.config import Config
from deepq.core.networks import NetworkConfig, build_network
from deepq.errors import ConfigError

# evaluate() fills two arrays of `episodes` (float64 returns, int64 lengths), then lists of Python numbers
# (a float object and a list slot each: ~32 bytes apiece): per episode 16 + 2 x 32 bytes.
EVAL_BYTES_PER_EPISODE = 16 + 2 * 32
# FrameReplay per transition: int64 next_pos and start_pos, int32 actions, float32 rewards, bool terminated
FRAME_TRANSITION_BYTES = 8 + 8 + 4 + 4 + 1
# A search tree's node per simulation: its statistics arrays, the cloned game state and Python's objects; measured
# with tracemalloc at ~1.9 kB per simulation on Connect Four (observations of 336 bytes), taken as 1.5 kB + obs.
SEARCH_NODE_BYTES = 1_500


@dataclass(frozen=True)
class Need:
    """One thing a run allocates: `nbytes` for `what`, set by `setting` (which `fix` lowers)."""

    what: str  # "the replay memory"
    setting: str  # "buffer_size=1,000,000"
    fix: str  # "lower buffer_size"
    nbytes: int
    on_device: bool = False  # it lives on the training device (the networks), not necessarily the host


def _numel(shape: tuple[int, ...]) -> int:
    return math.prod(int(d) for d in shape)


def replay_bytes(cfg: Config, obs_shape: tuple[int, ...], obs_dtype: Any, n_actions: int, *,
                 legal: bool = False) -> int:
    """Bytes of the arrays the run's experience memory allocates (deepq.training.dqn.make_replay's,
    target='mcts''s TargetMemory, or target='pqn''s rollout), with prioritized replay's sum tree. `legal`
    (games, envs that mask actions): s' legal moves too."""
    obs = _numel(obs_shape) * np.dtype(obs_dtype).itemsize  # one observation
    n = cfg.num_envs
    if cfg.target == "pqn":  # Rollout: s and the true s', int64 actions, float32 rewards and returns, two bools
        return n * cfg.rollout_len * (2 * obs + 8 + 4 + 4 + 2 + (n_actions if legal else 0))
    if cfg.target == "mcts":  # TargetMemory: float32 obs, (A,) float32 targets, (A,) bool searched
        return cfg.buffer_size * (_numel(obs_shape) * 4 + n_actions * 5)
    if cfg.frame_stack > 1:  # FrameReplay: each frame once, in per-env rings with headroom
        k, slots = obs_shape[0], cfg.buffer_size // n
        frame_slots = slots + slots // 64 + k
        frames = n * frame_slots * _numel(obs_shape[1:]) * np.dtype(obs_dtype).itemsize
        per_env = n * (8 + 8 + 8 + 1 + 8 + obs)  # tail, written, episode_start, new_episode, _envs, last_next
        moves = n_actions if legal else 0  # an env that masks actions: the (A,) legal actions of s'
        total, num_slots = frames + n * slots * (FRAME_TRANSITION_BYTES + moves) + per_env, n * slots
    else:  # ReplayMemory: obs and next_obs, int64 actions, float32 rewards and terminated, bool ended
        capacity = cfg.buffer_size - cfg.buffer_size % n
        moves = n_actions if legal else 0  # games: the (A,) legal moves of s'
        total, num_slots = capacity * (2 * obs + 8 + 4 + 4 + 1 + moves), capacity
    if cfg.prioritized:  # SumTree: float64 nodes, twice the leaves rounded up to a power of two
        total += 2 * (1 << (num_slots - 1).bit_length()) * 8
    return total


def actor_batches_need(cfg: Config, obs_shape: tuple[int, ...], obs_dtype: Any, n_actions: int, *,
                       legal: bool = False) -> Need:
    """A distributed run's batches: each actor builds actor_batch × num_envs n-step transitions (s, s', int64
    action, float32 return, discount and priority, bool terminated; games: s' legal moves) and up to max_in_flight
    of them wait in Ray's object store, all on this machine for a local Ray. Counted twice: the actor's copy."""
    obs = _numel(obs_shape) * np.dtype(obs_dtype).itemsize
    n = cfg.num_actors * cfg.max_in_flight * cfg.actor_batch * cfg.num_envs
    per = 2 * obs + 8 + 4 + 4 + 4 + 1 + (n_actions if legal else 0)
    return Need("the actors' batches in flight (Ray's object store, and each actor's copy)",
                f"num_actors × max_in_flight × actor_batch × num_envs = {n:,} transitions",
                "lower actor_batch or max_in_flight", 2 * n * per)


def evaluation_bytes(cfg: Config, episodes: int | None = None, *, seats: int = 1) -> int:
    """Bytes one evaluation of `episodes` (default cfg.eval_episodes) builds; games play that many per seat."""
    n = cfg.eval_episodes if episodes is None else episodes
    return n * EVAL_BYTES_PER_EPISODE * seats


def network_size(obs_shape: tuple[int, ...], n_actions: int, net: NetworkConfig) -> tuple[int, int, int] | None:
    """(bytes of one copy of the Q-network's state dict, bytes of its parameters, their number) of the built-in network
    this config builds, from a copy on torch's meta device (nothing allocated, no random numbers drawn).
    None for a custom network (its factory is the user's code: it is not called twice)."""
    if net.factory is not None:
        return None
    with torch.device("meta"):
        module = build_network(obs_shape, n_actions, net)
    state = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    params = sum(p.numel() * p.element_size() for p in module.parameters())
    return state, params, sum(p.numel() for p in module.parameters())


def network_setting(obs_shape: tuple[int, ...], net: NetworkConfig) -> tuple[str, str]:
    """(what sets the network's size, how to lower it), for messages."""
    if net.arch == "mlp":
        setting, fix = f"hidden_sizes={list(net.hidden_sizes)}", "lower hidden_sizes"
    else:
        setting, fix = f"the {net.arch} on observations {list(obs_shape)}", "use smaller observations"
    if net.atoms > 1:
        setting, fix = f"{setting} with atoms={net.atoms}", f"{fix} or atoms"
    return setting, fix


def network_needs(obs_shape: tuple[int, ...], n_actions: int, cfg: Config, arch: str) -> tuple[Need, Need] | None:
    """What the Agent allocates (the online network and its target copy), and what training adds
    (gradients and optimizer state: Adam's two moments, centered RMSProp's three buffers). `arch`: the network
    the env kind resolved (EnvKind.arch)."""
    net = network_config(cfg, arch)
    size = network_size(obs_shape, n_actions, net)
    if size is None:
        return None
    state, params, count = size
    copies = 1 if cfg.target in ("none", "mcts", "pqn") else 2  # "none", "mcts" and "pqn" keep no target copy
    setting, fix = network_setting(obs_shape, net)
    moments = 3 if cfg.optimizer == "rmsprop" else 2
    nets = "the Q-network" + (" and its target copy" if copies == 2 else "") + f" ({count:,} parameters)"
    return (Need(nets, setting, fix, copies * state, on_device=True),
            Need("gradients and optimizer state", setting, fix, (1 + moments) * params, on_device=True))


def estimate(cfg: Config, obs_shape: tuple[int, ...], obs_dtype: Any, n_actions: int, arch: str,
             networks: bool = True, *, game: bool = False, masked: bool = False) -> list[Need]:
    """Everything a training run allocates that grows with its settings; `networks=False` leaves out the
    online and target networks (where an Agent already holds them). `arch`: the network the env kind resolved;
    `game`: a two-player game's run (legal moves stored, evaluations from each seat); `masked`: an env that masks
    actions (legal actions stored)."""
    replay = replay_bytes(cfg, obs_shape, obs_dtype, n_actions, legal=game or masked)
    if cfg.target == "pqn":  # no replay: one rollout, consumed before any checkpoint
        needs = [Need("the rollout", f"num_envs × rollout_len = {cfg.num_envs * cfg.rollout_len:,}",
                      "lower num_envs or rollout_len", replay)]
    else:
        setting = f"buffer_size={cfg.buffer_size:,}"
        needs = [Need("the replay memory", setting, "lower buffer_size", replay),
                 Need("the copy of it that checkpoints make", setting, "lower buffer_size", replay)]
    if cfg.target == "mcts":  # one search at a time holds its tree
        obs = _numel(obs_shape) * np.dtype(obs_dtype).itemsize
        needs.append(Need("one search tree (a node per simulation)", f"mcts_simulations={cfg.mcts_simulations:,}",
                          "lower mcts_simulations", cfg.mcts_simulations * (SEARCH_NODE_BYTES + obs)))
    if cfg.num_actors > 0 and cfg.target != "mcts":  # (search actors ship mcts_episodes episodes, not actor_batch)
        needs.append(actor_batches_need(cfg, obs_shape, obs_dtype, n_actions, legal=game or masked))
    needs += [Need("evaluation (each episode's return and length)", f"eval_episodes={cfg.eval_episodes:,}",
                  "lower eval_episodes", evaluation_bytes(cfg, seats=2 if game else 1))]
    nets = network_needs(obs_shape, n_actions, cfg, arch)
    if nets is not None:
        needs += list(nets) if networks else [nets[1]]
    return needs


def available_bytes(device: torch.device | str = "cpu") -> int:
    """Memory that can still be allocated: on a CUDA device what it has free; on the host MemAvailable from
    /proc/meminfo (os.sysconf's free pages where there is none), lowered to the room left under the
    process's cgroup memory limit (a container's)."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if free is None:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    room = _cgroup_room()
    return free if room is None else min(free, room)


def _cgroup_room() -> int | None:
    """Bytes left under this process's cgroup memory limit (v2, else v1), not counting reclaimable file
    cache; None without a limit."""
    for limit_file, usage_file, cache_key in (("memory.max", "memory.current", "inactive_file"),
                                              ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes",
                                               "total_inactive_file")):
        base = Path("/sys/fs/cgroup")
        try:
            limit = (base / limit_file).read_text().strip()
            if limit == "max" or int(limit) >= 1 << 60:  # v1 writes "no limit" as a huge number
                return None
            used = int((base / usage_file).read_text())
            stat = (base / limit_file).with_name("memory.stat").read_text().split()
            cache = int(stat[stat.index(cache_key) + 1]) if cache_key in stat else 0
            return max(int(limit) - used + cache, 0)
        except (OSError, ValueError):
            continue
    return None


def size_text(n: float) -> str:
    """Bytes for people: '7.3 TB', '21 GB', '512 MB' (decimal units)."""
    for unit, scale in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            x = n / scale
            return f"{x:.1f} {unit}" if x < 10 else f"{x:,.0f} {unit}"
    return f"{int(n)} bytes"


def refuse(needs: list[Need], available: int, where: str) -> None:
    """ConfigError naming the biggest need when all of them together exceed `available` bytes."""
    total = sum(n.nbytes for n in needs)
    if not needs or total <= available:
        return
    big = max(needs, key=lambda n: n.nbytes)
    others = [n.what for n in needs if n is not big and n.nbytes >= 0.05 * total]
    whole = f" (~{size_text(total)} in all, with {' and '.join(others)})" if others else ""
    raise ConfigError(f"{big.setting} needs ~{size_text(big.nbytes)} for {big.what}{whole}; {where} has "
                      f"{size_text(available)} available: {big.fix}")


def _where(device: torch.device) -> str:
    return "this machine" if device.type != "cuda" else f"{device}"


def check_memory(cfg: Config, obs_shape: tuple[int, ...], obs_dtype: Any, n_actions: int, arch: str,
                 device: torch.device | str = "cpu", networks: bool = True, available: int | None = None, *,
                 game: bool = False, masked: bool = False) -> None:
    """Raise ConfigError, in one line naming the biggest item and the setting to lower, when a training run of
    `cfg` needs more memory than the machine has available. Cheap: nothing is allocated.

    `networks=False`: the online and target networks exist already (an Agent was built); their training state
    (gradients, optimizer moments) is still counted. On a CUDA device the networks' part is checked against the
    device's free memory, the rest against the host's. `available`: the host's bytes (default: measured)."""
    device = torch.device(device)
    needs = estimate(cfg, obs_shape, obs_dtype, n_actions, arch, networks, game=game, masked=masked)
    host = needs
    if device.type == "cuda":
        host = [n for n in needs if not n.on_device]
        refuse([n for n in needs if n.on_device], available_bytes(device), _where(device))
    refuse(host, available_bytes() if available is None else available, "this machine")


def check_network_memory(obs_shape: tuple[int, ...], n_actions: int, cfg: Config, arch: str,
                         device: torch.device | str = "cpu", available: int | None = None) -> None:
    """ConfigError when the online network and its target copy alone do not fit where they would live."""
    device = torch.device(device)
    nets = network_needs(obs_shape, n_actions, cfg, arch)
    if nets is not None:
        refuse([nets[0]], available_bytes(device) if available is None else available, _where(device))
