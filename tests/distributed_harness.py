"""What tests/test_actors.py and tests/test_distributed.py share: small CartPole and tic-tac-toe MCTS settings."""

from __future__ import annotations

from typing import Any

SMALL: dict[str, Any] = dict(env="CartPole-v1", total_steps=3_000, learning_starts=200, train_freq=2, batch_size=32,
                             buffer_size=5_000, hidden_sizes=(32, 32), target_update_interval=100,
                             eps_decay_steps=1_000, eval_interval=0, eval_episodes=2, checkpoint_interval=1_000,
                             progress=False, lr=1e-3, num_actors=2, actor_batch=20)

MCTS = dict(env="openspiel:tic_tac_toe", target="mcts", mcts_simulations=16, mcts_episodes=4, train_freq=1,
            batch_size=32, buffer_size=1_000, hidden_sizes=(32, 32), learning_starts=50, eval_interval=0,
            eval_episodes=2, checkpoint_interval=100, progress=False, lr=1e-3)
