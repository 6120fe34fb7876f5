"""Memory: a run's replay memory, networks and evaluation are estimated before anything is allocated, and a run
that cannot fit is refused in one line."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import deepq
from deepq import ConfigError
from deepq.agent import Agent, plain_arch

GB = 10**9


def tiny(tmp_path: Path, **kw: Any) -> deepq.Config:
    base: dict[str, Any] = dict(total_steps=64, learning_starts=16, batch_size=8, buffer_size=64, train_freq=4,
                                eval_interval=0, checkpoint_interval=0, run_dir=str(tmp_path / "run"),
                                progress=False, device="cpu")
    return deepq.Config(**(base | kw))


TINY_ARGS = ("--total_steps", "64", "--learning_starts", "16", "--batch_size", "8", "--train_freq", "4",
             "--eval_interval", "0", "--checkpoint_interval", "0", "--progress", "false")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deepq.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The CLI failed with exit 2 and exactly one line on stderr, `deepq: error: ...` (no traceback, no warning)."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("deepq: error: "), proc.stderr[-3000:]
    return lines[0]


# ---- memory: estimated before allocating, refused in one line ---------------------------------------------

def test_a_replay_memory_of_a_trillion_transitions_is_refused_before_allocating(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        deepq.train(tiny(tmp_path, buffer_size=10**12))
    assert err.match(r"^buffer_size=1,000,000,000,000 needs ~\d+ TB for the replay memory .*; this machine has "
                     r"[\d.,]+ [MGT]B available: lower buffer_size$")
    assert not (tmp_path / "run" / "agent.pt").exists()


def test_huge_hidden_layers_are_refused_before_allocating(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        deepq.train(tiny(tmp_path, hidden_sizes=(100_000, 100_000)))
    assert err.match(r"^hidden_sizes=\[100000, 100000\] needs ~\d+ GB for the Q-network and its target copy "
                     r"\(10,000,800,002 parameters\); this machine has .* available: lower hidden_sizes$")


def test_a_billion_evaluation_episodes_are_refused_before_training(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^eval_episodes=1,000,000,000 needs ~80 GB for evaluation .*"
                                          r"lower eval_episodes$"):
        deepq.train(tiny(tmp_path, eval_episodes=10**9, eval_interval=32))
    assert not (tmp_path / "run" / "agent.pt").exists()


def test_mcts_target_memory_is_checked_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^buffer_size=10,000,000,000 needs ~.* TB for the replay memory"):
        deepq.train(tiny(tmp_path, env="openspiel:tic_tac_toe", target="mcts", buffer_size=10**10, arch="mlp"))


def test_cli_refuses_a_huge_buffer_in_one_line(tmp_path: Path) -> None:
    line = one_error_line(cli("train", "CartPole-v1", *TINY_ARGS, "--buffer_size", "1000000000000",
                              "--run_dir", str(tmp_path / "run"), cwd=tmp_path))
    assert "buffer_size=1,000,000,000,000 needs ~" in line and "lower buffer_size" in line


def _spaces(cfg: deepq.Config) -> tuple[tuple[int, ...], Any, int]:
    """The real env's observation shape and dtype and its number of actions."""
    from deepq.training.setup import env_kind

    if cfg.target == "mcts":
        env = env_kind(cfg).make_search_env(cfg)
        return tuple(env.obs_shape), np.float32, env.n_actions
    envs = env_kind(cfg).make_vec_env(cfg.replace(num_envs=1))  # the spaces only: one env (PQN presets have 128)
    try:
        return envs.obs_shape, envs.obs_dtype, envs.n_actions
    finally:
        envs.close()


@pytest.mark.parametrize("name", list(deepq.PRESETS))
def test_no_preset_is_refused_on_a_24_GB_machine(name: str) -> None:
    from deepq.memory import check_memory, estimate

    cfg = deepq.PRESETS[name]
    shape, dtype, n_actions = _spaces(cfg)
    from deepq.training.setup import arch_of, game_kind

    game, arch = game_kind(cfg.env) is not None, arch_of(cfg, shape)
    check_memory(cfg, shape, dtype, n_actions, arch, "cpu", available=22 * GB, game=game)  # 24 GB: ~22 GB available
    replay = estimate(cfg, shape, dtype, n_actions, arch, game=game)[0]
    if cfg.target == "pqn":  # no replay: one rollout (Atari: 4,096 transitions of two 4x84x84 stacks, 231 MB)
        assert replay.what == "the rollout" and replay.nbytes < 0.25 * GB
    elif name.startswith(("atari", "pong", "breakout", "rainbow-atari")):  # 1M frames of 84x84: counted, and fits
        assert 7 * GB < replay.nbytes < 7.5 * GB


@pytest.mark.parametrize("game", [False, True], ids=["single-agent", "game"])
def test_the_rollout_estimate_is_the_bytes_a_pqn_rollout_allocates(game: bool) -> None:
    from deepq.memory import replay_bytes
    from deepq.training.pqn import Rollout

    class Envs:  # what Rollout reads of a VecEnv
        num_envs, obs_shape, obs_dtype, n_actions = 8, (4, 10, 10), np.uint8, 6

    cfg = deepq.Config(target="pqn", num_envs=8, rollout_len=16)
    ro = Rollout(16, Envs(), legal=game)  # type: ignore[arg-type]
    returns = 8 * 16 * 4  # the float32 λ-returns computed from it
    allocated = _allocated(ro.obs, ro.final_obs, ro.actions, ro.rewards, ro.terminated, ro.ended, ro.next_legal)
    assert replay_bytes(cfg, (4, 10, 10), np.uint8, 6, legal=game) == allocated + returns


def _allocated(*arrays: np.ndarray | None) -> int:
    return sum(a.nbytes for a in arrays if a is not None)


@pytest.mark.parametrize("case", ["plain", "rounded-to-num_envs", "game-legal-moves", "prioritized"])
def test_replay_estimate_is_the_bytes_replay_memory_allocates(case: str) -> None:
    from deepq.core.per import PrioritizedSampler
    from deepq.core.replay import ReplayMemory
    from deepq.memory import replay_bytes
    from deepq.training.loop import make_replay
    from deepq.training.setup import env_kind

    kw: dict[str, Any] = {"plain": {}, "rounded-to-num_envs": dict(num_envs=3, buffer_size=1_001),
                          "game-legal-moves": dict(env="openspiel:tic_tac_toe"),
                          "prioritized": dict(prioritized=True, buffer_size=1_000)}[case]
    cfg = deepq.Config(**(dict(buffer_size=777, device="cpu") | kw))
    shape, n_actions = (3, 5), 9
    game = case == "game-legal-moves"
    kind = env_kind(cfg)
    assert kind.two_player == game
    memory = make_replay(cfg, shape, np.float32, torch.device("cpu"), n_actions, kind, kind.arch(cfg, shape))
    assert isinstance(memory, ReplayMemory)
    got = _allocated(memory.obs, memory.next_obs, memory.actions, memory.rewards, memory.terminated, memory.ended,
                     memory.next_legal)
    if cfg.prioritized:
        got += PrioritizedSampler(memory.num_slots, cfg.per_alpha).tree._tree.nbytes
    assert replay_bytes(cfg, shape, np.float32, n_actions, legal=game) == got


@pytest.mark.parametrize("num_envs", [1, 2, 3])
def test_replay_estimate_is_the_bytes_frame_replay_allocates(num_envs: int) -> None:
    from deepq.core.frame_replay import FrameReplay
    from deepq.envs.kinds import EnvKind
    from deepq.memory import replay_bytes
    from deepq.training.loop import make_replay

    cfg = deepq.Config(frame_stack=4, buffer_size=10_000, num_envs=num_envs, device="cpu")
    shape = (4, 84, 84)
    kind = EnvKind(cfg.env)  # a single-agent kind (what make_replay's old default was)
    memory = make_replay(cfg, shape, np.uint8, torch.device("cpu"), 6, kind, kind.arch(cfg, shape))
    assert isinstance(memory, FrameReplay)
    assert replay_bytes(cfg, shape, np.uint8, 6) == memory.nbytes() + memory._envs.nbytes


def test_replay_estimate_is_the_bytes_mcts_target_memory_allocates() -> None:
    from deepq.memory import replay_bytes
    from deepq.training.mcts import TargetMemory

    cfg = deepq.Config(target="mcts", buffer_size=500, env="openspiel:connect_four")
    memory = TargetMemory(cfg.buffer_size, (3, 6, 7), 7)
    assert replay_bytes(cfg, (3, 6, 7), np.float32, 7) == _allocated(memory.obs, memory.targets, memory.searched)


@pytest.mark.parametrize("kw", [dict(hidden_sizes=(64, 32)), dict(dueling=True, noisy=True, atoms=51),
                                dict(arch="small_cnn"), dict(arch="nature_cnn")],
                         ids=["mlp", "rainbow", "small", "nature"])
def test_network_estimate_is_the_bytes_the_agent_holds(kw: dict[str, Any]) -> None:
    from deepq.memory import network_needs

    shape = (4, 84, 84) if kw.get("arch") == "nature_cnn" else (4, 10, 10) if "arch" in kw else (8,)
    cfg = deepq.Config(device="cpu", **kw)
    arch = plain_arch(cfg, shape)
    agent = Agent(shape, 6, cfg, arch=arch)
    needs = network_needs(shape, 6, cfg, arch)
    assert needs is not None
    assert agent.target is not None
    held = sum(t.nbytes for net in (agent.online, agent.target) for t in net.state_dict().values())
    assert needs[0].nbytes == held


def test_the_estimate_allocates_nothing() -> None:
    from deepq.memory import check_memory

    # a petabyte replay and a 4-TB network: allocating either would be a MemoryError, not this ConfigError
    cfg = deepq.Config(buffer_size=10**14, hidden_sizes=(10**6, 10**6), device="cpu")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="PB for the replay memory"):
        check_memory(cfg, (4,), np.float32, 2, "mlp")
    assert time.perf_counter() - start < 2.0
