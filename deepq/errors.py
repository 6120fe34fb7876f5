"""The errors deepq raises on purpose: each message names the problem and the fix."""


class DeepQError(Exception):
    """Base class: the CLI prints these as one line, without a traceback."""


class ConfigError(DeepQError, ValueError):
    """A config value, preset name or environment is not something deepq can train on."""


class CheckpointError(DeepQError):
    """A file is not a readable deepq agent or checkpoint (corrupt, truncated, foreign)."""


class NonFiniteLossError(DeepQError, FloatingPointError):
    """The TD loss became NaN or inf; the run stopped and kept its last good state."""


class EnvError(DeepQError):
    """An environment returned something deepq cannot train on (a wrong shape, NaN/inf, a non-number)."""


class RunDirError(DeepQError):
    """A run directory cannot be used: it holds another run, another process has it, or a file in it is damaged."""


class DistributedError(DeepQError):
    """A distributed run (num_actors > 0) cannot start: Ray is not installed, cannot start, or cannot be reached."""


class RunInterrupted(KeyboardInterrupt):
    """A signal (SIGINT, SIGTERM, SIGHUP) stopped deepq: training after saving a checkpoint, or any other stage
    after undoing what it had started; `signum` says which. `reported`: the line saying what was kept has been
    printed. A KeyboardInterrupt, so code that catches Ctrl-C catches every such stop."""

    def __init__(self, signum: int, reported: bool = False) -> None:
        super().__init__(signum)
        self.signum = signum
        self.reported = reported


class DiskFullError(DeepQError, OSError):
    """A file could not be written: its disk is full (or over quota). The previous version of it is intact.

    An OSError too (errno ENOSPC or EDQUOT where deepq saw one), so `except OSError` still catches it."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""  # the message, never OSError's "[Errno 28] ..." form
