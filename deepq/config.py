"""One typed dataclass holds every setting of a run; named presets are Configs with tuned values.

Units are stated per field. "env steps" count transitions collected, summed over all
vector envs, so a setting means the same thing whatever `num_envs` is.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deepq.errors import ConfigError

EnvSpec = str | Callable[[], Any]  # a Gymnasium id, or a zero-argument factory returning a gym.Env
NetworkFactory = Callable[[tuple[int, ...], int], Any]  # (obs_shape, n_actions) -> nn.Module


# Names users bring from Stable-Baselines3 and CleanRL: an unknown field among these is told its deepq name
# (the CLI and Config.replace both use this).
FIELD_ALIASES: dict[str, tuple[str, str]] = {
    "learning_rate": ("lr", ""),
    "total_timesteps": ("total_steps", ""),
    "timesteps": ("total_steps", ""),
    "exploration_initial_eps": ("eps_start", ""),
    "start_e": ("eps_start", ""),
    "exploration_final_eps": ("eps_end", ""),
    "end_e": ("eps_end", ""),
    "exploration_fraction": ("eps_decay_steps", " (a number of env steps, not a fraction of the run)"),
    "buffer": ("buffer_size", ""),
    "replay_size": ("buffer_size", ""),
    "target_network_frequency": ("target_update_interval", " (in env steps)"),
    "train_frequency": ("train_freq", " (in env steps)"),
    "env_id": ("env", ""),
    "net_arch": ("hidden_sizes", " (e.g. --hidden_sizes 64 64)"),
    "exp_name": ("name", ""),
    "cuda": ("device", " (--device cuda or --device cpu)"),
    "double_q": ("double", ""),
    "prioritized_replay": ("prioritized", ""),
    "n_steps": ("n_step", ""),
    "clip_grad_norm": ("max_grad_norm", ""),
}


@dataclass
class Config:
    """Every setting of a DQN run. Field docs are the CLI's --help."""

    env: EnvSpec = "CartPole-v1"
    """Gymnasium environment id, or a zero-argument callable returning a gym.Env."""
    seed: int = 0
    """Seed for torch, numpy, environment resets and action sampling."""
    total_steps: int = 100_000
    """Training length in env steps (summed over all vector envs)."""
    num_envs: int = 1
    """Environments stepped together; one batched forward pass acts for all of them."""
    name: str = ""
    """Run name used for the run directory (defaults to the preset or env id)."""

    # Q-network
    hidden_sizes: tuple[int, ...] = (120, 84)
    """Widths of the default MLP's hidden layers."""
    network: NetworkFactory | None = None
    """Optional factory (obs_shape, n_actions) -> nn.Module mapping [B, *obs] to [B, A] (Python API only)."""
    arch: str = "auto"
    """Default network: 'auto' (Nature CNN for images of side >= 36, a small CNN for smaller grids such
    as MinAtar, an MLP otherwise), 'mlp', 'nature_cnn' or 'small_cnn'."""

    # pixels and Atari (ALE ids such as 'ALE/Pong-v5'; other envs ignore the Atari-only fields)
    frame_stack: int = 1
    """History: the network sees the last k observations (frames) stacked; 1 means no history."""
    backend: str = "gymnasium"
    """Env backend: 'gymnasium' (Atari through ale-py) or 'envpool' (EnvPool's C++ Atari, vectorized)."""
    noop_max: int = 30
    """Atari: up to this many no-op actions after each reset (random start states); 0 disables."""
    frame_skip: int = 4
    """Atari: emulator frames per agent step (the action repeats; the max of the last two frames is seen)."""
    screen_size: int = 84
    """Atari: frames are resized to screen_size x screen_size."""
    grayscale: bool = True
    """Atari: grayscale frames (False: RGB)."""
    sticky_actions: bool = False
    """Atari: repeat the previous action with probability 0.25 at each emulator frame (Machado et al. 2018)."""
    fire_reset: bool = True
    """Atari: press FIRE after a reset and after a life loss, in games that need it to start (e.g. Breakout)."""
    episodic_life: bool = False
    """Atari training: a lost life is a terminal transition (no bootstrap); the game goes on (no reset)."""
    clip_rewards: bool = False
    """Train on sign(reward); logged and evaluated returns stay the raw score."""
    max_episode_frames: int = 108_000
    """Atari: an episode is truncated after this many emulator frames (108,000 = 30 minutes); MinAtar: after
    this many steps (a step is a frame there)."""

    # TD learning
    gamma: float = 0.99
    """Discount factor per env step, in [0, 1]."""
    lr: float = 2.5e-4
    """Learning rate of the optimizer."""
    optimizer: str = "adam"
    """'adam', or 'rmsprop': centered RMSProp as in Nature DQN and the MinAtar paper (0.95 momenta, eps 0.01)."""
    batch_size: int = 128
    """Transitions per minibatch."""
    buffer_size: int = 10_000
    """Replay memory capacity in transitions."""
    learning_starts: int = 1_000
    """Env steps collected before the first gradient step."""
    train_freq: int = 10
    """Env steps between updates (k)."""
    gradient_steps: int = 1
    """Gradient steps per update (g)."""
    loss: str = "mse"
    """TD loss: 'mse' (squared TD error) or 'huber'."""
    double: bool = False
    """Double DQN: the online net selects the next action, the target net evaluates it."""
    n_step: int = 1
    """n-step returns: the target sums n discounted rewards, then bootstraps with gamma^n (cut at episode ends)."""

    # the Rainbow components (Hessel et al. 2018), each one flag; `double` and `n_step` are above
    dueling: bool = False
    """Dueling head: Q = V + A - mean(A), separate value and advantage streams (Wang et al. 2016)."""
    noisy: bool = False
    """Noisy nets: factorised Gaussian noise in the head's layers explores instead of epsilon-greedy."""
    noisy_sigma: float = 0.5
    """Noisy nets: initial noise scale sigma0 (each weight's sigma starts at sigma0 / sqrt(fan-in))."""
    eps_with_noisy: bool = False
    """Noisy nets: keep epsilon-greedy on its schedule as well (default: uniform actions until learning_starts,
    then the noise alone explores, as in the Rainbow paper)."""
    atoms: int = 1
    """Distributional C51 with this many atoms on [v_min, v_max] (51 in the paper); 1 = expected values."""
    v_min: float = -10.0
    """C51: the lowest return on the support."""
    v_max: float = 10.0
    """C51: the highest return on the support."""
    prioritized: bool = False
    """Prioritized replay (proportional): sample transitions with probability ~ (|TD error| + eps)^alpha."""
    per_alpha: float = 0.5
    """Prioritized replay: the priority exponent alpha (0 = uniform)."""
    per_beta: float = 0.4
    """Prioritized replay: importance-weight exponent at the start, annealed linearly to 1 over total_steps
    (so extending a finished run with a larger total_steps re-spreads the rest of the annealing)."""
    max_grad_norm: float = 0.0
    """Clip the gradient's global L2 norm to this value; 0 disables clipping."""

    # target network
    target: str = "hard"
    """How the TD target is computed: 'hard' (copy every C steps), 'polyak' (tau), 'none', or 'mcts' (no TD:
    Q regressed toward tree-search estimates after each round of episodes, see deepq/training/mcts.py)."""
    target_update_interval: int = 500
    """C: env steps between hard target syncs."""
    tau: float = 0.005
    """Polyak coefficient applied after each gradient step, in (0, 1]."""

    # MCTS (target='mcts' trains on search values; games can also search at play time)
    mcts_simulations: int = 50
    """Simulations per search (one search per state visited in training)."""
    mcts_c_puct: float = 1.25
    """PUCT's exploration weight (priors are softmax of the legal actions' Q)."""
    mcts_leaf: str = "network"
    """Leaf value: 'network' (max legal Q at the leaf) or 'rollout' (a uniformly random playout)."""
    mcts_batch: int = 16
    """Leaves evaluated together in one forward pass (1: unbatched)."""
    mcts_episodes: int = 8
    """target='mcts': episodes played (searching at every state) before each round of gradient steps."""

    # exploration
    eps_schedule: str = "linear"
    """Exploration schedule: 'linear' or 'exponential'."""
    eps_start: float = 1.0
    """Initial epsilon, in [0, 1]."""
    eps_end: float = 0.05
    """Final epsilon, in [0, 1]."""
    eps_decay_steps: int = 10_000
    """Env steps for the linear decay, or the e-folding time of the exponential one."""
    eval_eps: float = 0.0
    """Epsilon during evaluation episodes, in [0, 1]."""

    # two-player games (env 'openspiel:<game>' or 'pettingzoo:<game>'): self-play, see deepq/games
    eval_opponent: str = "random"
    """Games: who evaluations play, from both seats (eval_episodes games per seat): 'random', 'perfect'
    (exact minimax, small games such as tic-tac-toe) or 'mcts:N' (OpenSpiel's MCTS, N rollout simulations)."""
    opponent_pool: int = 0
    """Games: past snapshots of the network kept as training opponents (one seat of each game is played by
    one drawn at random; snapshots taken at target syncs); 0 = the learner plays both seats."""

    # evaluation, logging, checkpoints
    eval_interval: int = 10_000
    """Env steps between greedy evaluations; 0 disables periodic evaluation."""
    eval_episodes: int = 10
    """Episodes per evaluation."""
    stop_at_return: float | None = None
    """Stop training once an evaluation's mean return reaches this (the task is solved)."""
    max_minutes: float = 0.0
    """Stop training after this much wall-clock time (0: no limit), e.g. to compare methods at equal compute."""
    checkpoint_interval: int = 10_000
    """Env steps between checkpoints written for --resume; 0 disables periodic checkpoints."""
    run_dir: str = ""
    """Run directory; default runs/<name>-<seed>-<timestamp>/."""
    device: str = "auto"
    """Torch device: 'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'."""
    threads: int = 1
    """CPU threads for torch and NumPy's BLAS; 1 is fastest for small networks."""
    flush_denormal: bool = True
    """CPU: treat denormal floats (below ~1e-38) as zero; a few of them in optimizer state can halve the speed."""
    fused: bool = True
    """For the default MLP: hand-written update (on CPU in NumPy, equal to autograd up to float rounding;
    on other devices in torch, bit-identical) and NumPy acting on CPU; False: the autograd update."""
    progress: bool = True
    """Show a progress bar (plain periodic lines when stdout is not a terminal)."""

    def validate(self) -> Config:
        """Raise ConfigError naming the first field whose value cannot work; return self."""
        for name in ("total_steps", "num_envs", "batch_size", "buffer_size", "train_freq",
                     "gradient_steps", "target_update_interval", "eval_episodes", "threads",
                     "frame_stack", "frame_skip", "screen_size", "max_episode_frames", "n_step"):
            _check(name, getattr(self, name), "a positive integer", lambda v: _is_int(v) and v > 0)
        for name in ("learning_starts", "eps_decay_steps", "eval_interval", "checkpoint_interval", "noop_max"):
            _check(name, getattr(self, name), "an integer >= 0", lambda v: _is_int(v) and v >= 0)
        _check("seed", self.seed, "an integer >= 0", lambda v: _is_int(v) and v >= 0)
        _check("lr", self.lr, "a positive number", lambda v: _is_num(v) and v > 0)
        _check("max_grad_norm", self.max_grad_norm, "a number >= 0 (0 disables clipping)",
               lambda v: _is_num(v) and v >= 0)
        _check("gamma", self.gamma, "a number in [0, 1]", lambda v: _is_num(v) and 0 <= v <= 1)
        _check("tau", self.tau, "a number in (0, 1]", lambda v: _is_num(v) and 0 < v <= 1)
        for name in ("eps_start", "eps_end", "eval_eps"):
            _check(name, getattr(self, name), "a number in [0, 1]", lambda v: _is_num(v) and 0 <= v <= 1)
        _choice("loss", self.loss, ("mse", "huber"))
        _choice("target", self.target, ("hard", "polyak", "none", "mcts"))
        _choice("mcts_leaf", self.mcts_leaf, ("network", "rollout"))
        for name in ("mcts_simulations", "mcts_batch", "mcts_episodes"):
            _check(name, getattr(self, name), "a positive integer", lambda v: _is_int(v) and v > 0)
        _check("max_minutes", self.max_minutes, "a number >= 0 (0: no limit)", lambda v: _is_num(v) and v >= 0)
        _check("mcts_c_puct", self.mcts_c_puct, "a number >= 0", lambda v: _is_num(v) and v >= 0)
        if self.target == "mcts" and (self.atoms > 1 or self.noisy or self.prioritized or self.n_step > 1):
            raise ConfigError("target='mcts' regresses Q toward search values: it does not combine with atoms, "
                              "noisy, prioritized or n_step (TD-target features); turn those off")
        _choice("eps_schedule", self.eps_schedule, ("linear", "exponential"))
        _choice("arch", self.arch, ("auto", "mlp", "nature_cnn", "small_cnn"))
        _choice("backend", self.backend, ("gymnasium", "envpool"))
        _choice("optimizer", self.optimizer, ("adam", "rmsprop"))
        _check("atoms", self.atoms, "1 (off) or an integer >= 2", lambda v: _is_int(v) and v >= 1)
        _check("noisy_sigma", self.noisy_sigma, "a number >= 0", lambda v: _is_num(v) and v >= 0)
        _check("per_alpha", self.per_alpha, "a number >= 0", lambda v: _is_num(v) and v >= 0)
        _check("per_beta", self.per_beta, "a number in [0, 1]", lambda v: _is_num(v) and 0 <= v <= 1)
        if not (_is_num(self.v_min) and _is_num(self.v_max) and self.v_min < self.v_max):
            raise ConfigError(f"v_min={self.v_min!r}, v_max={self.v_max!r} are not valid: C51's support needs "
                              "numbers with v_min < v_max")
        _check("device", self.device, "'auto', 'cpu', 'cuda' or 'cuda:N'",
               lambda v: isinstance(v, str) and (v in ("auto", "cpu", "cuda")
                                                 or (v.startswith("cuda:") and v[5:].isdigit())))
        _check("hidden_sizes", self.hidden_sizes, "a non-empty list of positive integers",
               lambda v: isinstance(v, tuple | list) and len(v) > 0 and all(_is_int(h) and h > 0 for h in v))
        if self.batch_size > self.buffer_size:
            raise ConfigError(f"batch_size={self.batch_size} is larger than buffer_size={self.buffer_size}: "
                              "a minibatch is drawn from the replay memory, so use batch_size <= buffer_size")
        if self.stop_at_return is not None and not _is_num(self.stop_at_return):
            raise ConfigError(f"stop_at_return={self.stop_at_return!r} is not valid: use a number or None")
        if self.stop_at_return is not None and self.eval_interval == 0:
            raise ConfigError("stop_at_return needs periodic evaluation: set eval_interval > 0")
        _check("opponent_pool", self.opponent_pool, "an integer >= 0", lambda v: _is_int(v) and v >= 0)
        _check("eval_opponent", self.eval_opponent, "'random', 'perfect' or 'mcts:N' (N simulations, N >= 2)",
               lambda v: v in ("random", "perfect") or (isinstance(v, str) and v.startswith("mcts:")
                                                        and v[5:].isdigit() and int(v[5:]) >= 2))
        if not (isinstance(self.env, str) and self.env) and not callable(self.env):
            raise ConfigError(f"env={self.env!r} is not valid: use a Gymnasium id such as 'CartPole-v1' "
                              "or a zero-argument callable returning a gym.Env")
        return self

    @property
    def run_name(self) -> str:
        """The name a run directory starts with."""
        if self.name:
            return self.name
        name = self.env if isinstance(self.env, str) else getattr(self.env, "__name__", "custom")
        return name.replace("/", "-")  # 'MinAtar/Breakout-v1' names one folder, not two

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; callables (env factory, network) are recorded by name only."""
        out = dataclasses.asdict(self)
        out["hidden_sizes"] = list(self.hidden_sizes)
        if callable(self.env):
            out["env"] = f"<callable {getattr(self.env, '__qualname__', repr(self.env))}>"
        if self.network is not None:
            out["network"] = f"<callable {getattr(self.network, '__qualname__', repr(self.network))}>"
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Inverse of to_dict for string envs; callables must be passed again by the caller."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}; valid fields are {sorted(known)}")
        data = dict(data)
        if isinstance(data.get("network"), str):
            data["network"] = None  # a custom network is code; the caller must pass it again
        if "hidden_sizes" in data:
            data["hidden_sizes"] = tuple(data["hidden_sizes"])
        return cls(**data)

    def replace(self, **overrides: Any) -> Config:
        """A copy with some fields changed; unknown fields are a ConfigError."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            close = {u: [FIELD_ALIASES[u][0]] if u in FIELD_ALIASES else difflib.get_close_matches(u, known, n=1)
                     for u in unknown}
            hints = ", ".join(f"{u!r}" + (f" (did you mean {c[0]!r}?)" if c else "") for u, c in close.items())
            raise ConfigError(f"unknown config field(s) {hints}; run `deepq train --help` for the list")
        if "hidden_sizes" in overrides:
            overrides["hidden_sizes"] = tuple(overrides["hidden_sizes"])
        return dataclasses.replace(self, **overrides)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _check(name: str, value: object, valid: str, ok: Callable[[Any], bool]) -> None:
    if not ok(value):
        raise ConfigError(f"{name}={value!r} is not valid: {name} must be {valid}")


def _choice(name: str, value: object, options: tuple[str, ...]) -> None:
    _check(name, value, "one of " + ", ".join(repr(o) for o in options), lambda v: v in options)
