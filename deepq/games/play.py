"""A person plays an OpenSpiel bot in the terminal.

``play_game`` plays one game of a two-player, turn-based OpenSpiel game; ``play_session`` plays games in a row
and keeps a tally. Input and output go through ``input_fn``/``print_fn`` so that tests (and other front ends) can
script the person without a terminal.
"""

from __future__ import annotations

import io
import random
import sys
from collections.abc import Callable

import pyspiel

from deepq.errors import ConfigError

__all__ = ["Quit", "play_game", "play_session", "read_line"]

_QUIT_WORDS = frozenset({"q", "quit"})


class Quit(Exception):
    """The person asked to stop: typed ``q``/``quit``, closed input (EOF) or pressed Ctrl-C.

    ``play_game`` raises it in place of EOFError/KeyboardInterrupt so that the caller has one clean thing to catch
    (``play_session`` catches it and prints the tally); it carries no traceback worth showing to the person.
    ``interrupt`` is the KeyboardInterrupt (or deepq's RunInterrupted, one of them) that stopped the game, if one
    did, for ``play_session`` to raise again after the tally so the program exits as that signal asks (130);
    ``mid_line``: input ended without a newline (EOF, Ctrl-C), so the next output starts a line of its own.
    """

    def __init__(self, interrupt: KeyboardInterrupt | None = None, mid_line: bool = False) -> None:
        super().__init__()
        self.interrupt = interrupt
        self.mid_line = mid_line


def read_line(prompt: str) -> str:
    """``input(prompt)``, with a standard input that is closed (``<&-``) or cannot be read (opened write-only)
    raising EOFError like one at its end: nobody is there to answer. input() itself raised RuntimeError
    ("lost sys.stdin") or OSError for those. Bytes that are not text in stdin's encoding read as U+FFFD (a
    strict decoder raised UnicodeDecodeError, and dropped the rest of what it had read with the bad byte)."""
    if sys.stdin is None or sys.stdin.closed:
        print(prompt, end="", flush=True)
        raise EOFError
    if isinstance(sys.stdin, io.TextIOWrapper) and sys.stdin.errors == "strict":
        sys.stdin.reconfigure(errors="replace")
    try:
        return input(prompt)
    except (OSError, RuntimeError) as e:
        raise EOFError from e


def _board(state: pyspiel.State) -> str:
    """OpenSpiel's own drawing, plus an index legend for the games whose move ids are not obvious from it."""
    text = str(state).rstrip("\n")
    name = state.get_game().get_type().short_name
    if name == "tic_tac_toe":
        # Cell ids 0-8 in reading order, set beside the board so each row lines up with its ids.
        rows = text.split("\n")
        if len(rows) == 3:
            return "\n".join(f"{row}   {3 * r}{3 * r + 1}{3 * r + 2}" for r, row in enumerate(rows))
    elif name == "connect_four":
        # Move ids are column numbers; write them under the columns (mod 10 keeps one char per column).
        columns = len(text.split("\n")[0])
        return text + "\n" + "".join(str(c % 10) for c in range(columns))
    return text


def _ask(input_fn: Callable[[str], str], prompt: str) -> str:
    """Reads one trimmed line, turning every way of leaving (q/quit, EOF, Ctrl-C) into Quit."""
    try:
        text = input_fn(prompt).strip()
    except EOFError:
        raise Quit(mid_line=True) from None
    except KeyboardInterrupt as e:
        raise Quit(e, mid_line=True) from None
    if text.lower() in _QUIT_WORDS:
        raise Quit
    return text


def _parse_move(state: pyspiel.State, text: str) -> int | str:
    """Returns the legal action the text names, or a one-line reason why it names none.

    An integer is read as an action id; anything else must equal one of the legal actions' strings as OpenSpiel
    prints them, ignoring case. Ids are tried first, so a game whose action strings look like numbers is played by id.
    """
    if not text:
        return "Empty input: type a move id or its name from the list."
    player = state.current_player()
    legal = state.legal_actions()
    try:
        action = int(text)
    except ValueError:
        by_name = {state.action_to_string(player, a).strip().lower(): a for a in legal}
        if text.lower() in by_name:
            return by_name[text.lower()]
        return f"Not a legal move: {_shown(text)}. Type a move id or its name from the list."
    if action in legal:
        return action
    last = state.get_game().num_distinct_actions() - 1
    if not 0 <= action <= last:
        return f"No move {action}: move ids run from 0 to {last}."
    try:
        name = f" ({state.action_to_string(player, action)})"
    except RuntimeError:  # some games refuse to name an illegal action; the id alone will do
        name = ""
    return f"Move {action}{name} is not legal now (already taken or not allowed)."


def _shown(text: str) -> str:
    """The person's text, quoted, cut to 40 characters: a pasted page is not echoed back whole."""
    return repr(text) if len(text) <= 40 else repr(text[:40]) + f"... ({len(text):,} characters)"


def _human_move(state: pyspiel.State, input_fn: Callable[[str], str], print_fn: Callable[[str], None]) -> int:
    """Draws the board, lists the legal moves, and asks until the person names one (or quits)."""
    player = state.current_player()
    print_fn(_board(state))
    print_fn("Legal moves: " + ", ".join(f"{a}: {state.action_to_string(player, a)}" for a in state.legal_actions()))
    while True:
        parsed = _parse_move(state, _ask(input_fn, "Your move: "))
        if isinstance(parsed, int):
            return parsed
        print_fn(parsed)


def play_game(
    game: pyspiel.Game,
    bot: pyspiel.Bot,
    human_player: int,
    input_fn: Callable[[str], str] = read_line,
    print_fn: Callable[[str], None] = print,
    *,
    seed: int = 0,
) -> list[float]:
    """Plays one game between the person (seat ``human_player``; 0 moves first) and ``bot``; returns the returns.

    ``bot`` must play the other seat. Chance nodes are sampled with a ``random.Random(seed)``, so a game replays
    the same way for the same moves. Raises Quit when the person quits (q/quit, EOF, Ctrl-C).
    """
    _check_game(game, human_player, asked=False)
    rng = random.Random(seed)
    state = game.new_initial_state()
    bot.restart()  # a bot reused across games (play_session does that) must forget the last one
    print_fn(f"You are player {human_player + 1} ({'first' if human_player == 0 else 'second'} to move).")
    try:
        while not state.is_terminal():
            if state.is_chance_node():
                outcomes, probs = zip(*state.chance_outcomes(), strict=True)
                action = rng.choices(outcomes, weights=probs)[0]
                bot.inform_action(state, pyspiel.PlayerId.CHANCE, action)
                print_fn(f"Chance: {state.action_to_string(pyspiel.PlayerId.CHANCE, action)}")
            elif state.current_player() == human_player:
                action = _human_move(state, input_fn, print_fn)
                # Bots that keep a search tree or a belief (MCTS, ...) follow the game only through inform_action.
                bot.inform_action(state, human_player, action)
            else:
                player = state.current_player()
                action = bot.step(state)
                print_fn(f"Bot plays: {state.action_to_string(player, action)}")
            state.apply_action(action)
    except KeyboardInterrupt as e:  # Ctrl-C while the bot thinks is a quit too, not a traceback
        raise Quit(e, mid_line=True) from None
    print_fn(_board(state))
    returns: list[float] = list(state.returns())
    mine, theirs = returns[human_player], returns[1 - human_player]
    print_fn("You win!" if mine > theirs else "You lose." if mine < theirs else "Draw.")
    return returns


def _check_game(game: pyspiel.Game, human_player: int | None, asked: bool) -> None:
    """A ConfigError (one line from the command line) for a game or seat that cannot be played here; `asked`:
    None (ask the person) is a seat too."""
    game_type = game.get_type()
    if game.num_players() != 2 or game_type.dynamics != pyspiel.GameType.Dynamics.SEQUENTIAL:
        raise ConfigError(f"play_game needs a two-player turn-based game, not {game_type.short_name}")
    seats = (None, 0, 1) if asked else (0, 1)
    if human_player not in seats or isinstance(human_player, bool):
        ask = " or None (asked)" if asked else ""
        raise ConfigError(f"human_player={human_player!r} is not valid: use 0 (you move first), 1 (second){ask}")


def _ask_seat(input_fn: Callable[[str], str], print_fn: Callable[[str], None]) -> int:
    while True:
        answer = _ask(input_fn, "Play first (x) or second (o)? [1/2] ").lower()
        if answer in ("1", "x"):
            return 0
        if answer in ("2", "o"):
            return 1
        print_fn("Please type 1 to play first or 2 to play second (q quits).")


def _ask_again(input_fn: Callable[[str], str], print_fn: Callable[[str], None]) -> bool:
    while True:
        answer = _ask(input_fn, "Play again? [y/n] ").lower()
        if answer in ("y", "yes"):
            return True
        if answer in ("n", "no"):
            return False
        print_fn("Please type y or n.")


def play_session(
    game: pyspiel.Game,
    bot_factory: Callable[[int], pyspiel.Bot],
    human_player: int | None = None,
    input_fn: Callable[[str], str] = read_line,
    print_fn: Callable[[str], None] = print,
) -> None:
    """Plays games against ``bot_factory(bot_seat)`` until the person says no or quits, then prints the tally.

    The seat is asked once when ``human_player`` is None and kept for every game. The bot is built before the
    first question, so a setting its factory refuses (as_bot's ConfigError) ends the session before anything is
    asked: for the second seat, and once more for the first if the person takes the second. It is restarted each
    game, so a seeded random bot plays different games rather than replaying the first one. Quitting (q, the end
    of input or a closed input, Ctrl-C) prints one line, ``Bye. Tally: ...``; a Ctrl-C is then raised again, so
    a program exits as interrupted (``deepq play``: 130).
    """
    _check_game(game, human_player, asked=True)
    bot_seat = 0 if human_player == 1 else 1
    bot = bot_factory(bot_seat)
    wins = draws = losses = 0
    try:
        seat = _ask_seat(input_fn, print_fn) if human_player is None else human_player
        if bot_seat != 1 - seat:
            bot = bot_factory(1 - seat)
        while True:
            returns = play_game(game, bot, seat, input_fn, print_fn, seed=wins + draws + losses)
            mine, theirs = returns[seat], returns[1 - seat]
            wins += mine > theirs
            losses += mine < theirs
            draws += mine == theirs
            if not _ask_again(input_fn, print_fn):
                break
    except Quit as q:
        try:
            if q.mid_line:
                print_fn("")
            print_fn(f"Bye. Tally: {wins} wins, {draws} draws, {losses} losses.")
        except OSError:  # SIGHUP: the terminal is gone, and with it anyone to tell
            pass
        if q.interrupt is not None:
            # The tally was the line that says what was kept: deepq's command line adds none of its own (it reads
            # `reported`, as RunInterrupted has it) and exits 128 + the signal's number.
            setattr(q.interrupt, "reported", True)  # noqa: B010
            raise q.interrupt from None
        return
    print_fn(f"Tally: {wins} wins, {draws} draws, {losses} losses.")
