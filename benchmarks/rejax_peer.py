"""rejax (0.1.3, on gymnax) as a throughput peer: one run per process, driven by benchmarks/throughput.py.

It runs inside the peer's own virtualenv (benchmarks/peer_env.md: jax on CPU, rejax, gymnax), never deepq's:

    .venv-jax/bin/python benchmarks/rejax_peer.py '{"algo": "pqn", "env": "CartPole-v1", "total_steps": 102400,
        "window_start": 20480, "seed": 0, "settings": {...deepq.Config fields...}}'

prints one `RESULT {json}` line: the rate over env steps (window_start, total_steps], compile seconds, the
final mean return, the CPU seconds per wall second of the window. `settings` holds deepq.Config field values;
`rejax_config` below maps them onto rejax's, and the module's comments say what cannot be matched.

How it is timed: `run(ts, n)` = n of rejax's own `train_iteration`s in a `jax.lax.fori_loop`, exactly the body of
rejax's `train` without its periodic evaluations, jitted and compiled first (`jit(...).lower(...).compile()`,
timed apart). The compiled call runs iterations up to window_start (block_until_ready), then the clock starts and
the rest run to total_steps in a second call of the same compiled function. The final evaluation (rejax's own
`eval_callback`: 128 episodes at once, ε = 0.005) comes after the clock stops.

Settings map (deepq.Config field → rejax), PQN:
    num_envs → num_envs; rollout_len → num_steps; epochs → num_epochs; minibatches → num_minibatches;
    q_lambda → td_lambda; gamma → gamma; eps_start, eps_end → eps_start, eps_end;
    eps_decay_steps → exploration_fraction = eps_decay_steps / total_steps (both count env steps);
    lr, lr_decay → learning_rate: a schedule over optax's update count giving deepq's lr × (1 − step / total_steps)
        with step = the env step at the start of the rollout (constant across a rollout's updates, as deepq's);
    max_grad_norm → max_grad_norm; hidden_sizes → the Q-network's widths (rejax's own network class and its
        relu(LayerNorm(x)) activation: rejax 0.1.3's create_agent passes hidden_layer_sizes=(64, 64) beside
        agent_kwargs, so widths cannot go through agent_kwargs; the agent is replaced after create).
  not matched (no rejax option): the optimizer (rejax: Adam; deepq: RAdam); gradient clipping (rejax's
    optax.clip(max_grad_norm) clips each element, deepq clips the global norm); reward_scale (CartPole's 0.1:
    rejax has only a running reward normalisation, left off); ε is drawn once per rollout in rejax (at its first
    step), per vector step in deepq; a time-limit truncation stops the bootstrap in rejax (gymnax's done merges
    it), deepq bootstraps from the true final observation; the loss is optax.l2_loss = ½(G − Q)² (gradient ×½;
    Adam is nearly scale-free); flax's default init (LeCun normal) instead of torch's.
Settings map, DQN:
    num_envs → num_envs; gradient_steps per train_freq env steps → num_epochs updates per iteration (one
    iteration = one vector step of num_envs env steps, so num_epochs = gradient_steps × num_envs / train_freq,
    which must be a whole number); batch_size, buffer_size → batch_size, buffer_size; learning_starts →
    fill_buffer; target_update_interval → target_update_freq with polyak = 0 (a hard copy); double → ddqn;
    lr → learning_rate; gamma; eps_* as PQN; max_grad_norm 0 (deepq: none) → inf (rejax's default); hidden_sizes
    → widths (as PQN) with activation relu (rejax's DQN default is swish).
  not matched: rejax acts uniformly at random until fill_buffer steps (deepq: ε-greedy on its schedule from step
    0); rejax samples a minibatch without replacement (deepq: with); the ½ in the loss, truncation and init as PQN.
MinAtar (gymnax 'Breakout-MinAtar'): the full 6-action set (use_minimal_action_set=False) as deepq's
'MinAtar/Breakout-v0', max_steps_in_episode = max_episode_frames; not matched: gymnax's MinAtar has no sticky
actions (MinAtar's own, deepq's, repeat the last action with probability 0.1), and observations are (10, 10, 4)
channels-last booleans (the MLP flattens them; the order of inputs does not change its cost).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Any

# One thread for XLA's CPU backend, before jax is imported (the parent sets it too).
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import jax
from flax import linen as nn
from rejax import DQN, PQN
from rejax.compat import create
from rejax.networks import DiscreteQNetwork, EpsilonGreedyPolicy


def layer_norm_relu(x: jax.Array) -> jax.Array:
    """rejax's PQN activation (its create_agent's lambda): LayerNorm, then ReLU."""
    return nn.relu(nn.LayerNorm()(x))


def rejax_config(algo: str, s: dict[str, Any], total_steps: int) -> dict[str, Any]:
    """rejax's create() arguments for deepq.Config fields `s` (see the module docstring for the map)."""
    common = {"total_timesteps": total_steps, "gamma": s["gamma"], "eps_start": s["eps_start"],
              "eps_end": s["eps_end"], "exploration_fraction": s["eps_decay_steps"] / total_steps,
              "num_envs": s["num_envs"], "skip_initial_evaluation": True, "eval_freq": total_steps}
    if algo == "pqn":
        steps_per_iter = s["num_envs"] * s["rollout_len"]
        updates_per_iter = s["epochs"] * s["minibatches"]
        base_lr = float(s["lr"])

        def decayed(count: jax.Array) -> jax.Array:  # deepq's lr_at(env step at the rollout's start)
            step = (count // updates_per_iter) * steps_per_iter
            return base_lr * jax.numpy.maximum(0.0, 1.0 - step / total_steps)
        lr: Any = decayed if s["lr_decay"] else base_lr
        return {**common, "num_steps": s["rollout_len"], "num_epochs": s["epochs"],
                "num_minibatches": s["minibatches"], "td_lambda": s["q_lambda"], "learning_rate": lr,
                "max_grad_norm": s["max_grad_norm"] if s["max_grad_norm"] > 0 else float("inf")}
    per_iter = s["gradient_steps"] * s["num_envs"] / s["train_freq"]
    if per_iter != int(per_iter) or per_iter < 1:
        raise ValueError(f"rejax's DQN takes whole updates per vector step; gradient_steps × num_envs / train_freq "
                         f"= {per_iter}")
    return {**common, "buffer_size": s["buffer_size"], "fill_buffer": s["learning_starts"],
            "batch_size": s["batch_size"], "num_epochs": int(per_iter),
            "target_update_freq": s["target_update_interval"], "polyak": 0.0, "ddqn": bool(s["double"]),
            "learning_rate": s["lr"],
            "max_grad_norm": s["max_grad_norm"] if s["max_grad_norm"] > 0 else float("inf")}


def make_algo(spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The rejax algorithm for the spec (env, config, the Q-network with deepq's widths), and its settings as JSON."""
    s, total = spec["settings"], spec["total_steps"]
    env, env_params = create(spec["env"], **spec.get("env_kwargs", {}))
    if spec.get("max_steps_in_episode"):
        env_params = env_params.replace(max_steps_in_episode=spec["max_steps_in_episode"])
    cls = PQN if spec["algo"] == "pqn" else DQN
    config = rejax_config(spec["algo"], s, total)
    algo = cls.create(env=env, env_params=env_params, **config)
    activation = layer_norm_relu if spec["algo"] == "pqn" else nn.relu
    if spec["algo"] == "dqn" and s.get("layer_norm"):
        activation = layer_norm_relu
    agent = EpsilonGreedyPolicy(DiscreteQNetwork)(hidden_layer_sizes=tuple(s["hidden_sizes"]),
                                                  action_dim=env.action_space(env_params).n, activation=activation)
    shown: dict[str, Any] = {k: v if isinstance(v, (bool, int, float, str)) else "deepq's lr × (1 − step / total_steps)"
             for k, v in config.items()}
    shown.update(env=spec["env"], env_kwargs=spec.get("env_kwargs", {}), hidden_layer_sizes=list(s["hidden_sizes"]),
                 max_steps_in_episode=int(env_params.max_steps_in_episode), n_actions=int(agent.action_dim))
    return algo.replace(agent=agent), shown


def steps_per_iteration(spec: dict[str, Any]) -> int:
    s = spec["settings"]
    return s["num_envs"] * (s["rollout_len"] if spec["algo"] == "pqn" else 1)


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One run: compile, iterate to window_start, time the rest, evaluate."""
    algo, shown = make_algo(spec)
    unit = steps_per_iteration(spec)
    total, start = spec["total_steps"] // unit, spec["window_start"] // unit
    if start < 1 or total <= start:
        raise ValueError(f"window ({spec['window_start']}, {spec['total_steps']}] holds no whole iteration of {unit}")
    ts = algo.init_state(jax.random.PRNGKey(spec["seed"]))

    def run(ts: Any, n: jax.Array) -> Any:  # rejax's train() minus its evaluations
        return jax.lax.fori_loop(0, n, lambda _, t: algo.train_iteration(t), ts)

    t = time.perf_counter()
    compiled = jax.jit(run).lower(ts, 0).compile()
    compile_s = time.perf_counter() - t
    ts = jax.block_until_ready(compiled(ts, start))
    t, c = time.perf_counter(), cpu_seconds()
    ts = jax.block_until_ready(compiled(ts, total - start))
    seconds, cpu = time.perf_counter() - t, cpu_seconds() - c
    steps = (total - start) * unit
    if int(ts.global_step) != total * unit:
        raise RuntimeError(f"rejax made {int(ts.global_step)} env steps, not {total * unit}")
    lengths, returns = algo.eval_callback(algo, ts, jax.random.PRNGKey(spec["seed"] + 1_000))
    return {"steps": steps, "seconds": seconds, "compile_s": compile_s, "cpu_per_wall": cpu / seconds,
            "final_return": float(returns.mean()), "final_episodes": int(returns.size),
            "final_length": float(lengths.mean()), "affinity": len(os.sched_getaffinity(0)),
            "devices": [str(d) for d in jax.devices()], "versions": versions(),
            "xla_flags": os.environ.get("XLA_FLAGS", ""), "rejax_config": shown}


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("jax", "jaxlib", "rejax", "gymnax", "flax", "optax"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print("RESULT " + json.dumps(worker(json.loads(sys.argv[1]))), flush=True)
