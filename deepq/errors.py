"""The errors deepq raises on purpose: each message names the problem and the fix."""


class DeepQError(Exception):
    """Base class: the CLI prints these as one line, without a traceback."""


class ConfigError(DeepQError, ValueError):
    """A config value, preset name or environment is not something deepq can train on."""


class CheckpointError(DeepQError):
    """A file is not a readable deepq agent or checkpoint (corrupt, truncated, foreign)."""


class NonFiniteLossError(DeepQError, FloatingPointError):
    """The TD loss became NaN or inf; the run stopped and kept its last good state."""
