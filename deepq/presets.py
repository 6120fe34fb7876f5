"""Named presets: Configs with the settings each task was tuned with (README has the measured results)."""

from __future__ import annotations

import difflib
from typing import Any

from deepq.config import Config
from deepq.errors import ConfigError

PRESETS: dict[str, Config] = {
    "cartpole": Config(
        env="CartPole-v1", name="cartpole", total_steps=50_000, hidden_sizes=(64, 64),
        lr=1e-3, batch_size=64, buffer_size=50_000, learning_starts=1_000, train_freq=1,
        gradient_steps=1, target="hard", target_update_interval=100, double=True, loss="huber",
        eps_end=0.02, eps_decay_steps=5_000, eval_interval=1_000, eval_episodes=20,
        stop_at_return=475.0, checkpoint_interval=10_000,
    ),
    "acrobot": Config(
        env="Acrobot-v1", name="acrobot", total_steps=100_000, hidden_sizes=(128, 128),
        lr=6.3e-4, batch_size=128, buffer_size=50_000, learning_starts=1_000, train_freq=4,
        gradient_steps=2, target="hard", target_update_interval=250, double=True, loss="huber",
        eps_end=0.1, eps_decay_steps=12_000, eval_interval=5_000, eval_episodes=50,
        stop_at_return=-100.0,
    ),
    "mountaincar": Config(
        env="MountainCar-v0", name="mountaincar", total_steps=150_000, hidden_sizes=(256, 256),
        lr=4e-3, batch_size=128, buffer_size=10_000, learning_starts=1_000, train_freq=16,
        gradient_steps=8, target="hard", target_update_interval=600, double=True, loss="huber",
        eps_end=0.07, eps_decay_steps=30_000, gamma=0.98, eval_interval=5_000, eval_episodes=20,
        stop_at_return=-110.0,
    ),
    "lunarlander": Config(
        env="LunarLander-v3", name="lunarlander", total_steps=300_000, hidden_sizes=(256, 256),
        lr=6.3e-4, batch_size=128, buffer_size=50_000, learning_starts=1_000, train_freq=4,
        gradient_steps=1, target="hard", target_update_interval=250, double=True, loss="huber",
        eps_end=0.1, eps_decay_steps=36_000, eval_interval=10_000, eval_episodes=20,
        stop_at_return=200.0, checkpoint_interval=50_000,
    ),
    # Gymnasium's Taxi: 500 one-hot states, 6 actions, 200-step episodes. The env's info["action_mask"] rules out the
    # moves into walls and the pick-ups and drop-offs that cannot happen; deepq explores, acts and bootstraps among
    # the legal actions only (action_masks=True, the default). 7.0 is within about one step per episode of the
    # optimal policy's mean return (docs/guides/action-masks.md has the measurement, with and without the mask).
    "taxi": Config(
        env="Taxi-v4", name="taxi", total_steps=60_000, hidden_sizes=(64, 64),
        lr=1e-3, batch_size=64, buffer_size=50_000, learning_starts=1_000, train_freq=1,
        gradient_steps=1, target="hard", target_update_interval=500, double=True, loss="huber",
        eps_end=0.05, eps_decay_steps=20_000, eval_interval=2_500, eval_episodes=20,
        stop_at_return=7.0,
    ),
}

# Rainbow (Hessel et al. 2018): every component as a flag on the same loop. On CartPole: the cartpole
# preset plus dueling, noisy nets, C51 with 51 atoms on [0, 100] (returns at gamma 0.99 stay below 100),
# proportional prioritized replay (alpha 0.5, beta 0.4 -> 1) and 3-step returns, with noise scale sigma0
# 0.25 and gradient-norm clipping at 10. The cartpole preset's epsilon schedule stays on beside the noise
# (eps_with_noisy): with the noise alone CartPole took 16,000 median steps on seeds 40-59, with both
# 10,500 (README: the seeds each choice was made on, and the fresh seeds it was checked on).
_RAINBOW = dict(double=True, dueling=True, noisy=True, atoms=51, prioritized=True, per_alpha=0.5, per_beta=0.4,
                n_step=3)
PRESETS["rainbow"] = PRESETS["cartpole"].replace(name="rainbow", v_min=0.0, v_max=100.0, noisy_sigma=0.25,
                                                 max_grad_norm=10.0, eps_with_noisy=True, **_RAINBOW)

# Atari from pixels. Units: env steps are agent steps; each is `frame_skip` (4) emulator frames.
# Both presets: 30 no-op starts, frame skip 4 with max-pooling, 84x84 grayscale, 4-frame history
# (Nature CNN), rewards clipped to their sign for training, life loss as terminal, FIRE on reset.
_ATARI = dict(frame_stack=4, noop_max=30, frame_skip=4, screen_size=84, grayscale=True, clip_rewards=True,
              episodic_life=True, fire_reset=True, sticky_actions=False, batch_size=32, buffer_size=1_000_000,
              train_freq=4, gamma=0.99, eval_interval=250_000, eval_episodes=10, checkpoint_interval=1_000_000)
PRESETS.update({
    # Mnih et al. 2015, Extended Data Table 1: RMSProp 2.5e-4, replay 1M, 50k random steps first,
    # eps 1 -> 0.1 over 1M steps, target copied every 10,000 updates (= 40,000 agent steps at one update
    # per 4), error clipped to [-1, 1] (= Huber), 50M frames; evaluated with eps = 0.05.
    "atari-nature": Config(
        env="ALE/Pong-v5", name="atari-nature", total_steps=12_500_000, optimizer="rmsprop", lr=2.5e-4,
        learning_starts=50_000, target_update_interval=40_000, loss="huber", eps_end=0.1,
        eps_decay_steps=1_000_000, eval_eps=0.05, **_ATARI),  # type: ignore[arg-type]
    # The modern defaults (CleanRL's dqn_atari): Adam 1e-4, target every 1,000 steps, eps -> 0.01 over
    # the first 10% of 10M steps, MSE loss; evaluated with eps = 0.001 (Dopamine's protocol).
    "atari": Config(
        env="ALE/Pong-v5", name="atari", total_steps=10_000_000, lr=1e-4, learning_starts=80_000,
        target_update_interval=1_000, loss="mse", eps_end=0.01, eps_decay_steps=1_000_000, eval_eps=0.001,
        **_ATARI),  # type: ignore[arg-type]
})
# Rainbow's Atari settings (Hessel et al. 2018, table 1): Adam 6.25e-5, 20k random steps first, target
# every 8,000 steps (32k frames), atoms 51 on [-10, 10], 3-step returns, PER alpha 0.5, beta 0.4 -> 1,
# noisy nets (sigma0 0.5) instead of epsilon; evaluated with eps = 0.001.
PRESETS["rainbow-atari"] = PRESETS["atari"].replace(
    name="rainbow-atari", lr=6.25e-5, learning_starts=20_000, target_update_interval=8_000, loss="huber",
    v_min=-10.0, v_max=10.0, **_RAINBOW)
PRESETS["pong"] = PRESETS["atari"].replace(name="pong", env="ALE/Pong-v5", stop_at_return=18.0)
PRESETS["breakout"] = PRESETS["atari"].replace(name="breakout", env="ALE/Breakout-v5")

# MinAtar (Young & Tian 2019): 10x10 object grids, sticky actions 0.1 built in, no frame skip (a step
# is a frame), the full 6-action set (the -v0 ids) as in the paper's results. The paper's DQN: its
# small CNN, centered RMSProp 2.5e-4, replay 100k, batch 32, one update per step, target every 1,000
# steps, 5,000 random steps then eps 1 -> 0.1 over 100k (ours: linear from step 0 to 105k, ending at
# the same step), Huber, 5M frames.
for _game in ("Breakout", "SpaceInvaders", "Freeway", "Asterix", "Seaquest"):
    PRESETS[f"minatar-{_game.lower()}"] = Config(
        env=f"MinAtar/{_game}-v0", name=f"minatar-{_game.lower()}", total_steps=5_000_000, arch="small_cnn",
        optimizer="rmsprop", lr=2.5e-4, batch_size=32, buffer_size=100_000, learning_starts=5_000,
        train_freq=1, target_update_interval=1_000, loss="huber", eps_end=0.1, eps_decay_steps=105_000,
        gamma=0.99, eval_interval=100_000, eval_episodes=30, checkpoint_interval=250_000)

# Two-player games by self-play (deepq/games): every ply is a transition from its mover's side, the
# target negates the opponent snapshot's (the target net's) best legal value, discount 0.99 per ply.
# Tic-tac-toe: a long epsilon tail (0.3) so that odd positions are visited too (seed 1, 200k plies:
# 98.96% optimal moves with 0.2, 99.58% with 0.3); the README has the figures (losses against the
# perfect player, optimal moves over all 4,520 reachable positions).
_GAMES = dict(arch="mlp", gamma=0.99, double=True, loss="huber", train_freq=1, checkpoint_interval=50_000)
PRESETS["tictactoe"] = Config(
    env="openspiel:tic_tac_toe", name="tictactoe", total_steps=200_000, hidden_sizes=(128, 128), lr=5e-4,
    batch_size=128, buffer_size=100_000, learning_starts=2_000, target_update_interval=1_000, eps_end=0.3,
    eps_decay_steps=30_000, eval_interval=20_000, eval_episodes=20, eval_opponent="perfect",
    **_GAMES)  # type: ignore[arg-type]
# Connect Four: the MinAtar paper's small CNN (16 3x3 filters, then 128 units) beat a 256-256 MLP at
# 600k plies (README: vs random 200/193 wins of 200 per seat against 195/184).
PRESETS["connect4"] = Config(
    env="openspiel:connect_four", name="connect4", total_steps=600_000, lr=5e-4,
    batch_size=128, buffer_size=200_000, learning_starts=5_000, target_update_interval=2_000, eps_end=0.1,
    eps_decay_steps=100_000, eval_interval=50_000, eval_episodes=20, eval_opponent="random",
    **{**_GAMES, "arch": "small_cnn"})  # type: ignore[arg-type]
# Connect Four with MCTS targets (deepq/training/mcts.py): the same network, Q regressed toward a 50-simulation
# Q-guided search's values. Seeds 0 and 1 won 200/200 and 199/198 of 200 games per seat against random
# (the target-network preset: 200 and 193 on seed 0); README.
PRESETS["connect4-mcts"] = PRESETS["connect4"].replace(name="connect4-mcts", target="mcts", mcts_simulations=50,
                                                       total_steps=175_000, eval_interval=25_000)

# PQN (Gallici et al. 2024; deepq/training/pqn.py): no target network, no replay, LayerNorm before every hidden
# ReLU, Q(λ) returns of short rollouts of many envs, RAdam, gradient norm clipped at 10, ε decayed over the first
# part of the run. The settings of the paper's code (purejaxql's pqn_cartpole, pqn_minatar and pqn_atari configs),
# with lr annealed linearly to 0 over the run where those configs do (LR_LINEAR_DECAY: CartPole, MinAtar), and ε
# decayed over env steps.
_PQN = dict(target="pqn", layer_norm=True, optimizer="radam", max_grad_norm=10.0, loss="mse", learning_starts=0,
            eps_start=1.0, gamma=0.99)
# CartPole: 32 envs x 64 steps, λ 0.95, 4 epochs of 16 minibatches (128 transitions each), 256-256 MLP, lr 1e-4 to 0,
# rewards scaled by 0.1, ε 1 -> 0.2 over 20% of 500k steps.
PRESETS["cartpole-pqn"] = Config(
    env="CartPole-v1", name="cartpole-pqn", total_steps=500_000, num_envs=32, rollout_len=64, q_lambda=0.95,
    epochs=4, minibatches=16, hidden_sizes=(256, 256), lr=1e-4, lr_decay=True, reward_scale=0.1, eps_end=0.2,
    eps_decay_steps=100_000, eval_interval=20_000, eval_episodes=20, stop_at_return=475.0,
    checkpoint_interval=50_000, **_PQN)  # type: ignore[arg-type]
# MinAtar: 128 envs x 32 steps, λ 0.65, 2 epochs of 32 minibatches, lr 5e-4 to 0, ε 1 -> 0.05 over 10% of the run;
# the MinAtar paper's small CNN with LayerNorm (purejaxql's), and the DQN presets' 5M steps (the paper: 10M).
for _game in ("Breakout", "SpaceInvaders", "Freeway", "Asterix", "Seaquest"):
    PRESETS[f"minatar-{_game.lower()}-pqn"] = PRESETS[f"minatar-{_game.lower()}"].replace(
        name=f"minatar-{_game.lower()}-pqn", num_envs=128, rollout_len=32, q_lambda=0.65, epochs=2, minibatches=32,
        lr=5e-4, lr_decay=True, eps_end=0.05, eps_decay_steps=500_000, **_PQN)
# Connect Four by PQN self-play (issue #33): the learner in both seats, λ-returns with the opponent's value
# negated; an MLP 512-512-512 with LayerNorm (the small CNN at the same settings won 7 and 8 of 50 against
# MCTS-1000 after 15M plies; this network 74 and 62 of 100, 89 and 81 after 30M, 90-95 and 84-90 after 60M on
# three seeds: docs/results/games.md), 128 games x 32 plies, λ 0.65, 2 epochs of 32 minibatches, RAdam, lr 5e-4 to
# 0, ε 1 -> 0.1 over the first 10%; each position also learned from as its mirror image (mirror=True: 97 and 95
# of 100 from seed 0 after 40M plies, ~100 min on one core undisturbed, against 95 and 84 after 60M plies without).
# Evaluated during training against MCTS with 200 simulations (random stops measuring progress within 1M plies).
PRESETS["connect4-pqn"] = PRESETS["connect4"].replace(
    name="connect4-pqn", arch="mlp", hidden_sizes=(512, 512, 512), double=False, total_steps=40_000_000,
    num_envs=128, rollout_len=32, q_lambda=0.65, epochs=2, minibatches=32, lr=5e-4, lr_decay=True, eps_end=0.1,
    eps_decay_steps=4_000_000, mirror=True, eval_interval=3_000_000, eval_opponent="mcts:200",
    checkpoint_interval=1_000_000, **_PQN)
# Atari with EnvPool: 128 envs x 32 steps, λ 0.65, 2 epochs of 32 minibatches, lr 2.5e-4, ε 1 -> 0.001 over
# 10% of 50M steps (200M frames), the Nature CNN with LayerNorm; life loss terminal, rewards clipped; greedy eval.
PRESETS["atari-pqn"] = PRESETS["atari"].replace(
    name="atari-pqn", backend="envpool", total_steps=50_000_000, num_envs=128, rollout_len=32, q_lambda=0.65,
    epochs=2, minibatches=32, lr=2.5e-4, eps_end=0.001, eps_decay_steps=5_000_000, eval_eps=0.0,
    checkpoint_interval=1_000_000, **_PQN)


def preset(name: str, **overrides: Any) -> Config:
    """A named preset with some fields overridden: preset("cartpole", seed=3)."""
    key = name.lower()
    if key not in PRESETS:
        close = difflib.get_close_matches(key, PRESETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown preset {name!r}{hint}; presets are: {', '.join(PRESETS)}")
    return PRESETS[key].replace(**overrides)


def describe_presets() -> list[dict[str, Any]]:
    """Key settings of each preset, for `deepq presets`."""
    def network(c: Config) -> str:
        if c.arch in ("auto", "mlp") and not str(c.env).startswith(("ALE/", "MinAtar/")):
            return "mlp " + "-".join(map(str, c.hidden_sizes))
        return "small_cnn" if c.arch == "small_cnn" or str(c.env).startswith("MinAtar/") else "nature_cnn"

    def extras(c: Config) -> str:
        flags = [f for f in ("double", "dueling", "noisy", "eps_with_noisy", "prioritized", "layer_norm")
                 if getattr(c, f)]
        flags += [f"n_step={c.n_step}"] * (c.n_step > 1) + [f"atoms={c.atoms}"] * (c.atoms > 1)
        flags += [f"frame_stack={c.frame_stack}"] * (c.frame_stack > 1)
        flags += [f"target={c.target}"] * (c.target != "hard")
        return ",".join(flags) or "-"

    return [{"preset": n, "env": c.env, "total_steps": c.total_steps, "network": network(c), "lr": c.lr,
             "optimizer": c.optimizer, "flags": extras(c), "solved_at": c.stop_at_return} for n, c in PRESETS.items()]
