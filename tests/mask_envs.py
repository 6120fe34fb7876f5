"""Gymnasium envs that mask actions, for tests/test_masks.py and tests/test_masks_training.py: small corridors that give
their mask by each convention (info["action_mask"], a Dict observation's entry, an `action_masks()` method) and
record every illegal action they are given, an env that leaves no legal action, and a trap whose illegal action
costs -100 (with an agent whose greedy choice is that action)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

import deepq

TESTS = Path(__file__).parent
TINY: dict[str, Any] = dict(total_steps=600, learning_starts=100, batch_size=16, buffer_size=1_000, train_freq=2,
                            hidden_sizes=(16,), eps_decay_steps=300, target_update_interval=100, eval_interval=0,
                            eval_episodes=2, checkpoint_interval=0, progress=False, device="cpu")

# ---- envs that mask actions, and record what they were asked to do ---------------------------------------------

LENGTH = 6  # corridor cells 0..5; reaching cell 5 ends the episode
ILLEGAL: list[tuple[str, int, int]] = []  # (env class, cell, action) of every illegal action any corridor was given
STEPS: dict[str, int] = {}  # env class -> actions taken


@pytest.fixture(autouse=True)
def _fresh_records() -> Iterator[None]:
    ILLEGAL.clear()
    STEPS.clear()
    yield


def corridor_mask(cell: int) -> np.ndarray:
    """(4,) int8, 1 = legal: 0 left (not at cell 0), 1 right, 2 stay (odd cells only), 3 jump two (not near the end);
    none in the last cell, where the episode has ended (a terminal observation may allow nothing)."""
    inside = cell < LENGTH - 1
    return np.array([0 < cell and inside, inside, cell % 2 == 1 and inside, cell < LENGTH - 2], np.int8)


class Corridor(gym.Env):  # type: ignore[type-arg]
    """Walk right to the last cell (+1, terminal; -0.05 a step; truncated after 30 steps). An illegal action is
    recorded in ILLEGAL and does nothing. Subclasses say how the mask is given."""

    action_space = gym.spaces.Discrete(4)
    box = gym.spaces.Box(0.0, 1.0, (3,), np.float32)

    def __init__(self) -> None:
        self.cell, self.t = 0, 0

    def features(self) -> np.ndarray:
        return np.array([self.cell / (LENGTH - 1), self.cell % 2, self.t / 30], np.float32)

    def observe(self) -> Any:
        return self.features()

    def info(self) -> dict[str, Any]:
        return {}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self.cell, self.t = int(self.np_random.integers(0, 3)), 0
        return self.observe(), self.info()

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        a, name = int(action), type(self).__name__
        STEPS[name] = STEPS.get(name, 0) + 1
        if not corridor_mask(self.cell)[a]:
            ILLEGAL.append((name, self.cell, a))
        else:
            self.cell += (-1, 1, 0, 2)[a]
        self.t += 1
        done = self.cell == LENGTH - 1
        return self.observe(), 1.0 if done else -0.05, done, self.t >= 30 and not done, self.info()


class DictCorridor(Corridor):
    """The mask as a Dict observation's "action_mask" entry."""

    observation_space = gym.spaces.Dict({"observation": Corridor.box, "action_mask": gym.spaces.MultiBinary(4)})

    def observe(self) -> Any:
        return {"observation": self.features(), "action_mask": corridor_mask(self.cell)}


class FloatMaskCorridor(DictCorridor):
    """The mask as a float32 Box(0, 1) entry, as many custom envs declare it."""

    observation_space = gym.spaces.Dict({"observation": Corridor.box,
                                         "action_mask": gym.spaces.Box(0.0, 1.0, (4,), np.float32)})

    def observe(self) -> Any:
        return {"observation": self.features(), "action_mask": corridor_mask(self.cell).astype(np.float32)}


class DictCellCorridor(Corridor):
    """A Dict observation whose "observation" entry is Discrete (the cell)."""

    observation_space = gym.spaces.Dict({"observation": gym.spaces.Discrete(LENGTH),
                                         "action_mask": gym.spaces.MultiBinary(4)})

    def observe(self) -> Any:
        return {"observation": self.cell, "action_mask": corridor_mask(self.cell)}


class MethodCorridor(Corridor):
    """The mask from an `action_masks()` method (sb3-contrib's convention); the observation is the cell, Discrete."""

    observation_space = gym.spaces.Discrete(LENGTH)

    def observe(self) -> Any:
        return self.cell

    def action_masks(self) -> np.ndarray:
        return corridor_mask(self.cell).astype(bool)


class DeadEnd(gym.Env):  # type: ignore[type-arg]
    """info["action_mask"] with no legal action from step 3 on, while the episode goes on (it ends at step 10)."""

    observation_space = gym.spaces.Box(0.0, 10.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(3)

    def __init__(self, render_mode: str | None = None) -> None:  # (gymnasium.make passes render_mode)
        self.render_mode, self.t = render_mode, 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {"action_mask": np.ones(3, np.int8)}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self.t += 1
        mask = np.zeros(3, np.int8) if self.t >= 3 else np.ones(3, np.int8)
        return np.array([self.t, 1.0], np.float32), 0.0, self.t >= 10, False, {"action_mask": mask}


class Trap(gym.Env):  # type: ignore[type-arg]
    """Action 0 is illegal everywhere and costs -100; action 1 earns 1, action 2 earns 2; 5 steps an episode."""

    observation_space = gym.spaces.Dict({"observation": gym.spaces.Box(0.0, 1.0, (2,), np.float32),
                                         "action_mask": gym.spaces.MultiBinary(3)})
    action_space = gym.spaces.Discrete(3)

    def _obs(self) -> dict[str, np.ndarray]:
        return {"observation": np.array([self.t / 5, 1.0], np.float32), "action_mask": np.array([0, 1, 1], np.int8)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self.t += 1
        return self._obs(), (-100.0, 1.0, 2.0)[int(action)], False, self.t >= 5, {}


def trap_agent(**kw: Any) -> deepq.Agent:
    """An agent on Trap whose Q values are (10, 0, 1) everywhere: greedy would take the illegal action 0."""
    agent = deepq.Agent((2,), 3, deepq.Config(env=Trap, hidden_sizes=(16,), device="cpu", **kw))
    last = [m for m in agent.online.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():  # in place: the policy's NumPy views of the weights see it
        last.weight.zero_()
        last.bias.copy_(torch.tensor([10.0, 0.0, 1.0]))
    return agent
