"""The learner's own settings: what deepq/core/learner.py and its fast paths (fast_path.py, fast_mlp.py) read,
made from the run's flat Config at set-up (deepq/components.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LearnerConfig:
    """The update's own settings (made from the run's Config at set-up, deepq/agent.py)."""

    target: str = "hard"  # 'hard' (θ⁻ ← θ every C steps), 'polyak', 'none', 'mcts' (search values), 'pqn' (λ-returns)
    optimizer: str = "adam"  # 'adam', 'radam' (PQN's) or 'rmsprop' (the MinAtar paper's centered RMSProp)
    lr: float = 2.5e-4
    loss: str = "mse"  # 'mse' or 'huber' (δ = 1)
    double: bool = False  # Double DQN: the online net picks a*, the target net values it
    tau: float = 0.005  # target='polyak': θ⁻ ← θ⁻ + τ(θ − θ⁻) after each step
    max_grad_norm: float = 0.0  # clip the gradient's global L2 norm; 0: no clipping
    weighted: bool = False  # prioritized replay: each transition's importance weight scales its loss
    fast: bool = True  # the swap-ins (fast_path, fast_mlp) where they run; False: the autograd update always

    @property
    def keeps_target(self) -> bool:
        """A target network θ⁻ exists: not for 'none' (the online net is its own target), 'mcts' (targets come
        from search) or 'pqn' (from its rollouts)."""
        return self.target not in ("none", "mcts", "pqn")
