"""Atari from pixels: ale-py envs with the standard DQN preprocessing, and EnvPool's C++ Atari as a VecEnv.

Both backends apply the same Config fields (Mnih et al. 2015, Machado et al. 2018):
no-op starts, FIRE to start the game, frame skip with a max over the last two emulator frames,
area resize to screen_size, grayscale, and a stack of the last frame_stack frames, padded at
reset by repeating the first frame. Rewards stay raw (the training loop clips them) and the
lives counter is reported, so the loop can treat a lost life as terminal.

Known differences between the backends (kept small on purpose):
- the time limit: ale-py counts emulator frames from the reset, no-ops included; EnvPool counts
  agent steps (max_episode_frames // frame_skip) after them;
- EnvPool's FIRE at reset replaces the last no-op frame, here it follows the no-ops; after a lost
  life, FIRE is pressed here (one emulator frame), while with EnvPool the agent must choose it;
- EnvPool crashes on noop_max=0 (1.2.5), so it runs with 1: one no-op frame, none when FIRE starts;
- when a game ends before the last two frames of a skip, EnvPool's final frame is the previous
  step's (it stops capturing); here it is the true last frame. Only terminal s' differ, unused by TD.
Otherwise the two give the same pixels and rewards for the same actions (tests/test_atari.py).
"""

from __future__ import annotations

import difflib
import re
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from deepq.config import Config
from deepq.core.device import usable_cpus
from deepq.envs.base import Step
from deepq.errors import ConfigError

ALE_HINT = "Atari needs ale-py (the game ROMs ship with it): pip install ale-py"
ENVPOOL_HINT = "backend='envpool' needs EnvPool (Linux/macOS wheels): pip install envpool"
FIRE = 1  # index of FIRE in the minimal action set of the games that use it (NOOP is 0)


def _ale_installed() -> bool:
    """Import ale-py, which registers the 'ALE/...' and '...NoFrameskip-v4' ids with Gymnasium."""
    try:
        import ale_py
    except ImportError:
        return False
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)  # no "A.L.E: Arcade Learning Environment" banner
    gym.register_envs(ale_py)
    return True


def _from_ale(spec: gym.envs.registration.EnvSpec) -> bool:
    return isinstance(spec.entry_point, str) and spec.entry_point.startswith("ale_py")


def is_atari(env_id: str) -> bool:
    """True for ids registered by ale-py ('ALE/Pong-v5', 'PongNoFrameskip-v4').

    Without ale-py, 'ALE/...' ids also count, so that make_atari_env can say what to install.
    """
    if not isinstance(env_id, str):
        return False
    if not _ale_installed():
        return env_id.startswith("ALE/")
    spec = gym.registry.get(env_id)
    return spec is not None and _from_ale(spec)


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name).lower()


def atari_id(name: str) -> str | None:
    """The 'ALE/<Game>-v5' id of a short game name ('pong', 'space_invaders', 'SpaceInvaders'), if registered."""
    if not _ale_installed():
        return None
    games = {_key(m.group(1)): env_id for env_id in gym.registry
             if (m := re.fullmatch(r"ALE/([A-Za-z0-9]+)-v5", env_id))}
    return games.get(_key(name))


def _require_atari(env_id: str) -> None:
    if not _ale_installed():
        raise ConfigError(f"{env_id!r}: {ALE_HINT}")
    if not is_atari(env_id):
        ids = [k for k, spec in gym.registry.items() if _from_ale(spec)]
        close = difflib.get_close_matches(env_id, ids, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else " Atari ids look like 'ALE/Pong-v5'."
        raise ConfigError(f"{env_id!r} is not an Atari game registered by ale-py.{hint}")


def _area_band(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Area resampling along one axis as (n_out, band) input indices and weights.

    Each output pixel averages the input span it covers: OpenCV's INTER_AREA when shrinking (what
    EnvPool uses), without OpenCV. A band, not a matrix, since a BLAS matmul here is slow when
    OpenBLAS threads contend with torch's.
    """
    scale = n_in / n_out
    lo, hi = np.arange(n_out) * scale, np.arange(1, n_out + 1) * scale  # output o covers [lo[o], hi[o])
    first = np.floor(lo).astype(np.int64)
    band = int(np.ceil(hi - first).max())
    pixel = first[:, None] + np.arange(band)  # (n_out, band)
    overlap = np.clip(np.minimum(hi[:, None], pixel + 1) - np.maximum(lo[:, None], pixel), 0.0, None)
    return np.minimum(pixel, n_in - 1), (overlap / scale).astype(np.float32)


class AtariFrames(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """No-op starts, FIRE to start, frame skip with max-pooling and area resize over an ale-py AtariEnv.

    The wrapped env must have frameskip=1 and obs_type 'grayscale' (frames (H, W)) or 'rgb'
    (frames (H, W, 3), returned channels first as (3, S, S)). Not gymnasium's AtariPreprocessing:
    when an episode ends inside a frame skip, that wrapper returns the previous step's frame (a
    wrong s' to bootstrap from at a time limit); here it is the true last frame. FIRE is pressed
    after a lost life too, and RGB frames come channels first.
    Its arguments are recorded (RecordConstructorArgs), so `env.spec.make()` rebuilds the whole stack.
    """

    def __init__(self, env: gym.Env, noop_max: int, frame_skip: int, screen_size: int, fire_reset: bool) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, noop_max=noop_max, frame_skip=frame_skip,
                                                 screen_size=screen_size, fire_reset=fire_reset)
        gym.Wrapper.__init__(self, env)
        meanings = env.unwrapped.get_action_meanings()  # type: ignore[attr-defined]
        if noop_max > 0 and meanings[0] != "NOOP":
            raise ConfigError(f"noop_max={noop_max} needs action 0 to be NOOP; this game's is {meanings[0]}")
        self.noop_max, self.frame_skip = noop_max, frame_skip
        # Games that wait for FIRE to serve (Breakout): press it rather than let the agent discover it
        self.fire = fire_reset and len(meanings) >= 3 and meanings[FIRE] == "FIRE"
        raw_shape = env.observation_space.shape  # (H, W) grayscale or (H, W, 3) RGB
        if raw_shape is None or len(raw_shape) not in (2, 3):
            raise ConfigError(f"AtariFrames needs an AtariEnv with obs_type 'grayscale' or 'rgb', got {raw_shape}")
        self._rows, self._row_w = _area_band(raw_shape[0], screen_size)  # (S, band) each
        self._cols, self._col_w = _area_band(raw_shape[1], screen_size)
        self._rgb = len(raw_shape) == 3
        shape = (3, screen_size, screen_size) if self._rgb else (screen_size, screen_size)
        self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)
        self._last: np.ndarray = np.zeros(raw_shape, np.uint8)  # the latest emulator frame
        self._lives = 0

    def _resize(self, frame: np.ndarray) -> np.ndarray:
        x = frame.astype(np.float32)
        if self._rgb:
            x = x.transpose(2, 0, 1)  # (3, H, W)
        x = (x[..., self._cols] * self._col_w).sum(-1)  # (..., H, S): columns first, in OpenCV's order
        x = (x[..., self._rows, :] * self._row_w[:, :, None]).sum(-2)  # (..., S, S)
        return np.rint(x).astype(np.uint8)  # (S, S) or (3, S, S)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        frame, info = self.env.reset(seed=seed, options=options)
        # Drawn from the AtariEnv's own generator, which reset(seed=s) reseeds: reproducible starts
        noops = int(self.np_random.integers(1, self.noop_max + 1)) if self.noop_max > 0 else 0
        for a in [0] * noops + [FIRE] * self.fire:
            frame, _, terminated, truncated, step_info = self.env.step(a)
            info = {**info, **step_info}
            if terminated or truncated:  # the game ended before it started (possible in a few games)
                frame, info = self.env.reset()
        self._last, self._lives = frame, int(info["lives"])
        return self._resize(frame), info

    def step(self, action: int) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        reward, frame, prev = 0.0, self._last, self._last
        terminated = truncated = False
        info: dict[str, Any] = {}
        for _ in range(self.frame_skip):
            prev = frame
            frame, r, terminated, truncated, info = self.env.step(action)
            reward += float(r)
            if terminated or truncated:
                break
        if self.fire and not (terminated or truncated) and info["lives"] < self._lives:
            # A life lost but not the game: serve again inside this step, so the agent never waits for it
            prev = frame
            frame, r, terminated, truncated, info = self.env.step(FIRE)
            reward += float(r)
        self._last, self._lives = frame, int(info["lives"])
        # Max over the last two emulator frames: some games draw sprites on alternate frames only
        pooled = np.maximum(prev, frame) if self.frame_skip > 1 else frame
        return self._resize(pooled), reward, terminated, truncated, info


def make_atari_env(env_id: str, cfg: Config, render_mode: str | None = None) -> gym.Env:
    """One ale-py Atari env with the standard preprocessing; obs (k, S, S) uint8, or (k, 3, S, S) for RGB.

    The ALE runs at frameskip=1 (AtariFrames skips and pools), with the minimal action set,
    sticky actions at p=0.25 when cfg.sticky_actions, and a truncation after cfg.max_episode_frames
    emulator frames. Rewards are raw; info["lives"] is there after reset and every step.
    """
    _require_atari(env_id)
    env = gym.make(env_id, frameskip=1, repeat_action_probability=0.25 if cfg.sticky_actions else 0.0,
                   full_action_space=False, max_num_frames_per_episode=cfg.max_episode_frames,
                   obs_type="grayscale" if cfg.grayscale else "rgb", render_mode=render_mode)
    env = AtariFrames(env, cfg.noop_max, cfg.frame_skip, cfg.screen_size, cfg.fire_reset)
    # padding_type="reset": the stack at reset is [f0] * k, which the frame replay memory relies on
    return gym.wrappers.FrameStackObservation(env, cfg.frame_stack, padding_type="reset")


def envpool_task(env_id: str) -> str:
    """EnvPool's name for the game of an ale-py id: 'ALE/SpaceInvaders-v5' -> 'SpaceInvaders-v5'."""
    _require_atari(env_id)
    game = str(gym.registry[env_id].kwargs["game"])  # the ROM name, as EnvPool names its tasks: 'space_invaders'
    return "".join(part.capitalize() for part in game.split("_")) + "-v5"


class EnvPoolVecEnv:
    """EnvPool's C++ Atari with the Config's preprocessing, a deepq.envs.base.VecEnv stepped like GymVecEnv.

    Same-step autoreset: where env i's episode ended, step() returns its true last observation in
    final_obs[i] and the first observation of its next episode in obs[i]. EnvPool itself would
    reset on the *next* step call (ignoring that action, reward 0: a spurious transition), so
    ended envs are reset at once with reset(env_ids), which synchronous EnvPool accepts.
    EnvPool presses FIRE only at reset; after a lost life the agent serves by choosing FIRE itself.
    (Sending an extra FIRE step here would push two frames through EnvPool's frame stack in one agent
    step, and the frame replay, which stores one new frame per step, rightly refuses that.)
    As in GymVecEnv, with cfg.episodic_life a lost life is reported as terminated while the game goes
    on (`ended` False); `last_lives` (N,) holds the lives in the state `obs` shows.

    EnvPool cannot reseed single episodes, so a checkpoint cannot restore the envs exactly
    (exact_resume is False):
    state_dict() holds the seed and a restart counter, and load_state_dict() starts fresh
    episodes in all envs, from a seed derived from both; the episodes in progress are lost.
    Needs ale-py as well, for the game's id and action meanings.
    """

    def __init__(self, env_id: str, num_envs: int, seed: int, cfg: Config) -> None:
        try:
            import envpool
        except ImportError as e:
            raise ConfigError(f"{env_id!r}: {ENVPOOL_HINT}") from e
        self._envpool = envpool
        self.task = envpool_task(env_id)
        if self.task not in envpool.list_all_envs():
            raise ConfigError(f"EnvPool has no task {self.task!r} for {env_id!r}; use backend='gymnasium'")
        self.env_id, self.num_envs, self.seed, self.cfg = env_id, num_envs, seed, cfg
        self.env_label = env_id
        self.restarts = 0  # load_state_dict calls: each restart draws new env seeds
        probe = gym.make(env_id)
        meanings = probe.unwrapped.get_action_meanings()  # type: ignore[attr-defined]
        probe.close()
        self._fire = cfg.fire_reset and len(meanings) >= 3 and meanings[FIRE] == "FIRE"
        self._pool = self._make_pool()
        k, s = cfg.frame_stack, cfg.screen_size
        self.obs_shape: tuple[int, ...] = (k, s, s) if cfg.grayscale else (k, 3, s, s)
        self.n_actions = int(self._pool.action_space.n)
        self.obs_dtype = np.uint8
        self.last_lives = np.zeros(num_envs, np.int32)  # (N,) lives in the state `obs` shows
        self._all = np.arange(num_envs, dtype=np.int32)

    exact_resume = False  # load_state_dict restarts episodes instead of restoring them
    legal = None  # every action is always legal

    def _make_pool(self) -> Any:
        cfg = self.cfg
        seeds = [int(np.random.SeedSequence([self.seed, self.restarts, i]).generate_state(1)[0] % (2**31 - 1))
                 for i in range(self.num_envs)]
        return self._envpool.make(
            self.task, env_type="gymnasium", num_envs=self.num_envs, seed=seeds,
            num_threads=min(self.num_envs, usable_cpus()),  # the container's CPUs, not the host's
            stack_num=cfg.frame_stack, frame_skip=cfg.frame_skip,
            noop_max=max(cfg.noop_max, 1),  # EnvPool 1.2.5 segfaults on 0 (see the module doc)
            img_height=cfg.screen_size, img_width=cfg.screen_size, gray_scale=cfg.grayscale,
            repeat_action_probability=0.25 if cfg.sticky_actions else 0.0, use_fire_reset=cfg.fire_reset,
            episodic_life=False, reward_clip=False, full_action_space=False,
            max_episode_steps=max(cfg.max_episode_frames // cfg.frame_skip, 1))

    def _frames(self, obs: np.ndarray) -> np.ndarray:
        """EnvPool's (n, k*C, S, S) -> (n, *obs_shape), a copy."""
        return np.array(obs, dtype=np.uint8).reshape(len(obs), *self.obs_shape)

    def reset(self) -> np.ndarray:
        """Start a new episode in every env; obs (N, *obs_shape) uint8."""
        obs, info = self._pool.reset(self._all)
        ids = info["env_id"]  # rows come back labelled by env; place them rather than assume the order
        out = np.empty((self.num_envs, *self.obs_shape), np.uint8)
        out[ids] = self._frames(obs)
        self.last_lives[ids] = info["lives"]
        return out

    def step(self, actions: np.ndarray) -> Step:
        n = self.num_envs
        obs, rewards = np.empty((n, *self.obs_shape), np.uint8), np.zeros(n, np.float32)
        terminated, truncated, lives = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, np.int32)

        def record(result: tuple[Any, ...]) -> None:
            o, r, term, trunc, info = result
            ids = info["env_id"]
            obs[ids] = self._frames(o)
            rewards[ids] += r  # raw (EnvPool's reward_clip is off)
            # EnvPool flags a game over on the time limit's step as truncated only; ALE would say both
            terminated[ids] = term | (trunc & (info["terminated"] != 0))
            truncated[ids] = trunc
            lives[ids] = info["lives"]

        record(self._pool.step(np.asarray(actions, dtype=np.int32), self._all))
        lost = ~(terminated | truncated) & (lives < self.last_lives)  # a life, not the game
        # As in GymVecEnv: with episodic_life a lost life is terminal for learning, but the game goes on
        lost_life = lost if self.cfg.episodic_life else np.zeros(n, bool)
        final_obs = obs.copy()
        ended = terminated | truncated
        if ended.any():
            reset_obs, info = self._pool.reset(np.flatnonzero(ended).astype(np.int32))
            obs[info["env_id"]] = self._frames(reset_obs)
            lives[info["env_id"]] = info["lives"]
        self.last_lives = lives
        return Step(obs=obs, rewards=rewards, terminated=terminated | lost_life, truncated=truncated,
                    final_obs=final_obs, ended=ended)

    def state_dict(self) -> dict[str, Any]:
        """The seed and restart counter: all a resume can use (EnvPool's states cannot be restored)."""
        return {"backend": "envpool", "seed": self.seed, "restarts": self.restarts}

    def load_state_dict(self, state: dict[str, Any]) -> np.ndarray:
        """Restart every env with fresh seeds from (seed, restarts + 1); the episodes in progress are lost."""
        self.seed, self.restarts = int(state["seed"]), int(state["restarts"]) + 1
        self._pool.close()
        self._pool = self._make_pool()
        return self.reset()

    def close(self) -> None:
        self._pool.close()
