"""Agent: the public object that acts, learns and saves (a Policy and a Learner around one online network), built
here from the run's Config and nowhere else; `actor_policy`, the policy an actor in another process acts with; and
`load`, which reads an agent file back without executing anything from it.

The Config is the user's single surface; the core's pieces get their own small configs from it
(deepq/components.py). The env kind resolves the network's architecture once (EnvKind.arch) and passes it in.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepq.components import learner_config, network_config
from deepq.config import Config
from deepq.core.device import resolve_device
from deepq.core.learner import Learner, acts_in_numpy
from deepq.core.networks import build_network, resolve_arch
from deepq.core.policy import Policy
from deepq.core.results import EvalResult
from deepq.errors import CheckpointError, ConfigError
from deepq.files import FORMAT_VERSION, atomic_save, first_sentence, safe_load, short_repr
from deepq.memory import available_bytes, check_network_memory, network_needs, size_text
from deepq.observations import ObsSpec, encode, env_name, legal_mask, probe, spec_of, split_mask

AGENT_FORMAT = "deepq-agent"
PREDICT_STREAM = 0x9E3779B9  # predict()'s ε-greedy draws: a stream of its own under cfg.seed
MAX_OBS_VALUES = 2 ** 40  # numbers in one observation: far above any env's, far below int64 overflow in a layer
ArchOf = Callable[[Config, tuple[int, ...]], str]  # (the file's config, obs_shape) -> the resolved architecture


def plain_arch(cfg: Config, obs_shape: tuple[int, ...]) -> str:
    """cfg.arch resolved for an env that is not a board game (EnvKind.arch is the general rule)."""
    return resolve_arch(obs_shape, cfg.arch)


class Agent:
    """A trained or training Q-network: a Policy that acts and a Learner that updates, sharing the online net.

    `act`, `q_values` and `predict` take the observations the env gives (deepq/observations.py encodes them as
    training does) and act with the policy; `agent.learner.update(batch)` is one gradient step; `save` writes the
    one agent file that `deepq.load` reads.
    """

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, cfg: Config,
                 device: torch.device | str | None = None, arch: str | None = None,
                 observation_space: Any = None) -> None:
        """`arch`: the network the env kind resolved from cfg.arch (EnvKind.arch: board games get the MLP);
        None resolves it as for any env that is not a board game. `observation_space`: the env's (a Gymnasium
        space), which says whether an int is an observation; None: read from cfg.env when first needed."""
        self.cfg = cfg
        self.obs_shape = tuple(obs_shape)
        self.n_actions = n_actions
        self.device = resolve_device(cfg.device if device is None else str(device))
        self.arch = resolve_arch(self.obs_shape, cfg.arch) if arch is None else arch
        # before allocating: one line, not an OOM
        check_network_memory(self.obs_shape, n_actions, cfg, self.arch, self.device)
        net = network_config(cfg, self.arch)
        online = build_network(self.obs_shape, n_actions, net).to(self.device)
        self.learner = Learner(online, learner_config(cfg), net, self.device)
        # After the learner: its fast path moves the weights into flat buffers, which the policy's views then see.
        self.policy = Policy(online, self.obs_shape, n_actions, self.device, numpy_q=self.learner.numpy_q)
        # What a training run adds (deepq.train sets them when it returns the agent): its run directory, and the
        # final evaluation of agent.pt. None for an agent that was built or loaded, not trained.
        self.run_dir: Path | None = None
        self.final_evaluation: EvalResult | None = None
        self._obs_spec = (None if observation_space is None
                          else spec_of(observation_space, env_name(cfg.env), self.obs_shape))
        self.predict_rng = np.random.default_rng([cfg.seed, PREDICT_STREAM])  # predict(deterministic=False)

    @property
    def online(self) -> nn.Module:
        """The online Q-network θ."""
        return self.learner.online

    @property
    def target(self) -> nn.Module | None:
        """The target network θ⁻ (None for target='none', 'mcts' or 'pqn')."""
        return self.learner.target

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.learner.optimizer

    def observation_spec(self) -> ObsSpec:
        """The observations act, q_values and predict take: a Discrete space's ints, or arrays of obs_shape; read
        from the env the first time an input needs it (an int, an int array), then kept."""
        if self._obs_spec is None:
            self._obs_spec = probe(self.cfg.env, self.obs_shape)
        return self._obs_spec

    def q_values(self, obs: Any) -> np.ndarray:
        """Q values: [A] for one observation, [B, A] for a batch (of every action: a mask the observation carries
        is not applied)."""
        return self.policy.q_values(encode(split_mask(obs)[0], self.obs_shape, self.observation_spec, "Agent.q_values"))

    def act(self, obs: Any, legal: Any = None) -> Any:
        """Greedy action: an int for one observation, an int64 array for a batch. The observation is the env's (a
        Discrete space's int, a 1-D int array of them for a batch; a Box's array, with a leading batch dimension for
        a batch; a Dict with an "action_mask" entry), or its network input; anything else is one ConfigError line
        saying what the agent takes. `legal` ([A] or [B, A], bools or 0/1: games' legal moves, an env's
        info["action_mask"]; default the Dict observation's mask, if any): the choice is among legal actions only."""
        x, legal = self._input(obs, legal, "Agent.act")
        return self.policy.act(x, legal)

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True,
                action_masks: Any = None) -> tuple[Any, None]:
        """Stable-Baselines3's `model.predict`: (action, None), the action as act() gives it (an int for one
        observation, an int64 array for a batch). deterministic=False acts ε-greedily with cfg.eval_eps (greedy
        when it is 0, the default), drawing from `predict_rng`. `action_masks` (sb3-contrib MaskablePPO's keyword):
        the legal actions, as act()'s `legal`. `state` and `episode_start` (recurrent policies') are ignored: a
        Q-network keeps no state between steps."""
        x, legal = self._input(obs, action_masks, "Agent.predict")
        if deterministic:
            return self.policy.act(x, legal), None
        single = x.ndim == len(self.obs_shape)
        rows = None if legal is None else (legal[None] if single else legal)
        actions = self.policy.explore(x[None] if single else x, self.cfg.eval_eps, self.predict_rng, rows)  # (B,)
        return (int(actions[0]) if single else actions), None

    def _input(self, obs: Any, legal: Any, caller: str) -> tuple[np.ndarray, np.ndarray | None]:
        """(the network's input, the legal actions as bools or None): a Dict observation's mask is used where
        `legal` is not given."""
        obs, mask = split_mask(obs)
        x = encode(obs, self.obs_shape, self.observation_spec, caller)
        legal = mask if legal is None else legal
        if legal is None:
            return x, None
        single = x.ndim == len(self.obs_shape)
        return x, legal_mask(legal, self.n_actions, None if single else len(x), caller)

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint needs to continue training bit-for-bit."""
        return self.learner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state)

    def save(self, path: str | os.PathLike[str]) -> None:
        """One file with the config, the spaces and the online weights (no code)."""
        atomic_save({"format": AGENT_FORMAT, "version": FORMAT_VERSION, "config": self.cfg.to_dict(),
                     "obs_shape": list(self.obs_shape), "n_actions": self.n_actions,
                     "custom_network": self.cfg.network is not None,
                     "online": {k: v.cpu() for k, v in self.online.state_dict().items()}}, path)


def actor_policy(cfg: Config, arch: str, obs_shape: tuple[int, ...], n_actions: int, weights: dict[str, np.ndarray],
                 device: str | torch.device = "cpu") -> Policy:
    """The policy an actor in another process acts with: the network cfg builds (`arch` the env kind's), loaded
    with the learner's snapshot (Policy.weights), computing Q values as the learner's policy does."""
    net, dev = network_config(cfg, arch), torch.device(device)
    return Policy.from_weights(net, obs_shape, n_actions, weights, dev,
                               numpy_q=acts_in_numpy(learner_config(cfg), net, dev))


def load(path: str | os.PathLike[str], network: Any = None, device: str = "cpu",
         arch_of: ArchOf = plain_arch) -> Agent:
    """Load an agent saved by Agent.save (or a run directory's agent.pt); never executes code from the file.

    A custom network is code, so it is not in the file: pass the same factory as `network`. The file is
    checked before anything is allocated from it: its entries' types and ranges, its config, the size of
    the network that config builds against the memory available, then each tensor's name, shape, dtype and
    values (NaN and inf are refused). Each problem is one CheckpointError naming the file.
    `arch_of(cfg, obs_shape)`: the network the file's env kind resolves (deepq.load passes the kind's).
    """
    p = Path(path)
    if p.is_dir():
        p = p / "agent.pt"
    data = safe_load(p, AGENT_FORMAT)
    obs_shape, n_actions, weights = _agent_entries(p, data)
    cfg = _agent_config(p, data, network).replace(device=device)
    arch = arch_of(cfg, obs_shape)
    expected = _network_state(p, obs_shape, n_actions, cfg, arch)  # None for a custom network (its factory is code)
    if expected is not None:
        check_weights(p, weights, expected)
    agent = Agent(obs_shape, n_actions, cfg, arch=arch)
    if expected is None:
        check_weights(p, weights, agent.online.state_dict())
    try:
        agent.online.load_state_dict(weights)
    except RuntimeError as e:  # check_weights found nothing wrong, so this is rare: torch's lines, joined into one
        why = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())
        raise CheckpointError(f"{p}: the weights do not fit the network this config builds: {why}") from None
    agent.learner.sync_target()
    return agent


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _agent_entries(p: Path, data: dict[str, Any]) -> tuple[tuple[int, ...], int, dict[str, torch.Tensor]]:
    """The spaces and the weights, with their types and ranges checked."""
    damaged = "the file is damaged or was not written by deepq"
    for key in ("config", "obs_shape", "n_actions", "online"):
        if key not in data:
            raise CheckpointError(f"{p} has no {key!r} entry, which every deepq agent file has: {damaged}")

    def wrong(key: str, want: str) -> CheckpointError:
        value = data[key]
        return CheckpointError(f"{p}: {key} is {short_repr(value)} ({type(value).__name__}); a deepq agent file has "
                               f"{want} there: {damaged}")
    shape = data["obs_shape"]
    if not (isinstance(shape, list | tuple) and 1 <= len(shape) <= 8 and all(_is_int(d) and d > 0 for d in shape)
            and math.prod(shape) <= MAX_OBS_VALUES):
        raise wrong("obs_shape", "a list of 1 to 8 positive integers (an observation of at most 2**40 values)")
    if not (_is_int(data["n_actions"]) and data["n_actions"] > 0):
        raise wrong("n_actions", "a positive integer")
    if not isinstance(data["config"], dict):
        raise wrong("config", "a dict of Config fields")
    weights = data["online"]
    if not (isinstance(weights, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in weights.items())):
        raise wrong("online", "a dict of named tensors (the network's state dict)")
    if not isinstance(data.get("custom_network", False), bool):
        raise wrong("custom_network", "True or False")
    return tuple(int(d) for d in shape), int(data["n_actions"]), weights


def _agent_config(p: Path, data: dict[str, Any], network: Any) -> Config:
    """The file's config, validated as a run's is (a ConfigError here is about the file, so it names it)."""
    hidden = data["config"].get("hidden_sizes", ())
    if not isinstance(hidden, list | tuple):
        raise CheckpointError(f"{p}: its config's hidden_sizes is {short_repr(hidden)} ({type(hidden).__name__}); "
                              "deepq writes a list of widths there: the file is damaged or was altered")
    try:
        cfg = Config.from_dict(data["config"]).replace(network=network).validate()
    except (ConfigError, TypeError, ValueError) as e:
        raise CheckpointError(f"{p}: its config is not valid ({e}); the file is damaged or was altered") from None
    if data.get("custom_network", False) and network is None:
        raise CheckpointError(f"{p} was trained with a custom network ({data['config'].get('network')}); "
                              "pass the same factory: deepq.load(path, network=factory)")
    return cfg


def _network_state(p: Path, obs_shape: tuple[int, ...], n_actions: int,
                   cfg: Config, arch: str) -> dict[str, torch.Tensor] | None:
    """The state dict (meta tensors: shapes and dtypes, no storage) of the built-in network the file's config
    builds, once its size is known to fit in memory; None for a custom network."""
    if cfg.network is not None:
        return None
    try:
        with torch.device("meta"):
            state = build_network(obs_shape, n_actions, network_config(cfg, arch)).state_dict()
        needs = network_needs(obs_shape, n_actions, cfg, arch)
    except (ConfigError, RuntimeError, ValueError, OverflowError, TypeError) as e:
        why = first_sentence(str(e)) or type(e).__name__
        raise CheckpointError(f"{p}: its config and spaces (observations {list(obs_shape)}, {n_actions:,} actions) "
                              f"do not make a network ({why}); the file is damaged or was altered") from None
    assert needs is not None
    nets, device = needs[0], resolve_device(cfg.device)  # what Agent() allocates: the network and its target copy
    have = available_bytes(device)
    if nets.nbytes > have:
        where = "this machine" if device.type == "cpu" else str(device)
        raise CheckpointError(f"{p}: its network ({nets.setting}, {n_actions:,} actions) needs "
                              f"~{size_text(nets.nbytes)} for {nets.what}; {where} has {size_text(have)} available: "
                              "the file is damaged, or was written for a machine with more memory")
    return state


def check_weights(path: Path, weights: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """CheckpointError unless `weights` has exactly `expected`'s names, each with its shape and dtype and only
    finite values (a network with NaN or inf weights acts on NaN Q values)."""
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    if missing or unexpected:
        parts = [f"{what} {', '.join(map(repr, names[:3]))}" + (f" and {len(names) - 3} more" if len(names) > 3 else "")
                 for what, names in (("missing", missing), ("unexpected", unexpected)) if names]
        raise CheckpointError(f"{path}: the weights do not fit the network its config builds: {'; '.join(parts)}")
    for name, want in expected.items():
        t = weights[name]
        where = f"{path}: tensor online[{name!r}]"
        if t.layout != torch.strided or tuple(t.shape) != tuple(want.shape):
            layout = f" ({t.layout})" if t.layout != torch.strided else ""
            raise CheckpointError(f"{where} has shape {list(t.shape)}{layout}; the network its config builds has "
                                  f"{list(want.shape)}: the file is damaged or was altered")
        if t.dtype != want.dtype:
            raise CheckpointError(f"{where} is {str(t.dtype).removeprefix('torch.')}; deepq writes "
                                  f"{str(want.dtype).removeprefix('torch.')} there: the file was altered or not "
                                  "written by deepq")
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
            nan = int(torch.isnan(t).sum())
            inf = int((~torch.isfinite(t)).sum()) - nan
            raise CheckpointError(f"{where} holds {nan:,} NaN and {inf:,} inf among its {t.numel():,} values; a "
                                  "network with them computes NaN Q values: use a file from before the run diverged "
                                  "(a run's checkpoint keeps its last good state), or train again")
