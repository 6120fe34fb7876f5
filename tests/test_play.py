"""Terminal play against real OpenSpiel bots, with the person scripted through input_fn/print_fn."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable

import pyspiel
import pytest

from deepq.errors import ConfigError
from deepq.games.play import Quit, play_game, play_session


class FirstLegalBot(pyspiel.Bot):
    """Always plays the lowest legal action id, so a scripted game is known move for move."""

    def __init__(self) -> None:
        pyspiel.Bot.__init__(self)  # pybind11 needs the base initialised explicitly

    def step(self, state: pyspiel.State) -> int:
        return int(state.legal_actions()[0])


class Script:
    """Feeds scripted lines to input_fn and collects everything printed; running out of lines is EOF."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = iter(lines)
        self.printed: list[str] = []
        self.prompts: list[str] = []

    def input(self, prompt: str) -> str:
        self.prompts.append(prompt)
        try:
            return next(self.lines)
        except StopIteration:
            raise EOFError from None

    def print(self, text: str) -> None:
        self.printed.append(text)

    @property
    def text(self) -> str:
        return "\n".join(self.printed)


def _play(game_name: str, bot: pyspiel.Bot, seat: int, lines: Iterable[str]) -> tuple[list[float], Script]:
    script = Script(lines)
    returns = play_game(pyspiel.load_game(game_name), bot, seat, script.input, script.print)
    return returns, script


def test_full_game_against_random_bot() -> None:
    # Offering every cell in order always finds a legal one, whatever the random bot took.
    returns, script = _play("tic_tac_toe", pyspiel.make_uniform_random_bot(1, 7), 0, [str(c) for c in range(9)] * 9)
    assert sorted(returns) in ([-1.0, 1.0], [0.0, 0.0])
    assert "Bot plays: o(" in script.text
    assert "0: x(0,0)" in script.text  # legal moves listed as id: name
    assert "012" in script.text and "345" in script.text and "678" in script.text  # cell legend
    assert script.printed[-1] in ("You win!", "You lose.", "Draw.")


def test_person_wins_on_a_known_line_and_returns_agree() -> None:
    # Person takes 0, 3, 6 (left column); the bot takes the lowest free cell: 1, then 2.
    returns, script = _play("tic_tac_toe", FirstLegalBot(), 0, ["0", "3", "6"])
    assert returns == [1.0, -1.0]
    assert script.printed[-1] == "You win!"
    assert script.printed[-2] == "xoo   012\nx..   345\nx..   678"  # final board, legend beside it


def test_person_loses_and_draw_are_reported() -> None:
    # Bot is x (seat 0) and takes 0, 1, 2 while the person plays 4, 8: top row for the bot.
    returns, script = _play("tic_tac_toe", FirstLegalBot(), 1, ["4", "8"])
    assert returns == [1.0, -1.0]
    assert script.printed[-1] == "You lose."
    # x: 1 3 4 6 8 | o (bot): 0 2 5 7 -> no line for anyone.
    returns, script = _play("tic_tac_toe", FirstLegalBot(), 0, ["1", "3", "4", "6", "8"])
    assert returns == [0.0, 0.0]
    assert script.printed[-1] == "Draw."


def test_bad_inputs_are_rejected_and_asked_again() -> None:
    # Person 4, bot takes 0; then bad lines, an occupied cell (0 and 4), and finally a legal move.
    lines = ["4", "", "abc", "99", "0", "4", "-1", "x(1,1)", "3", "q"]
    script = Script(lines)
    with pytest.raises(Quit):
        play_game(pyspiel.load_game("tic_tac_toe"), FirstLegalBot(), 0, script.input, script.print)
    assert "Empty input: type a move id or its name from the list." in script.printed
    assert "Not a legal move: 'abc'. Type a move id or its name from the list." in script.printed
    assert "No move 99: move ids run from 0 to 8." in script.printed
    assert "Move 0 (x(0,0)) is not legal now (already taken or not allowed)." in script.printed
    assert "Move 4 (x(1,1)) is not legal now (already taken or not allowed)." in script.printed
    assert "No move -1: move ids run from 0 to 8." in script.printed
    assert "Not a legal move: 'x(1,1)'. Type a move id or its name from the list." in script.printed
    # Each rejection was a single line and re-asked: one prompt per scripted line.
    assert script.prompts == ["Your move: "] * len(lines)
    # After the rejections "3" was accepted: the bot answered with its next free cell.
    assert script.printed.count("Bot plays: o(0,0)") == 1
    assert "Bot plays: o(0,1)" in script.printed
    assert not any("Traceback" in line for line in script.printed)


def test_action_given_as_its_string() -> None:
    returns, _ = _play("tic_tac_toe", FirstLegalBot(), 0, ["X(0,0)", "  x(1,0) ", "x(2,0)"])
    assert returns == [1.0, -1.0]


@pytest.mark.parametrize("word", ["q", "QUIT", " quit "])
def test_quit_word_raises_quit(word: str) -> None:
    script = Script(["4", word])
    with pytest.raises(Quit):
        play_game(pyspiel.load_game("tic_tac_toe"), FirstLegalBot(), 0, script.input, script.print)
    assert "Bot plays: o(0,0)" in script.printed


@pytest.mark.parametrize("error", [EOFError, KeyboardInterrupt])
def test_eof_and_ctrl_c_raise_quit(error: type[BaseException]) -> None:
    def stop(prompt: str) -> str:
        raise error

    with pytest.raises(Quit):
        play_game(pyspiel.load_game("tic_tac_toe"), FirstLegalBot(), 0, stop, lambda _: None)


def test_second_seat_bot_moves_first() -> None:
    returns, script = _play("tic_tac_toe", pyspiel.make_uniform_random_bot(0, 3), 1, [str(c) for c in range(9)] * 9)
    assert script.printed[0] == "You are player 2 (second to move)."
    assert script.printed[1].startswith("Bot plays: x(")  # the bot moved before the first board was drawn
    assert len(returns) == 2


def test_connect_four_accepts_column_numbers() -> None:
    # Person drops four in column 3; the bot keeps filling column 0 and cannot block in time.
    returns, script = _play("connect_four", FirstLegalBot(), 0, ["3", "3", "3", "3"])
    assert returns == [1.0, -1.0]
    assert "0123456" in script.text  # column legend under the board
    assert "Bot plays: o0" in script.printed


def test_chance_nodes_are_sampled() -> None:
    game = pyspiel.load_game("pig", {"winscore": 10})
    # Roll once, then bank it: the game ends (someone reaches 10, or the horizon) whatever the dice say.
    script = Script(itertools.cycle(["roll", "stop"]))
    returns = play_game(game, pyspiel.make_uniform_random_bot(1, 5), 0, script.input, script.print, seed=1)
    assert any(line.startswith("Chance: Roll") for line in script.printed)
    assert len(returns) == 2


def _session(lines: Iterable[str], seat: int | None = None) -> Script:
    script = Script(lines)
    factory: Callable[[int], pyspiel.Bot] = lambda _seat: FirstLegalBot()  # noqa: E731
    play_session(pyspiel.load_game("tic_tac_toe"), factory, seat, script.input, script.print)
    return script


def test_session_asks_seat_plays_again_and_tallies() -> None:
    # Seat re-asked on "3"; first game a win (0 3 6), bad answer to "again", second game a draw, then no.
    script = _session(["3", "1", "0", "3", "6", "maybe", "y", "1", "3", "4", "6", "8", "n"])
    assert "Please type 1 to play first or 2 to play second (q quits)." in script.printed
    assert "Please type y or n." in script.printed
    assert script.prompts.count("Play first (x) or second (o)? [1/2] ") == 2  # seat is not asked again
    assert script.printed[-1] == "Tally: 1 wins, 1 draws, 0 losses."


def test_session_second_seat_and_quit_keeps_tally() -> None:
    # Seat 2: the bot (x) takes 0, 1, 2 while the person plays 4, 8; the second game is quit at its first move.
    script = _session(["2", "4", "8", "y", "q"])
    assert "You lose." in script.printed
    assert script.printed[-1] == "Bye. Tally: 0 wins, 0 draws, 1 losses."  # one line: typed q ends its own line


def test_session_eof_ends_cleanly() -> None:
    script = _session([], seat=0)
    assert script.printed[-2:] == ["", "Bye. Tally: 0 wins, 0 draws, 0 losses."]  # EOF left the prompt's line open


def test_a_pasted_page_is_not_echoed_back_whole() -> None:
    _, script = _play("tic_tac_toe", FirstLegalBot(), 0, ["9" * 5000, "x" * 5000, "0", "3", "6"])
    refusals = [line for line in script.printed if line.startswith("Not a legal move")]
    assert len(refusals) == 2 and all(len(line) < 150 for line in refusals)  # were 5,000 characters each
    assert "(5,000 characters)" in refusals[0]


def test_session_builds_the_bot_before_asking_anything() -> None:
    # A setting the bot refuses (as_bot's ConfigError for --mcts -1) ends the session before the seat is asked.
    def refuse(seat: int) -> pyspiel.Bot:
        raise ConfigError("mcts_simulations=-1 is not valid")

    script = Script(["1", "4"])
    with pytest.raises(ConfigError):
        play_session(pyspiel.load_game("tic_tac_toe"), refuse, None, script.input, script.print)
    assert script.prompts == [] and script.printed == []  # the seat was asked first, then the error came
    # Built for the second seat before the question; the person takes the second seat, so it is built again.
    seats: list[int] = []

    def factory(seat: int) -> pyspiel.Bot:
        seats.append(seat)
        return FirstLegalBot()

    script = Script(["2", "4", "8", "n"])
    play_session(pyspiel.load_game("tic_tac_toe"), factory, None, script.input, script.print)
    assert seats == [1, 0] and "You lose." in script.printed


@pytest.mark.parametrize("seat", [2, -1, True, "1"])
def test_session_refuses_a_seat_that_is_not_0_or_1(seat: object) -> None:
    script = Script([])
    game = pyspiel.load_game("tic_tac_toe")
    with pytest.raises(ConfigError, match=r"human_player=.* is not valid: use 0"):  # was a ValueError, or a game
        play_session(game, lambda _: FirstLegalBot(), seat, script.input, script.print)  # type: ignore[arg-type]
    assert script.printed == []


def test_ctrl_c_ends_the_session_with_the_tally_and_is_raised_again() -> None:
    def ctrl_c(prompt: str) -> str:
        raise KeyboardInterrupt

    printed: list[str] = []
    with pytest.raises(KeyboardInterrupt) as stopped:  # was swallowed: the program exited 0 after a Ctrl-C
        play_session(pyspiel.load_game("tic_tac_toe"), lambda _: FirstLegalBot(), 0, ctrl_c, printed.append)
    assert printed[-2:] == ["", "Bye. Tally: 0 wins, 0 draws, 0 losses."]
    assert getattr(stopped.value, "reported", False)  # the command line adds no line of its own
