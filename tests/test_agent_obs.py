"""Agent.act, q_values and predict take the observation the env gives: a Discrete space's int (one-hot encoded as
training encodes it), a Box's array, one or a batch; anything else is one ConfigError line saying what the agent
takes. predict is Stable-Baselines3's, so an SB3-style evaluation loop runs on a deepq agent.

Real Gymnasium envs throughout (Taxi-v4, FrozenLake-v1, CartPole-v1), and a real (tiny) training run on Taxi.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import deepq
from deepq.envs.base import obs_converter
from deepq.errors import ConfigError

TINY: dict[str, Any] = dict(total_steps=300, learning_starts=100, eval_interval=0, checkpoint_interval=0,
                            eval_episodes=1, progress=False, hidden_sizes=(16,), device="cpu")


@pytest.fixture(scope="module")
def taxi(tmp_path_factory: pytest.TempPathFactory) -> deepq.Agent:
    """An agent trained (briefly) by deepq.train on Taxi-v4: 500 Discrete states, 6 actions."""
    root = tmp_path_factory.mktemp("agent_obs")
    return deepq.train(deepq.Config(env="Taxi-v4", run_dir=str(root / "taxi"), **TINY))


@pytest.fixture(scope="module")
def cartpole() -> deepq.Agent:
    return deepq.Agent((4,), 2, deepq.Config(env="CartPole-v1", seed=0, hidden_sizes=(16,), device="cpu"))


def network_argmax(agent: deepq.Agent, x: np.ndarray) -> np.ndarray:
    """The greedy actions of the online network on network inputs x (B, *obs_shape), by torch."""
    with torch.no_grad():
        return agent.online(torch.as_tensor(x)).argmax(dim=1).numpy()


def training_encoding(env_id: str, states: list[int]) -> np.ndarray:
    """(B, n): the observations as training hands them to the network (deepq/envs/base.py's converter)."""
    convert = obs_converter(gym.make(env_id).observation_space)
    return np.stack([convert(s) for s in states])


def test_act_takes_taxis_int_observation_as_training_encodes_it(taxi: deepq.Agent) -> None:
    obs, _ = gym.make("Taxi-v4").reset(seed=0)
    states = [0, 3, 499, int(obs)]
    expected = network_argmax(taxi, training_encoding("Taxi-v4", states))  # (4,)
    got = [taxi.act(s) for s in states]
    assert all(type(a) is int for a in got)
    assert got == expected.tolist()
    with torch.no_grad():
        q = taxi.online(torch.as_tensor(training_encoding("Taxi-v4", [3]))).numpy()[0]  # (6,)
    np.testing.assert_allclose(taxi.q_values(3), q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "Taxi-v4"])
def test_a_built_agent_takes_ints_too_and_a_batch_agrees_with_each_one(env_id: str) -> None:
    env = gym.make(env_id)
    n, a = int(env.observation_space.n), int(env.action_space.n)  # type: ignore[attr-defined]
    agent = deepq.Agent((n,), a, deepq.Config(env=env_id, seed=1, hidden_sizes=(16,), device="cpu"))
    states = np.arange(0, n, max(1, n // 16))  # (B,) int64
    batch = agent.act(states)
    assert isinstance(batch, np.ndarray) and batch.shape == (len(states),)
    one_hot_rows = np.eye(n, dtype=np.float32)[states]  # (B, n)
    assert batch.tolist() == [agent.act(int(s)) for s in states] == network_argmax(agent, one_hot_rows).tolist()
    assert agent.act(np.int64(states[1])) == agent.act(np.array(states[1])) == agent.act(int(states[1]))
    assert agent.q_values(int(states[1])).shape == (a,)
    assert agent.q_values(states).shape == (len(states), a)
    np.testing.assert_allclose(agent.q_values(states)[1], agent.q_values(int(states[1])), rtol=1e-6)
    # what evaluation passes (the one-hot rows, float32) still works, one or a batch
    encoded = training_encoding(env_id, states.tolist())
    assert agent.act(encoded).tolist() == batch.tolist()
    assert agent.act(encoded[1]) == batch[1]


def test_legal_still_restricts_the_choice_for_int_observations(taxi: deepq.Agent) -> None:
    legal = np.zeros((2, 6), dtype=bool)
    legal[:, 4] = True
    assert taxi.act(np.array([3, 7]), legal).tolist() == [4, 4]
    assert taxi.act(3, legal[0]) == 4


TAXI_WANTS = "expected a Taxi-v4 observation: an int in 0..499 (one observation) or a 1-D int array (a batch); got "
CARTPOLE_WANTS = ("expected a CartPole-v1 observation: an array of shape (4,) (one observation) or (B, 4) "
                  "(a batch); got ")


def refusal(agent: deepq.Agent, method: str, obs: object) -> str:
    """The one-line ConfigError deepq raises for `obs`, raised by deepq itself (no numpy or torch error under it)."""
    with pytest.raises(ConfigError) as e:
        getattr(agent, method)(obs)
    message = str(e.value)
    assert "\n" not in message
    assert e.value.__cause__ is None and e.value.__context__ is None  # not a numpy/torch error rewrapped
    assert not isinstance(e.value, TypeError)
    assert message.startswith(f"Agent.{method}: ")
    return message.removeprefix(f"Agent.{method}: ")


@pytest.mark.parametrize(("obs", "got"), [
    ("abc", "'abc'"),
    (3.0, "3.0"),
    (600, "600"),
    (-1, "-1"),
    (True, "True"),
    (None, "None (NoneType)"),
    (np.array([3, 600]), "an array of shape (2,) (int64) holding 600 at index 1"),
    (np.zeros((2, 3)), "an array of shape (2, 3) (float64)"),
    (np.zeros(499, np.float32), "an array of shape (499,) (float32)"),
    ([[1, 2], [3]], "[[1, 2], [3]] (list)"),
])
def test_each_bad_taxi_observation_is_one_line_naming_what_the_agent_takes(taxi: deepq.Agent, obs: object,
                                                                           got: str) -> None:
    assert refusal(taxi, "act", obs) == TAXI_WANTS + got


@pytest.mark.parametrize(("obs", "got"), [
    (3, "3"),
    ("abc", "'abc'"),
    (np.zeros(3), "an array of shape (3,) (float64)"),
    ([0.0, 0.1, 0.2], "a list of shape (3,) (float64)"),
    (np.zeros((2, 2, 4)), "an array of shape (2, 2, 4) (float64)"),
])
def test_each_bad_cartpole_observation_is_one_line_naming_what_the_agent_takes(cartpole: deepq.Agent, obs: object,
                                                                               got: str) -> None:
    assert refusal(cartpole, "act", obs) == CARTPOLE_WANTS + got


def test_q_values_and_predict_name_themselves_in_the_refusal(taxi: deepq.Agent) -> None:
    assert refusal(taxi, "q_values", "abc") == TAXI_WANTS + "'abc'"
    assert refusal(taxi, "predict", 600) == TAXI_WANTS + "600"


def test_predict_returns_the_action_and_no_state_as_sb3_does(taxi: deepq.Agent, cartpole: deepq.Agent) -> None:
    assert taxi.predict(3) == (taxi.act(3), None)
    assert taxi.predict(3, state=None, episode_start=np.array([True]), deterministic=True) == (taxi.act(3), None)
    actions, state = taxi.predict(np.array([3, 7, 11]))
    assert state is None and actions.tolist() == taxi.act(np.array([3, 7, 11])).tolist()
    obs = np.array([0.01, -0.02, 0.03, 0.04], np.float32)
    assert cartpole.predict(obs) == (cartpole.act(obs), None)
    assert cartpole.predict(np.stack([obs, -obs]))[0].tolist() == cartpole.act(np.stack([obs, -obs])).tolist()


def test_predict_not_deterministic_acts_eps_greedily_with_eval_eps() -> None:
    def agent(eval_eps: float) -> deepq.Agent:
        return deepq.Agent((500,), 6, deepq.Config(env="Taxi-v4", seed=3, eval_eps=eval_eps, hidden_sizes=(16,),
                                                   device="cpu"))
    greedy = agent(0.0)  # the default eval_eps: deterministic=False is greedy too
    assert [greedy.predict(3, deterministic=False)[0] for _ in range(20)] == [greedy.act(3)] * 20
    random = agent(1.0)
    drawn = [random.predict(3, deterministic=False)[0] for _ in range(200)]
    assert all(type(a) is int for a in drawn) and set(drawn) == set(range(6))  # every action, uniformly drawn
    again = agent(1.0)  # the same seed draws the same actions
    assert [again.predict(3, deterministic=False)[0] for _ in range(200)] == drawn
    batch, _ = agent(1.0).predict(np.arange(50), deterministic=False)
    assert batch.shape == (50,) and len(set(batch.tolist())) > 1


@pytest.mark.parametrize("env_id", ["Taxi-v4", "CartPole-v1"])
def test_an_sb3_style_evaluation_loop_runs_an_episode(env_id: str, taxi: deepq.Agent, cartpole: deepq.Agent) -> None:
    agent = taxi if env_id == "Taxi-v4" else cartpole
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    steps, done = 0, False
    while not done:
        action, _ = agent.predict(obs, deterministic=True)
        obs, _, terminated, truncated, _ = env.step(action)
        steps, done = steps + 1, terminated or truncated
    assert 1 <= steps <= {"Taxi-v4": 200, "CartPole-v1": 500}[env_id]  # the envs' time limits
    envs = gym.make_vec(env_id, num_envs=3, vectorization_mode="sync")  # SB3's VecEnv case: a batch of observations
    obs, _ = envs.reset(seed=0)
    for _ in range(5):
        actions, _ = agent.predict(obs, deterministic=True)
        assert actions.shape == (3,)
        obs, *_ = envs.step(actions)
    envs.close()


@pytest.mark.parametrize("env_id", ["Taxi-v4", "CartPole-v1"])
def test_stable_baselines3s_own_evaluate_policy_runs_on_a_deepq_agent(env_id: str, taxi: deepq.Agent,
                                                                      cartpole: deepq.Agent) -> None:
    """SB3's evaluate_policy (a VecEnv of one env, predict with state and episode_start) where SB3 is installed
    (the 'bench' extra)."""
    evaluation = pytest.importorskip("stable_baselines3.common.evaluation")
    from stable_baselines3.common.monitor import Monitor

    agent = taxi if env_id == "Taxi-v4" else cartpole
    returns, lengths = evaluation.evaluate_policy(agent, Monitor(gym.make(env_id)), n_eval_episodes=2,
                                                  deterministic=True, return_episode_rewards=True)
    assert len(returns) == len(lengths) == 2 and all(n >= 1 for n in lengths)


def test_a_loaded_agent_and_one_given_its_space_take_ints(taxi: deepq.Agent, tmp_path: Path) -> None:
    loaded = deepq.load(taxi.run_dir)  # type: ignore[arg-type]
    assert loaded.act(np.array([3, 7])).tolist() == taxi.act(np.array([3, 7])).tolist()

    def not_made() -> gym.Env:
        raise AssertionError("the agent made its env, though it was told the observation space")

    space = gym.make("Taxi-v4").observation_space  # told its space, the agent makes no env to read it
    built = deepq.Agent((500,), 6, deepq.Config(env=not_made, hidden_sizes=(16,), device="cpu"),
                        observation_space=space)
    assert built.act(3) == int(network_argmax(built, training_encoding("Taxi-v4", [3]))[0])


def test_a_board_agent_takes_its_planes_flattened_as_it_always_has() -> None:
    """Game agents (board planes into an MLP) were fed batches of flattened planes, (B, D), before observations
    were checked (tests/test_gpu.py does); they still are, with the same actions as the planes give."""
    cfg = deepq.Config(env="openspiel:tic_tac_toe", hidden_sizes=(16,), seed=0)
    agent = deepq.Agent((3, 3, 3), 9, cfg, arch="mlp")
    planes = np.random.default_rng(0).random((8, 3, 3, 3)).astype(np.float32)
    np.testing.assert_array_equal(agent.act(planes.reshape(8, 27)), agent.act(planes))
    with pytest.raises(ConfigError, match="expected an openspiel:tic_tac_toe observation"):
        agent.act(planes.reshape(8, 3, 9))
