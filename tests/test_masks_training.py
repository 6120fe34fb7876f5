"""Action masks in training, evaluation and the Agent (the masks themselves, targets and replays: tests/test_masks.py):
every action a masked env is given in training and evaluation is legal, an env that leaves no legal action is one
line, Agent.act and predict choose among a mask, a masked run resumes bit for bit, and Taxi learns faster with its
mask (slow)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from mask_envs import (  # noqa: F401 (_fresh_records: the autouse fixture)
    ILLEGAL,
    LENGTH,
    STEPS,
    TESTS,
    TINY,
    DeadEnd,
    DictCellCorridor,
    DictCorridor,
    MethodCorridor,
    Trap,
    _fresh_records,
    corridor_mask,
    trap_agent,
)
from torch import nn

import deepq
from deepq.core.frame_replay import FrameReplay
from deepq.core.replay import ReplayMemory
from deepq.files import safe_load
from deepq.training.loop import CHECKPOINT_FORMAT, checkpoint_path

# ---- training: every action taken is legal ------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [dict(env=DictCorridor), dict(env=MethodCorridor),
                                dict(env=DictCorridor, frame_stack=2),
                                dict(env=MethodCorridor, n_step=3, double=True),
                                dict(env=DictCorridor, target="pqn", layer_norm=True, num_envs=4, rollout_len=16,
                                     minibatches=4, epochs=1, learning_starts=0, total_steps=640)],
                         ids=["dict", "method", "dict-frame-stack", "method-n-step-double", "dict-pqn"])
def test_training_on_a_masked_corridor_takes_only_legal_actions(tmp_path: Path, kw: dict[str, Any]) -> None:
    agent = deepq.train(deepq.Config(**{**TINY, "run_dir": str(tmp_path / "run"), **kw}))
    name = kw["env"].__name__
    assert STEPS[name] >= kw.get("total_steps", TINY["total_steps"])  # training's steps (and the final evaluation's)
    assert ILLEGAL == []
    assert agent.obs_shape == ((2, 3) if kw.get("frame_stack") else (3,) if name == "DictCorridor" else (LENGTH,))
    if kw.get("target") == "pqn":  # (PQN keeps no replay)
        return
    memory = safe_load(checkpoint_path(tmp_path / "run"), CHECKPOINT_FORMAT)["memory"]
    legal = memory["next_legal"]  # the replay stored the masks of s'
    assert legal.dtype == torch.bool and legal.shape[-1] == 4 and not legal.all() and legal.any(-1).any()
    if not kw.get("frame_stack"):  # each row's mask is its s' cell's (a terminal one's allows nothing)
        next_obs = memory["next_obs"].numpy()
        cells = next_obs.argmax(1) if name == "MethodCorridor" else np.rint(next_obs[:, 0] * (LENGTH - 1))
        assert legal.numpy().tolist() == [corridor_mask(int(c)).astype(bool).tolist() for c in cells]
        assert (cells == LENGTH - 1).any()  # some episodes reached the end


def test_training_with_action_masks_false_does_take_illegal_actions(tmp_path: Path) -> None:
    """The check above can fail: the same corridor, masks turned off, is given illegal actions."""
    deepq.train(deepq.Config(**{**TINY, "run_dir": str(tmp_path / "run"), "env": DictCorridor,
                                "action_masks": False, "total_steps": 200}))
    assert len(ILLEGAL) > 10 and {a for _, _, a in ILLEGAL} >= {0, 2, 3}


# ---- an env that leaves no legal action --------------------------------------------------------------------------

def test_an_env_with_no_legal_action_mid_episode_stops_training_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(deepq.EnvError) as err:
        deepq.train(deepq.Config(**{**TINY, "run_dir": str(tmp_path / "run"), "env": DeadEnd}))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("DeadEnd (env 0) gave an action_mask with no legal action in the step of episode 1, "
                              "at its step 3: an agent cannot act there.")
    assert message.endswith("(training env step 3)")


DEAD_END_CLI = """
import sys
sys.path.insert(0, {tests!r})
import gymnasium
from mask_envs import DeadEnd
gymnasium.register("DeadEndMask-v0", entry_point=DeadEnd)
from deepq.cli import main
sys.exit(main(["train", "DeadEndMask-v0", "--run_dir", {run!r}, "--progress", "false", "--total_steps", "200",
               "--learning_starts", "50", "--batch_size", "16", "--eval_interval", "0"]))
"""


def test_the_cli_reports_an_env_with_no_legal_action_in_one_line(tmp_path: Path) -> None:
    code = DEAD_END_CLI.format(tests=str(TESTS), run=str(tmp_path / "run"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("deepq: error: DeadEndMask-v0 (env 0) gave an action_mask with no "
                                                   "legal action in the step of episode 1, at its step 3"), lines
    assert "Traceback" not in result.stderr


# ---- evaluation ------------------------------------------------------------------------------------------------

def test_evaluation_never_takes_the_illegal_greedy_action() -> None:
    """Greedy would take action 0 (Q 10) and lose 100 a step; among the legal actions it takes 2 (+2 a step)."""
    agent = trap_agent()
    assert agent.act(np.array([0.0, 1.0], np.float32)) == 0  # the bare observation: no mask, the illegal argmax
    result = deepq.evaluate(agent, env=Trap, episodes=5)
    assert result.returns == [10.0] * 5 and result.lengths == [5] * 5
    unmasked = deepq.evaluate(trap_agent(action_masks=False), env=Trap, episodes=5)
    assert unmasked.returns == [-500.0] * 5


def test_epsilon_evaluation_explores_among_the_legal_actions_only() -> None:
    """eps = 0.9: random actions are 1 or 2 (returns between 5 and 10, some below 10), never the illegal 0."""
    result = deepq.evaluate(trap_agent(), env=Trap, episodes=20, eps=0.9, seed=3)
    assert all(5.0 <= r <= 10.0 for r in result.returns) and min(result.returns) < 10.0
    unmasked = deepq.evaluate(trap_agent(action_masks=False), env=Trap, episodes=20, eps=0.9, seed=3)
    assert min(unmasked.returns) < 0.0


def _taxi_agent(action_masks: bool) -> deepq.Agent:
    """A Taxi agent whose Q values are (0, 0, 0, 0, 5, 4) everywhere: pickup first, then dropoff."""
    agent = deepq.Agent((500,), 6, deepq.Config(env="Taxi-v4", hidden_sizes=(16,), device="cpu",
                                                action_masks=action_masks))
    last = [m for m in agent.online.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 0.0, 5.0, 4.0]))
    return agent


def test_evaluation_of_taxi_acts_on_its_masks() -> None:
    """Taxi gives -10 for an illegal pickup or dropoff and -1 a step otherwise. Masked, no step costs -10 (a
    return of at least -200 over the 200-step limit); unmasked, the agent picks up every step: -10 each, but for
    at most one legal pickup."""
    masked = deepq.evaluate(_taxi_agent(True), episodes=3)
    assert len(masked.returns) == 3 and all(r >= -200.0 for r in masked.returns)
    unmasked = deepq.evaluate(_taxi_agent(False), episodes=3)
    assert unmasked.lengths == [200] * 3 and all(r <= -1_991.0 for r in unmasked.returns)


# ---- Agent.act and predict ---------------------------------------------------------------------------------------

def test_act_on_a_dict_observation_chooses_among_its_mask() -> None:
    agent = trap_agent()
    features = np.array([0.2, 1.0], np.float32)
    assert agent.act({"observation": features, "action_mask": np.array([0, 1, 1], np.int8)}) == 2
    assert agent.act({"observation": features, "action_mask": np.array([0, 1, 0], np.int8)}) == 1
    assert agent.act({"observation": features, "action_mask": np.array([1, 1, 1], np.int8)}) == 0
    # q_values are every action's: the Dict's mask is neither applied nor checked (a terminal one may allow nothing)
    q = agent.q_values({"observation": features, "action_mask": np.zeros(3, np.int8)})
    assert q.shape == (3,) and int(q.argmax()) == 0
    # a mask given as `legal` wins over the Dict's own
    assert agent.act({"observation": features, "action_mask": np.array([1, 1, 1])}, legal=[False, True, False]) == 1
    batch = np.stack([features, features, features])
    legal = np.array([[0, 1, 1], [0, 1, 0], [1, 0, 0]], bool)
    assert agent.act(batch, legal=legal).tolist() == [2, 1, 0]
    assert agent.act({"observation": batch, "action_mask": legal}).tolist() == [2, 1, 0]
    assert agent.act(batch).tolist() == [0, 0, 0]


def test_act_on_a_dict_observation_with_a_discrete_entry_encodes_it_and_uses_its_mask() -> None:
    """The agent reads the factory's Dict space to know an int is a cell (one-hot, as training encodes it)."""
    agent = deepq.Agent((LENGTH,), 4, deepq.Config(env=DictCellCorridor, hidden_sizes=(16,), device="cpu"))
    first, last = [m for m in agent.online.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():  # Q(cell) = (3, 2, 1, 0) + cell · (0, 0, 0, 1): the cell decides between 0 and 3
        first.weight.zero_()
        first.bias.zero_()
        first.weight[0, :] = torch.arange(LENGTH, dtype=torch.float32)
        last.weight.zero_()
        last.weight[3, 0] = 1.0
        last.bias.copy_(torch.tensor([3.0, 2.0, 1.0, 0.0]))
    assert agent.act(0) == 0 and agent.act(4) == 3  # unmasked: Q(0) = (3, 2, 1, 0), Q(4) = (3, 2, 1, 4)
    assert agent.act({"observation": 0, "action_mask": corridor_mask(0)}) == 1  # 0 and 2 illegal in cell 0
    assert agent.act({"observation": 4, "action_mask": corridor_mask(4)}) == 0  # 3 illegal in cell 4
    q = agent.q_values({"observation": np.array([0, 4]), "action_mask": np.stack([corridor_mask(0), corridor_mask(4)])})
    assert q.tolist() == [[3.0, 2.0, 1.0, 0.0], [3.0, 2.0, 1.0, 4.0]]  # q_values: every action's, unmasked


def test_predict_takes_sb3_contribs_action_masks() -> None:
    agent = trap_agent(eval_eps=1.0)
    features = np.array([0.2, 1.0], np.float32)
    assert agent.predict(features) == (0, None)
    assert agent.predict(features, action_masks=np.array([0, 1, 0])) == (1, None)
    assert agent.predict({"observation": features, "action_mask": np.array([0, 0, 1])}) == (2, None)
    drawn = [agent.predict(features, deterministic=False, action_masks=[False, True, True])[0] for _ in range(100)]
    assert set(drawn) == {1, 2}  # eval_eps = 1: uniformly random among the legal actions
    actions, state = agent.predict(np.stack([features] * 50), deterministic=False,
                                   action_masks=np.tile([True, False, True], (50, 1)))
    assert state is None and actions.shape == (50,) and set(actions.tolist()) == {0, 2}


@pytest.mark.parametrize(("legal", "batch", "message"), [
    (np.array([1, 0]), False, r"^Agent.act: expected an action mask of shape \(3,\) .*; got an array of shape \(2,\)"),
    (np.ones((2, 3), bool), False, r"^Agent.act: expected an action mask of shape \(3,\) "),
    (np.full(3, 0.5, np.float32), False, r"^Agent.act: expected an action mask of shape \(3,\) .*float32"),
    (np.zeros(3, bool), False, r"^Agent.act: the action mask allows no action; at least one action must be legal$"),
    (np.ones(3, bool), True, r"^Agent.act: expected an action mask of shape \(4, 3\) "),
    (np.array([[1, 1, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0]]), True,
     r"^Agent.act: the action mask allows no action in row 1; at least one action must be legal$"),
], ids=["too-short", "a-batch-for-one", "floats-not-0-or-1", "all-false", "one-for-a-batch", "an-all-false-row"])
def test_a_bad_mask_given_to_the_agent_is_one_config_error_line(legal: np.ndarray, batch: bool, message: str) -> None:
    agent = trap_agent()
    obs = np.zeros((4, 2) if batch else (2,), np.float32)
    with pytest.raises(deepq.ConfigError, match=message) as err:
        agent.act(obs, legal=legal)
    assert "\n" not in str(err.value)
    with pytest.raises(deepq.ConfigError, match=message.replace("Agent.act", "Agent.predict")):
        agent.predict(obs, action_masks=legal)


# ---- resume, replay and memory estimates ------------------------------------------------------------------------

def test_a_resumed_taxi_run_ends_with_the_weights_of_one_that_never_stopped(tmp_path: Path) -> None:
    base = deepq.Config(**{**TINY, "env": "Taxi-v4", "total_steps": 3_000, "checkpoint_interval": 500, "num_envs": 4,
                           "buffer_size": 2_000, "n_step": 2, "eps_decay_steps": 6_000})
    whole = deepq.train(base.replace(run_dir=str(tmp_path / "whole")))
    deepq.train(base.replace(run_dir=str(tmp_path / "halves"), total_steps=1_500))
    resumed = deepq.train(base.replace(run_dir=str(tmp_path / "halves")), resume=tmp_path / "halves")
    for k, v in whole.online.state_dict().items():
        assert torch.equal(v, resumed.online.state_dict()[k]), k
    # the replay stored each s''s own mask: Taxi's mask is a function of the state
    memory = safe_load(checkpoint_path(tmp_path / "whole"), CHECKPOINT_FORMAT)["memory"]
    taxi = gym.make("Taxi-v4").unwrapped
    states = memory["next_obs"].argmax(1).tolist()
    expected = np.stack([taxi.action_mask(s).astype(bool) for s in states])  # type: ignore[attr-defined]
    assert memory["next_legal"].shape == (2_000, 6) and np.array_equal(memory["next_legal"].numpy(), expected)


def test_make_replay_allocates_the_masks_and_the_estimate_counts_their_bytes() -> None:
    from deepq.memory import replay_bytes
    from deepq.training.dqn import make_replay
    from deepq.training.setup import env_kind

    cpu = torch.device("cpu")
    cfg = deepq.Config(env="Taxi-v4", buffer_size=777, device="cpu")
    kind = env_kind(cfg)
    memory = make_replay(cfg, (500,), np.float32, cpu, 6, kind, kind.arch(cfg, (500,)), masked=True)
    assert isinstance(memory, ReplayMemory)
    assert memory.next_legal is not None and memory.next_legal.shape == (777, 6) and memory.next_legal.dtype == bool
    arrays = (memory.obs, memory.next_obs, memory.actions, memory.rewards, memory.terminated, memory.ended,
              memory.next_legal)
    assert replay_bytes(cfg, (500,), np.float32, 6, legal=True) == sum(a.nbytes for a in arrays)
    assert replay_bytes(cfg, (500,), np.float32, 6, legal=True) - replay_bytes(cfg, (500,), np.float32, 6) == 777 * 6
    plain = make_replay(cfg, (500,), np.float32, cpu, 6, kind, kind.arch(cfg, (500,)))
    assert isinstance(plain, ReplayMemory) and plain.next_legal is None

    stacked = cfg.replace(env=DictCorridor, frame_stack=2, num_envs=3, buffer_size=1_000)
    kind = env_kind(stacked)
    frames = make_replay(stacked, (2, 3), np.float32, cpu, 4, kind, kind.arch(stacked, (2, 3)), masked=True)
    assert isinstance(frames, FrameReplay)
    assert frames.next_legal is not None and frames.next_legal.shape == (3, 333, 4)
    assert replay_bytes(stacked, (2, 3), np.float32, 4, legal=True) == frames.nbytes() + frames._envs.nbytes
    unmasked = make_replay(stacked, (2, 3), np.float32, cpu, 4, kind, kind.arch(stacked, (2, 3)))
    assert isinstance(unmasked, FrameReplay) and unmasked.next_legal is None
    assert replay_bytes(stacked, (2, 3), np.float32, 4) == unmasked.nbytes() + unmasked._envs.nbytes


# ---- learning: the mask makes Taxi faster to learn (make test-slow) -----------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_taxi_learns_faster_with_its_mask(tmp_path: Path, seed: int) -> None:
    """The taxi preset solves (a 20-episode greedy mean of 7) within 25,000 env steps with its mask; without it the
    same seed has not by 30,000 (the 5-seed measurement, docs/guides/action-masks.md: 20,833 against 69,167)."""
    solved: dict[bool, int | None] = {}
    for masks in (True, False):
        run = tmp_path / f"masks-{masks}"
        deepq.train(deepq.preset("taxi", seed=seed, total_steps=30_000, progress=False, action_masks=masks,
                                 run_dir=str(run)))
        with open(run / "metrics.csv", newline="") as f:
            reached = [int(r["step"]) for r in csv.DictReader(f)
                       if r["eval_kind"] == "periodic" and float(r["eval_return"]) >= 7.0]
        solved[masks] = reached[0] if reached else None
    assert solved[True] is not None and solved[True] <= 25_000, solved
    assert solved[False] is None, solved
