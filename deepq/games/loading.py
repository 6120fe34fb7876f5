"""Loading an OpenSpiel game from its string ('connect_four', 'breakthrough(rows=6,columns=6)'), so that a mistake
is one ConfigError line and nothing else reaches the terminal.

Three things pyspiel does not do for us:

* An unknown name makes pyspiel's C++ code write "OpenSpiel exception: Unknown game ..." and the list of every
  registered game (~130 lines) to std::cerr, file descriptor 2, which Python's sys.stderr never sees (so
  contextlib.redirect_stderr cannot hold it back). Names are looked up in `pyspiel.registered_names()` first, with
  the closest ones suggested, and pyspiel's own calls run with descriptor 2 captured (`quiet_spiel`).
* Parameters are not range-checked: 'connect_four(rows=0)' loads and then crashes the process (a segmentation
  fault) when its first state is made, 'connect_four(rows=-1)' asks for a vector larger than memory and
  'hex(board_size=100000)' allocates a 10^10-cell board. The sizes a game reports are checked before any state
  exists (`check_sizes`).
* A SpielError (a failed check inside a game, e.g. 'breakthrough(rows=1)') is a ConfigError naming the game.
"""

from __future__ import annotations

import difflib
import math
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import pyspiel

from deepq.errors import ConfigError

# Far above every registered game's defaults (the largest: colored_trails with 93,123 actions, stones_and_gems with
# observations of 7,440 numbers) and far below what breaks a machine: a Q-network's output layer and each replay
# slot grow with these.
MAX_ACTIONS = 1_000_000
MAX_OBSERVATION = 1_000_000  # numbers in one observation tensor
LIST_GAMES = "list them with `python -c 'import pyspiel; print(pyspiel.registered_names())'`"


@contextmanager
def quiet_spiel(name: str) -> Iterator[None]:
    """Runs pyspiel calls about game `name` with file descriptor 2 captured and SpielError turned into ConfigError.

    What the C++ side wrote is dropped when it raised (the ConfigError says it in one line) and written back to
    stderr when it did not, so a warning of a game that loads is not lost. Descriptor 2 is restored however the
    block ends. For the microseconds a game loads, other threads' stderr is captured with it.
    """
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # descriptor 2 is closed: there is no terminal to keep clean
        saved = -1
    captured = tempfile.TemporaryFile() if saved >= 0 else None
    failed = False
    try:
        if captured is not None:
            os.dup2(captured.fileno(), 2)
        try:
            yield
        except pyspiel.SpielError as e:
            failed = True
            raise ConfigError(f"OpenSpiel cannot load game {name!r}: {_first_line(str(e))}") from None
    finally:
        if captured is not None:
            os.dup2(saved, 2)
            os.close(saved)
            if not failed:
                captured.seek(0)
                if text := captured.read():
                    os.write(2, text)
            captured.close()


def _first_line(message: str) -> str:
    line = message.strip().splitlines()[0] if message.strip() else "no reason given"
    if "CHECK" in line:  # an internal check such as "game_parameters.cc:183 CHECK_TRUE(success)"
        return f"a check inside OpenSpiel failed ({line}); a parameter may be out of range"
    return line


def suggest(name: str) -> str:
    """' (did you mean 'a' or 'b'?)' for the registered games closest to `name`, or ''."""
    # Compared without case and separators, so 'TicTacToe' and 'connect4' find 'tic_tac_toe' and 'connect_four';
    # a cutoff of 0.7, not difflib's 0.6, keeps 'no_such_game' from suggesting 'nfg_game'.
    by_key = {_key(n): n for n in pyspiel.registered_names()}
    close = [by_key[k] for k in difflib.get_close_matches(_key(name), list(by_key), n=3, cutoff=0.7)]
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def _key(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def load_game(name: str) -> pyspiel.Game:
    """pyspiel.load_game(name) with its sizes checked; every mistake is one ConfigError line."""
    base = name.partition("(")[0]
    if base not in pyspiel.registered_names():
        raise ConfigError(f"OpenSpiel has no game {base!r}{suggest(base)}; {LIST_GAMES}")
    with quiet_spiel(name):
        game = pyspiel.load_game(name)
    check_sizes(name, game)
    return game


def check_sizes(name: str, game: pyspiel.Game) -> None:
    """ConfigError when the game's action count or observation shape is empty, negative or beyond the bounds."""
    actions = game.num_distinct_actions()
    if not 1 <= actions <= MAX_ACTIONS:
        raise ConfigError(f"OpenSpiel game {name!r} has {actions:,} distinct actions; deepq plays games with 1 to "
                          f"{MAX_ACTIONS:,}: check its parameters")
    if not game.get_type().provides_observation_tensor:
        return  # the adapter refuses such a game with its own reason
    shape = tuple(game.observation_tensor_shape())
    size = math.prod(shape) if min(shape, default=1) >= 1 else 0  # a dimension of 0 or less: nothing to observe
    if not 1 <= size <= MAX_OBSERVATION:
        raise ConfigError(f"OpenSpiel game {name!r} has observations of shape {shape}; deepq plays games whose "
                          f"observation has 1 to {MAX_OBSERVATION:,} numbers: check its parameters")
