"""One typed dataclass holds every setting of a run; named presets are Configs with tuned values.

Units are stated per field. "env steps" count transitions collected, summed over all
vector envs, so a setting means the same thing whatever `num_envs` is.

Each field is tagged where it is declared (deepq/config_checks.py): its group, whether a resume may change
it, its value check. From the tags come RESUME_FIXED, the groups of `deepq train --help` (deepq/cli_args.py)
and `validate()`: group by group, each field's check, then the group's checks across fields (GROUP_CHECKS).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deepq.config_checks import (
    ATOMS,
    DEVICE_NAME,
    ENV_SPEC,
    EVAL_OPPONENT,
    FIELD_ALIASES,
    IN_0_1,
    IN_OPEN_0_1,
    INT_AT_LEAST_0,
    POSITIVE_INT,
    POSITIVE_NUMBER,
    RETURN_OR_NONE,
    RUN_DIR,
    RUN_NAME,
    SEED,
    WIDTHS,
    Tag,
    choice,
    is_num,
    number_at_least_0,
    tag,
    tag_of,
)
from deepq.errors import ConfigError

EnvSpec = str | Callable[[], Any]  # a Gymnasium id, or a zero-argument factory returning a gym.Env
NetworkFactory = Callable[[tuple[int, ...], int], Any]  # (obs_shape, n_actions) -> nn.Module

# The groups, in --help's order (a group's place is that of its first field). The text is the section heading;
# words after a short name, as a parenthesis, become the sentence under it in docs/reference/cli.md.
RUN = "run"
NETWORK = "Q-network"
PIXELS = "pixels and Atari (ALE ids such as 'ALE/Pong-v5'; other envs ignore the Atari-only fields)"
TD = "TD learning"
RAINBOW = "the Rainbow components (Hessel et al. 2018), each one flag; `double` and `n_step` are above"
TARGET = "target network"
MCTS = "MCTS (target='mcts' trains on search values; games can also search at play time)"
PQN = ("PQN (target='pqn', Gallici et al. 2024: no target network, no replay; Q regressed toward Q(λ) returns of "
       "short rollouts of num_envs envs)")
EXPLORATION = "exploration"
GAMES = "two-player games (env 'openspiel:<game>' or 'pettingzoo:<game>'): self-play, see deepq/games"
EVAL = "evaluation, logging, checkpoints"
DEVICE = "device and speed"
DISTRIBUTED = "distributed training on Ray (Ape-X: actors collect, one learner; pip install 'deepq[distributed]')"

@dataclass
class Config:
    """Every setting of a DQN run. Field docs are the CLI's --help.

    A field reads `name: type = tag(default, GROUP, check, resume_fixed=...)` and then its one-line doc."""

    env: EnvSpec = tag("CartPole-v1", RUN, ENV_SPEC, resume_fixed=True)  # noqa: RUF009 (tag() returns a field())
    """Gymnasium environment id, or a zero-argument callable returning a gym.Env."""
    seed: int = tag(0, RUN, SEED, resume_fixed=True)
    """Seed for torch, numpy, environment resets and action sampling."""
    total_steps: int = tag(100_000, RUN, POSITIVE_INT)
    """Training length in env steps (summed over all vector envs)."""
    num_envs: int = tag(1, RUN, POSITIVE_INT, resume_fixed=True)
    """Environments stepped together; one batched forward pass acts for all of them."""
    name: str = tag("", RUN, RUN_NAME)
    """Run name used for the run directory (defaults to the preset or env id)."""
    action_masks: bool = tag(True, RUN, resume_fixed=True)
    """Use the legal-action masks an env gives (info['action_mask'], a Dict observation's 'action_mask' entry, or an
    action_masks() method): explore, act and bootstrap among legal actions only. False: every action is legal."""

    hidden_sizes: tuple[int, ...] = tag((120, 84), NETWORK, WIDTHS, resume_fixed=True)
    """Widths of the default MLP's hidden layers."""
    network: NetworkFactory | None = tag(None, NETWORK, resume_fixed=True)  # noqa: RUF009 (a field())
    """Optional factory (obs_shape, n_actions) -> nn.Module mapping [B, *obs] to [B, A] (Python API only)."""
    arch: str = tag("auto", NETWORK, choice("auto", "mlp", "nature_cnn", "small_cnn"), resume_fixed=True)
    """Default network: 'auto' (Nature CNN for images of side >= 36, a small CNN for smaller grids such
    as MinAtar, an MLP otherwise), 'mlp', 'nature_cnn' or 'small_cnn'."""
    layer_norm: bool = tag(False, NETWORK, resume_fixed=True)
    """LayerNorm before each hidden ReLU of the default networks (dense layers, and each pixel's channels after a
    convolution): what keeps PQN stable without a target network; usable with every target."""

    frame_stack: int = tag(1, PIXELS, POSITIVE_INT, resume_fixed=True)
    """History: the network sees the last k observations (frames) stacked; 1 means no history."""
    backend: str = tag("auto", PIXELS, choice("auto", "numpy", "gymnasium", "envpool"), resume_fixed=True)
    """Training env backend: 'auto' (deepq's NumPy vector env where one exists for the env and num_envs >= 4, else
    the reference env), 'numpy' (deepq's NumPy vector env: CartPole-v1, MinAtar Breakout, SpaceInvaders, Freeway
    and Asterix, Connect Four; each checked step for step against the reference env), 'gymnasium' (the reference
    envs: Gymnasium, ale-py, OpenSpiel, one by one) or 'envpool' (EnvPool's C++ Atari, vectorized). Evaluation
    always uses the reference env."""
    noop_max: int = tag(30, PIXELS, INT_AT_LEAST_0, resume_fixed=True)
    """Atari: up to this many no-op actions after each reset (random start states); 0 disables."""
    frame_skip: int = tag(4, PIXELS, POSITIVE_INT, resume_fixed=True)
    """Atari: emulator frames per agent step (the action repeats; the max of the last two frames is seen)."""
    screen_size: int = tag(84, PIXELS, POSITIVE_INT, resume_fixed=True)
    """Atari: frames are resized to screen_size x screen_size."""
    grayscale: bool = tag(True, PIXELS, resume_fixed=True)
    """Atari: grayscale frames (False: RGB)."""
    sticky_actions: bool = tag(False, PIXELS, resume_fixed=True)
    """Atari: repeat the previous action with probability 0.25 at each emulator frame (Machado et al. 2018)."""
    fire_reset: bool = tag(True, PIXELS, resume_fixed=True)
    """Atari: press FIRE after a reset and after a life loss, in games that need it to start (e.g. Breakout)."""
    episodic_life: bool = tag(False, PIXELS)
    """Atari training: a lost life is a terminal transition (no bootstrap); the game goes on (no reset)."""
    clip_rewards: bool = tag(False, PIXELS)
    """Train on sign(reward); logged and evaluated returns stay the raw score."""
    max_episode_frames: int = tag(108_000, PIXELS, POSITIVE_INT, resume_fixed=True)
    """Atari: an episode is truncated after this many emulator frames (108,000 = 30 minutes); MinAtar: after
    this many steps (a step is a frame there)."""

    gamma: float = tag(0.99, TD, IN_0_1)
    """Discount factor per env step, in [0, 1]."""
    lr: float = tag(2.5e-4, TD, POSITIVE_NUMBER)
    """Learning rate of the optimizer."""
    optimizer: str = tag("adam", TD, choice("adam", "rmsprop", "radam"))
    """'adam'; 'rmsprop': centered RMSProp as in Nature DQN and the MinAtar paper (0.95 momenta, eps 0.01);
    'radam': rectified Adam (Liu et al. 2020), PQN's."""
    lr_decay: bool = tag(False, TD)
    """Anneal lr linearly to 0 over total_steps env steps, as purejaxql's PQN (False: lr stays constant)."""
    batch_size: int = tag(128, TD, POSITIVE_INT)
    """Transitions per minibatch."""
    buffer_size: int = tag(10_000, TD, POSITIVE_INT, resume_fixed=True)
    """Replay memory capacity in transitions."""
    learning_starts: int = tag(1_000, TD, INT_AT_LEAST_0)
    """Env steps collected before the first gradient step."""
    train_freq: int = tag(10, TD, POSITIVE_INT)
    """Env steps between updates (k)."""
    gradient_steps: int = tag(1, TD, POSITIVE_INT)
    """Gradient steps per update (g)."""
    loss: str = tag("mse", TD, choice("mse", "huber"))
    """TD loss: 'mse' (squared TD error) or 'huber'."""
    double: bool = tag(False, TD)
    """Double DQN: the online net selects the next action, the target net evaluates it."""
    n_step: int = tag(1, TD, POSITIVE_INT)
    """n-step returns: the target sums n discounted rewards, then bootstraps with gamma^n (cut at episode ends)."""

    dueling: bool = tag(False, RAINBOW, resume_fixed=True)
    """Dueling head: Q = V + A - mean(A), separate value and advantage streams (Wang et al. 2016)."""
    noisy: bool = tag(False, RAINBOW, resume_fixed=True)
    """Noisy nets: factorised Gaussian noise in the head's layers explores instead of epsilon-greedy."""
    noisy_sigma: float = tag(0.5, RAINBOW, number_at_least_0())
    """Noisy nets: initial noise scale sigma0 (each weight's sigma starts at sigma0 / sqrt(fan-in))."""
    eps_with_noisy: bool = tag(False, RAINBOW)
    """Noisy nets: keep epsilon-greedy on its schedule as well (default: uniform actions until learning_starts,
    then the noise alone explores, as in the Rainbow paper)."""
    atoms: int = tag(1, RAINBOW, ATOMS, resume_fixed=True)
    """Distributional C51 with this many atoms on [v_min, v_max] (51 in the paper); 1 = expected values."""
    v_min: float = tag(-10.0, RAINBOW)
    """C51: the lowest return on the support."""
    v_max: float = tag(10.0, RAINBOW)
    """C51: the highest return on the support."""
    prioritized: bool = tag(False, RAINBOW, resume_fixed=True)
    """Prioritized replay (proportional): sample transitions with probability ~ (|TD error| + eps)^alpha."""
    per_alpha: float = tag(0.5, RAINBOW, number_at_least_0(), resume_fixed=True)
    """Prioritized replay: the priority exponent alpha (0 = uniform)."""
    per_beta: float = tag(0.4, RAINBOW, IN_0_1)
    """Prioritized replay: importance-weight exponent at the start, annealed linearly to 1 over total_steps
    (so extending a finished run with a larger total_steps re-spreads the rest of the annealing)."""
    max_grad_norm: float = tag(0.0, TD, number_at_least_0("0 disables clipping"))  # placed here: fields never move
    """Clip the gradient's global L2 norm to this value; 0 disables clipping."""

    target: str = tag("hard", TARGET, choice("hard", "polyak", "none", "mcts", "pqn"), resume_fixed=True)
    """How the TD target is computed: 'hard' (copy every C steps), 'polyak' (tau), 'none', 'mcts' (no TD:
    Q regressed toward tree-search estimates after each round of episodes, see deepq/training/mcts.py), or 'pqn'
    (no target network and no replay: Q(λ) returns of each rollout, see deepq/training/pqn.py)."""
    target_update_interval: int = tag(500, TARGET, POSITIVE_INT)
    """C: env steps between hard target syncs."""
    tau: float = tag(0.005, TARGET, IN_OPEN_0_1)
    """Polyak coefficient applied after each gradient step, in (0, 1]."""

    mcts_simulations: int = tag(50, MCTS, POSITIVE_INT)
    """Simulations per search (one search per state visited in training)."""
    mcts_c_puct: float = tag(1.25, MCTS, number_at_least_0())
    """PUCT's exploration weight (priors are softmax of the legal actions' Q)."""
    mcts_leaf: str = tag("network", MCTS, choice("network", "rollout"))
    """Leaf value: 'network' (max legal Q at the leaf) or 'rollout' (a uniformly random playout)."""
    mcts_batch: int = tag(16, MCTS, POSITIVE_INT)
    """Leaves evaluated together in one forward pass (1: unbatched)."""
    mcts_episodes: int = tag(8, MCTS, POSITIVE_INT)
    """target='mcts': episodes played (searching at every state) before each round of gradient steps."""

    rollout_len: int = tag(32, PQN, POSITIVE_INT)
    """Steps each env takes per rollout; a rollout is num_envs × rollout_len transitions."""
    q_lambda: float = tag(0.65, PQN, IN_0_1)
    """λ of the Q(λ) returns: 0 the one-step target r + γ max Q(s'), 1 the rollout's return, bootstrapped."""
    epochs: int = tag(2, PQN, POSITIVE_INT)
    """Passes over each rollout, each in a new random order."""
    minibatches: int = tag(32, PQN, POSITIVE_INT)
    """Minibatches per pass: each is num_envs × rollout_len / minibatches transitions, one gradient step."""
    reward_scale: float = tag(1.0, PQN, POSITIVE_NUMBER)
    """PQN trains on reward × reward_scale (after clip_rewards); logged and evaluated returns stay raw."""

    eps_schedule: str = tag("linear", EXPLORATION, choice("linear", "exponential"))
    """Exploration schedule: 'linear' or 'exponential'."""
    eps_start: float = tag(1.0, EXPLORATION, IN_0_1)
    """Initial epsilon, in [0, 1]."""
    eps_end: float = tag(0.05, EXPLORATION, IN_0_1)
    """Final epsilon, in [0, 1]."""
    eps_decay_steps: int = tag(10_000, EXPLORATION, INT_AT_LEAST_0)
    """Env steps for the linear decay, or the e-folding time of the exponential one."""
    eval_eps: float = tag(0.0, EXPLORATION, IN_0_1)
    """Epsilon during evaluation episodes, in [0, 1]."""

    eval_opponent: str = tag("random", GAMES, EVAL_OPPONENT)
    """Games: who evaluations play, from both seats (eval_episodes games per seat): 'random', 'perfect'
    (exact minimax, small games such as tic-tac-toe) or 'mcts:N' (OpenSpiel's MCTS, N rollout simulations)."""
    opponent_pool: int = tag(0, GAMES, INT_AT_LEAST_0, resume_fixed=True)
    """Games: past snapshots of the network kept as training opponents (one seat of each game is played by
    one drawn at random; snapshots taken at target syncs); 0 = the learner plays both seats."""
    mirror: bool = tag(False, GAMES)
    """Games, target='pqn': also learn from each position's left-right mirror image (Connect Four, tic-tac-toe)."""

    eval_interval: int = tag(10_000, EVAL, INT_AT_LEAST_0)
    """Env steps between greedy evaluations; 0 disables periodic evaluation."""
    eval_episodes: int = tag(10, EVAL, POSITIVE_INT)
    """Episodes per evaluation."""
    stop_at_return: float | None = tag(None, EVAL, RETURN_OR_NONE)
    """Stop training once an evaluation's mean return reaches this (the task is solved)."""
    max_minutes: float = tag(0.0, EVAL, number_at_least_0("0: no limit"))
    """Stop training after this much wall-clock time (0: no limit), e.g. to compare methods at equal compute."""
    checkpoint_interval: int = tag(10_000, EVAL, INT_AT_LEAST_0)
    """Env steps between checkpoints written for --resume; 0 disables periodic checkpoints."""
    run_dir: str = tag("", EVAL, RUN_DIR)
    """Run directory; default runs/<name>-<seed>-<timestamp>/."""

    device: str = tag("auto", DEVICE, DEVICE_NAME)
    """Torch device: 'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'."""
    threads: int = tag(1, DEVICE, POSITIVE_INT)
    """CPU threads for torch and NumPy's BLAS; 1 is fastest for small networks."""
    flush_denormal: bool = tag(True, DEVICE)
    """CPU: treat denormal floats (below ~1e-38) as zero; a few of them in optimizer state can halve the speed."""
    fused: bool = tag(True, DEVICE)
    """CPU: the updates without autograd where deepq has one (the default MLP's, PQN's, the small CNN's) and NumPy
    acting, equal to autograd to float rounding; False or another device: autograd. Adam is fused either way."""

    progress: bool = tag(True, EVAL)  # --help lists it under logging; fields never move (checkpoints)
    """Show a progress bar (plain periodic lines when stdout is not a terminal)."""

    num_actors: int = tag(0, DISTRIBUTED, INT_AT_LEAST_0)
    """Ray actors collecting experience (each with num_envs envs) for one learner; 0: one process, no Ray."""
    ray_address: str = tag("", DISTRIBUTED)
    """'': start a local Ray sized to this machine (stopped at the end); 'auto' or 'HOST:PORT': join a cluster."""
    actor_eps: str = tag("apex", DISTRIBUTED, choice("apex", "schedule"))
    """'apex': actor i of N explores with ε_i = 0.4^(1 + 7 i / (N − 1)) throughout (Horgan et al. 2018);
    'schedule': every actor follows the eps_* schedule at the run's env step."""
    actor_batch: int = tag(50, DISTRIBUTED, POSITIVE_INT)
    """Vector env steps an actor takes before shipping the transitions (and their priorities) as one batch."""
    broadcast_interval: int = tag(50, DISTRIBUTED, POSITIVE_INT)
    """Gradient steps between weight broadcasts (one ray.put; each actor loads them before its next batch)."""
    max_in_flight: int = tag(2, DISTRIBUTED, POSITIVE_INT)
    """Batches an actor may have requested and not yet delivered (back-pressure: beyond this it waits)."""

    def validate(self) -> Config:
        """Raise ConfigError naming the first field whose value cannot work; return self.

        Group by group in --help's order: each field's own check in field order, then the group's checks
        across fields (so they can rely on those fields' types). What depends on the env's kind (two-player
        games' limits) is the kind's own check, run at set-up: deepq/training/setup.py."""
        for group, names in groups().items():
            for name in names:
                check = TAGS[name].check
                if check is not None:
                    check(name, getattr(self, name))
            if group in GROUP_CHECKS:
                GROUP_CHECKS[group](self)
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
        elif data.get("network") is not None:  # a file says null or names a factory; it can hold no code
            raise ConfigError(f"network={data['network']!r:.60} is not valid: a saved config has network null (the "
                              "built-in networks) or the name of a Python factory, which is passed again from Python")
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


TAGS: dict[str, Tag] = {f.name: tag_of(f) for f in dataclasses.fields(Config)}
# Fields a resumed run must share with its checkpoint (others, e.g. total_steps or lr, may change).
RESUME_FIXED: tuple[str, ...] = tuple(name for name, t in TAGS.items() if t.resume_fixed)


def groups() -> dict[str, list[str]]:
    """Each group's fields in field order; the groups in the order of their first fields."""
    return {g: [n for n, t in TAGS.items() if t.group == g] for g in dict.fromkeys(t.group for t in TAGS.values())}


# The checks across fields, one function per group; each runs after that group's own field checks.

def _check_td(cfg: Config) -> None:
    if cfg.target not in ("pqn", "mcts") and cfg.num_envs > cfg.buffer_size:  # (mcts and pqn store no env steps)
        raise ConfigError(f"buffer_size={cfg.buffer_size:,} is below num_envs={cfg.num_envs:,}: the replay memory "
                          "holds at least one step of every env; raise buffer_size or lower num_envs")
    if cfg.batch_size > cfg.buffer_size:
        raise ConfigError(f"batch_size={cfg.batch_size} is larger than buffer_size={cfg.buffer_size}: "
                          "a minibatch is drawn from the replay memory, so use batch_size <= buffer_size")


def _check_rainbow(cfg: Config) -> None:
    if not (is_num(cfg.v_min) and is_num(cfg.v_max) and cfg.v_min < cfg.v_max):
        raise ConfigError(f"v_min={cfg.v_min!r}, v_max={cfg.v_max!r} are not valid: C51's support needs "
                          "numbers with v_min < v_max")


def _check_target(cfg: Config) -> None:
    if cfg.target == "mcts" and (cfg.atoms > 1 or cfg.noisy or cfg.prioritized or cfg.n_step > 1):
        raise ConfigError("target='mcts' regresses Q toward search values: it does not combine with atoms, "
                          "noisy, prioritized or n_step (TD-target features); turn those off")


def _check_pqn(cfg: Config) -> None:
    if cfg.target != "pqn":
        if cfg.reward_scale != 1.0:
            raise ConfigError(f"reward_scale={cfg.reward_scale:g} applies to target='pqn' only; this run has "
                              f"target={cfg.target!r}: leave reward_scale at 1")
        return
    if cfg.atoms > 1 or cfg.noisy or cfg.prioritized or cfg.n_step > 1 or cfg.double:
        raise ConfigError("target='pqn' regresses Q toward the λ-returns of its own rollouts, with no target "
                          "network and no replay: it does not combine with atoms, noisy, prioritized, n_step or "
                          "double; turn those off")
    batch = cfg.num_envs * cfg.rollout_len
    if batch % cfg.minibatches:
        raise ConfigError(f"num_envs × rollout_len = {batch:,} transitions do not split into minibatches="
                          f"{cfg.minibatches} of equal size; choose minibatches dividing {batch:,}")


def _check_games(cfg: Config) -> None:
    if cfg.target == "pqn" and cfg.opponent_pool > 0:
        raise ConfigError("target='pqn' learns from every ply of its rollouts, so the learner plays both seats: "
                          "set opponent_pool=0")


def _check_eval(cfg: Config) -> None:
    if cfg.stop_at_return is not None and cfg.eval_interval == 0:
        raise ConfigError("stop_at_return needs periodic evaluation: set eval_interval > 0")


def _check_distributed(cfg: Config) -> None:
    if cfg.target == "pqn" and cfg.num_actors > 0:
        raise ConfigError("target='pqn' learns from the rollouts of its own num_envs envs, in one process; "
                          "set num_actors=0 and raise num_envs instead")
    if cfg.num_actors > 0 and cfg.frame_stack > 1 and cfg.num_envs * cfg.num_actors > cfg.buffer_size:
        raise ConfigError(f"buffer_size={cfg.buffer_size:,} is below num_actors × num_envs: each actor's envs "
                          "get their own frame rings; raise buffer_size")


GROUP_CHECKS: dict[str, Callable[[Config], None]] = {
    TD: _check_td, RAINBOW: _check_rainbow, TARGET: _check_target, PQN: _check_pqn, GAMES: _check_games,
    EVAL: _check_eval, DISTRIBUTED: _check_distributed}
