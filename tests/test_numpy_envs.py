"""deepq's NumPy vector envs (deepq/envs/numpy_cartpole.py, deepq/envs/numpy_minatar/) against the reference:
GymVecEnv over the Gymnasium and MinAtar envs, with the same seed and actions, must give the same observations,
rewards, flags and final observations at every step, across many episode ends, truncations, sticky actions
(MinAtar: carried across resets) and difficulty ramps; a resumed NumPy env goes on exactly; backend 'auto' picks
the NumPy env where there is one."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import deepq
import deepq.envs.numpy_cartpole as cartpole
from deepq.envs import kinds
from deepq.envs.base import Step, VecEnv
from deepq.envs.gym import GymVecEnv
from deepq.envs.numpy_cartpole import CartPoleVec
from deepq.envs.numpy_minatar import MinAtarVec
from deepq.envs.numpy_minatar.core import Streams
from deepq.errors import ConfigError
from deepq.files import safe_load
from deepq.training.loop import CHECKPOINT_FORMAT, checkpoint_path

Policy = Callable[[np.ndarray, np.random.Generator], np.ndarray]  # (N, *obs) -> (N,) actions


def noisy(good: np.ndarray, rng: np.random.Generator, n_actions: int, noise: float) -> np.ndarray:
    return np.where(rng.random(len(good)) < noise, rng.integers(n_actions, size=len(good)), good)


def balance(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """CartPole: push toward the pole's fall, a third of the time at random (episodes end and reach 500)."""
    return noisy((obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64), rng, 2, 0.3)


def follow_ball(v1: bool) -> Policy:
    """Breakout: the paddle goes where the ball heads (the trail gives its direction): walls get cleared."""
    def act(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(obs)
        ball, trail = obs[:, 1].reshape(n, 100).argmax(1) % 10, obs[:, 2].reshape(n, 100).argmax(1) % 10
        paddle, target = obs[:, 0, 9].argmax(1), np.clip(2 * ball - trail, 0, 9)
        good = np.where(target < paddle, 1, np.where(target > paddle, 2 if v1 else 3, 0))
        return noisy(good, rng, 3 if v1 else 6, 0.01)
    return act


def dodge_and_fire(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SpaceInvaders (-v1): step away from a low enemy bullet, else fire: waves get cleared (the ramp)."""
    r, cannon = np.arange(len(obs)), obs[:, 0, 9].argmax(1)
    danger = obs[:, 5, 5:9].any(axis=1)  # (N, 10) columns with an enemy bullet close above
    left_ok = (cannon > 0) & ~danger[r, np.maximum(cannon - 1, 0)]
    right_ok = (cannon < 9) & ~danger[r, np.minimum(cannon + 1, 9)]
    good = np.where(danger[r, cannon], np.where(left_ok, 1, np.where(right_ok, 2, 0)), 3)
    return noisy(good, rng, 4, 0.1)


def mostly(action: int, n_actions: int) -> Policy:
    return lambda obs, rng: noisy(np.full(len(obs), action), rng, n_actions, 0.3)


def uniform(n_actions: int) -> Policy:
    return lambda obs, rng: rng.integers(n_actions, size=len(obs))


# env id: (envs, steps, max_episode_frames (0: Gymnasium's), policy, what the run must see at least once)
CASES: dict[str, tuple[int, int, int, Policy, tuple[str, ...]]] = {
    "CartPole-v1": (8, 3_000, 0, balance, ("terminated", "truncated")),
    "MinAtar/Breakout-v1": (8, 3_000, 400, follow_ball(True), ("terminated", "truncated", "new wall")),
    "MinAtar/Breakout-v0": (4, 2_000, 1_000, uniform(6), ("terminated",)),
    "MinAtar/SpaceInvaders-v1": (8, 3_000, 500, dodge_and_fire, ("terminated", "truncated", "ramp")),
    "MinAtar/SpaceInvaders-v0": (4, 1_000, 1_000, uniform(6), ("terminated",)),
    "MinAtar/Freeway-v1": (8, 2_600, 3_000, mostly(1, 3), ("terminated", "won")),  # it ends itself at 2,501 frames
    "MinAtar/Freeway-v0": (4, 1_000, 300, uniform(6), ("truncated",)),
    "MinAtar/Asterix-v1": (8, 3_000, 300, uniform(5), ("terminated", "truncated", "ramp")),
    "MinAtar/Asterix-v0": (4, 1_000, 1_000, uniform(6), ("terminated",)),
}


def make_both(env_id: str, n: int, seed: int, frames: int) -> tuple[VecEnv, VecEnv]:
    """(deepq's NumPy env, the reference GymVecEnv), as kinds builds them for backend 'numpy' and 'gymnasium'."""
    cfg = deepq.Config(env=env_id, num_envs=n, seed=seed, max_episode_frames=frames or 108_000, backend="numpy")
    fast, ref = kinds.make_vec_env(cfg), kinds.make_vec_env(cfg.replace(backend="gymnasium"))
    assert isinstance(fast, CartPoleVec | MinAtarVec) and isinstance(ref, GymVecEnv)
    for name in ("obs_shape", "n_actions", "obs_dtype", "env_label", "num_envs", "exact_resume"):
        assert getattr(fast, name) == getattr(ref, name), name
    return fast, ref


def assert_same(a: Step, b: Step, t: int) -> None:
    for name in ("obs", "rewards", "terminated", "truncated", "final_obs", "ended"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, f"step {t}: {name} {x.dtype}{x.shape} vs {y.dtype}{y.shape}"
        if not np.array_equal(x, y):
            rows = sorted({int(i[0]) for i in np.argwhere(x != y)})
            raise AssertionError(f"step {t}: {name} differs in envs {rows}")


def events(env: VecEnv, before: dict[str, np.ndarray], out: Step) -> dict[str, int]:
    """What this step saw, per kind: episode ends, and the games' rare events (not a reset): a new wall of bricks,
    a step of the difficulty ramp, a won crossing."""
    game = getattr(env, "game", None)
    seen = {"terminated": int(out.terminated.sum()), "truncated": int((out.truncated & ~out.terminated).sum()),
            "won": int((out.rewards > 0).sum()) if type(game).__name__ == "Freeway" else 0}
    for name, field in (("new wall", "brick_count"), ("ramp", "ramp_index")):
        if field in before:
            seen[name] = int(((getattr(game, field) > before[field]) & ~out.ended).sum())
    return seen


@pytest.mark.parametrize("env_id", list(CASES))
def test_numpy_env_matches_the_reference_step_for_step(env_id: str) -> None:
    n, steps, frames, policy, expected = CASES[env_id]
    fast, ref = make_both(env_id, n, seed=7, frames=frames)
    rng = np.random.default_rng(1)
    obs = ref.reset()
    np.testing.assert_array_equal(fast.reset(), obs)
    seen: dict[str, int] = {}
    for t in range(steps):
        actions = policy(obs, rng)
        game = getattr(fast, "game", None)
        before = {k: getattr(game, k).copy() for k in ("brick_count", "ramp_index") if hasattr(game, k)}
        out = ref.step(actions)
        mine = fast.step(actions)
        assert_same(mine, out, t)
        for k, v in events(fast, before, mine).items():
            seen[k] = seen.get(k, 0) + v
        obs = out.obs
    print(env_id, seen)
    missed = [e for e in expected if not seen.get(e)]
    assert not missed, f"the run never saw {missed}: it checks less than it says"


def test_asterix_late_game_full_rows() -> None:
    """Asterix late in a game (spawning every frame): spawns into the last free row (no randint) and into no free
    row (draws, spawns nothing), which random play rarely lives to see. Both envs start each first episode there."""
    fast, ref = make_both("MinAtar/Asterix-v1", 8, seed=5, frames=1_000)
    ref.reset()
    fast.reset()
    late = {"spawn_speed": 1, "spawn_timer": 1, "ramp_index": 9, "ramp_timer": 100}
    for i, env in enumerate(ref.envs):  # type: ignore[attr-defined]
        for name, value in late.items():
            setattr(env.unwrapped.game.env, name, value)
            getattr(fast.game, name)[i] = value  # type: ignore[attr-defined]
    rng, seen = np.random.default_rng(3), {"last row": 0, "no row": 0}
    for t in range(300):
        game: Any = fast.game  # type: ignore[attr-defined]
        free = (~game.alive).sum(axis=1)[(game.spawn_timer == 0) & (np.array(fast.episodes) == 1)]  # first episodes
        seen["last row"] += int((free == 1).sum())
        seen["no row"] += int((free == 0).sum())
        actions = rng.integers(5, size=8)
        assert_same(fast.step(actions), ref.step(actions), t)
    assert seen["last row"] and seen["no row"], seen


def test_a_broken_constant_is_caught() -> None:
    """The equality test can fail: one physics constant changed by one ulp shows within a few hundred steps."""
    fast, ref = make_both("CartPole-v1", 4, seed=0, frames=0)
    rng, obs = np.random.default_rng(0), ref.reset()
    fast.reset()
    old = cartpole.GRAVITY
    cartpole.GRAVITY = np.nextafter(old, 10.0)
    try:
        with pytest.raises(AssertionError, match="differs"):
            for t in range(500):
                actions = balance(obs, rng)
                out = ref.step(actions)
                assert_same(fast.step(actions), out, t)
                obs = out.obs
    finally:
        cartpole.GRAVITY = old


@pytest.mark.parametrize("env_id", ["CartPole-v1", "MinAtar/Breakout-v0", "MinAtar/SpaceInvaders-v1",
                                    "MinAtar/Freeway-v1", "MinAtar/Asterix-v1"])
def test_a_resumed_env_goes_on_exactly(env_id: str) -> None:
    """state_dict at step k (saved and read back with torch.load(weights_only=True), as a checkpoint is), loaded
    into a fresh env: both go on identically, across later resets (time limits of 300 frames at most)."""
    n, _, frames, policy, _ = CASES[env_id]
    frames = min(frames, 300)
    env = make_both(env_id, n, seed=3, frames=frames)[0]
    rng = np.random.default_rng(2)
    obs = env.reset()
    for _ in range(150):
        obs = env.step(policy(obs, rng)).obs
    buffer = io.BytesIO()
    torch.save({"envs": env.state_dict()}, buffer)
    buffer.seek(0)
    copy = make_both(env_id, n, seed=3, frames=frames)[0]
    np.testing.assert_array_equal(copy.load_state_dict(torch.load(buffer, weights_only=True)["envs"]), obs)
    ended = 0
    for t in range(1_500):
        actions = policy(obs, rng)
        out = env.step(actions)
        assert_same(copy.step(actions), out, t)
        ended, obs = ended + int(out.ended.sum()), out.obs
    assert ended >= 4


def test_a_reference_checkpoint_is_refused_in_one_line() -> None:
    fast, ref = make_both("MinAtar/Breakout-v1", 2, seed=0, frames=100)
    ref.reset()
    with pytest.raises(ValueError, match=r"saved by the reference env .* resume with backend='gymnasium'"):
        fast.load_state_dict(ref.state_dict())


def test_streams_decode_as_randomstate_draws() -> None:
    """Streams' uniform, uniforms and below are RandomState's rand(), rand(k) and randint(n), word for word, also
    across its read-ahead blocks and after a rebuild from a checkpoint's count of used words."""
    rng = np.random.default_rng(0)
    streams, refs = Streams(3), [np.random.RandomState(s) for s in (5, 6, 7)]
    for i, s in enumerate((5, 6, 7)):
        streams.seed(i, s)
    rows = np.arange(3)
    for k in range(2_000):
        op = int(rng.integers(4))
        if op == 0:
            assert streams.uniform().tolist() == [r.rand() for r in refs]
        elif op == 1:
            assert streams.uniforms(rows, 8).tolist() == [r.rand(8).tolist() for r in refs]
        else:
            n = rng.integers(1, 9, size=3)
            assert streams.below(rows, n).tolist() == [r.randint(int(m)) for r, m in zip(refs, n, strict=True)]
        if k == 1_000:
            used, streams = streams.used(), Streams(3)
            for i, s in enumerate((5, 6, 7)):
                streams.seed(i, s, skip=used[i])
    assert refs[0].randint(1, 6, 8).tolist() == (1 + np.stack([streams.below(rows[:1], 5) for _ in range(8)], 1))[0]\
        .tolist()


def test_auto_picks_the_numpy_env_and_gymnasium_the_reference() -> None:
    for env_id, cls in [("CartPole-v1", CartPoleVec), ("MinAtar/Breakout-v1", MinAtarVec),
                        ("MinAtar/Asterix-v0", MinAtarVec)]:
        cfg = deepq.Config(env=env_id, num_envs=4)
        assert type(kinds.make_vec_env(cfg)) is cls and type(kinds.make_vec_env(cfg.replace(backend="numpy"))) is cls
        assert type(kinds.make_vec_env(cfg.replace(num_envs=3))) is GymVecEnv  # auto: 1-3 envs step faster one by one
        assert type(kinds.make_vec_env(cfg.replace(num_envs=1, backend="numpy"))) is cls
        assert type(kinds.make_vec_env(cfg.replace(backend="gymnasium"))) is GymVecEnv
        assert type(kinds.make_vec_env(cfg.replace(frame_stack=2))) is GymVecEnv  # auto: what NumPy cannot do
    for env_id in ("Acrobot-v1", "MinAtar/Seaquest-v1"):
        assert type(kinds.make_vec_env(deepq.Config(env=env_id))) is GymVecEnv
        with pytest.raises(ConfigError, match=r"^backend='numpy' has no NumPy env for .*CartPole-v1, MinAtar/Breakout"
                                              r"-v0.*; use --backend gymnasium \(or auto\) for the others$"):
            kinds.make_vec_env(deepq.Config(env=env_id, backend="numpy"))
    with pytest.raises(ConfigError, match=r"^backend='numpy' does not stack frames \(frame_stack=4\)"):
        kinds.make_vec_env(deepq.Config(env="CartPole-v1", backend="numpy", frame_stack=4))


def test_actions_out_of_range_are_refused() -> None:
    for env in (CartPoleVec(2, 0), MinAtarVec("MinAtar/Freeway-v1", 2, 0, 100)):
        env.reset()
        with pytest.raises(ValueError, match="takes one action"):
            env.step(np.array([0, env.n_actions]))


def test_pqn_trains_on_the_numpy_cartpole(tmp_path: Path) -> None:
    cfg = deepq.preset("cartpole-pqn", total_steps=4_096, eval_interval=2_048, eval_episodes=2,
                       checkpoint_interval=2_048, progress=False, run_dir=str(tmp_path / "run"))
    agent = deepq.train(cfg)
    state: dict[str, Any] = safe_load(checkpoint_path(tmp_path / "run"), CHECKPOINT_FORMAT)
    assert state["envs"]["backend"] == "numpy" and state["loop"]["step"] == 4_096
    assert agent.act(np.zeros(4, np.float32)) in (0, 1)
