"""The argparse side of the `deepq` command: one-line errors, number parsing, and options made from Config.

- Parser: argparse whose errors are one line, `deepq: error: --lr: expected a number, got 'abc'`, exit 2;
  `unknown_option` names an unknown option's close names (and the Stable-Baselines3 / CleanRL names).
- add_config_options: one --field per Config field, in the group its tag names (deepq/config.py), with its
  docstring as help; the dash spelling (--total-steps) is accepted too but not listed.
- TrainHelp: `deepq train PRESET --help` shows that preset's values as the defaults.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import inspect
import itertools
import re
import textwrap
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn

from deepq.config import FIELD_ALIASES, TAGS, Config, groups
from deepq.errors import DeepQError
from deepq.presets import PRESETS

COMMANDS = ("train", "eval", "play", "export", "presets", "sweep", "compare", "tune")
_NOT_ON_CLI = {"network"}  # Python-only fields (code)



class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, `deepq: error: --lr: expected a number, got 'abc'`, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"deepq: error: {_plain(message)}\n")


def _plain(message: str) -> str:
    """argparse's error messages in deepq's words."""
    if message.startswith("argument command:"):
        got = re.search(r"invalid choice: '([^']*)'", message)
        close = difflib.get_close_matches(got.group(1), COMMANDS, n=1) if got else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown command {got.group(1) if got else ''!r}{hint}; the commands are {', '.join(COMMANDS)}"
    if "arguments are required: command" in message:
        return f"give a command: {', '.join(COMMANDS)} (`deepq train cartpole` trains; `deepq --help`)"
    message = re.sub(r"^argument ([^:]+): ", lambda m: m.group(1).split("/")[-1] + ": ", message)
    return message.replace("expected one argument", "needs a value").replace(
        "expected at least one argument", "needs at least one value")


def unknown_option(extra: list[str], parser: argparse.ArgumentParser) -> str:
    """The message for what argparse could not place: an unknown option, with the close names, or a stray word."""
    flags = [s[2:] for a in parser._actions if a.help != argparse.SUPPRESS
             for s in a.option_strings if s.startswith("--")]
    option = next((tok for tok in extra if tok.startswith("-") and not re.fullmatch(r"-[\d.].*", tok)), None)
    if option is None:
        return f"unexpected argument {extra[0]!r}; `{parser.prog} --help` lists what it takes"
    given = option.split("=")[0]
    key = given.lstrip("-").replace("-", "_")
    target, note = FIELD_ALIASES.get(key, ("", ""))
    if target not in flags:
        close = difflib.get_close_matches(key, flags, n=1)
        target, note = (close[0], "") if close else ("", "")
    hint = f"; did you mean --{target}?{note}" if target else ""
    return f"unknown option {given}{hint} (`{parser.prog} --help` lists the options)"


def integer(text: str) -> int:
    """An integer; integer-valued scientific notation and underscores too: 100000, 100_000, 1e5, 2.5e4."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value != value.to_integral_value():
        raise argparse.ArgumentTypeError(f"expected an integer (such as 3, 100_000 or 1e5), got {text!r}")
    return int(value)


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number (such as 0.001 or 1e-3), got {text!r}") from None


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _optional_float(text: str) -> float | None:
    if text.lower() in ("none", "null", ""):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or none, got {text!r}") from None


def _field_docs() -> dict[str, str]:
    """Each Config field's docstring, on one line: the string literal under the field, read from the source."""
    body = ast.parse(textwrap.dedent(inspect.getsource(Config))).body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, nxt in itertools.pairwise(body):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr) \
                and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _show(value: Any) -> str:
    """A default as it is typed on the command line."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple | list):
        return " ".join(map(str, value))
    return "none" if value is None else repr(value) if value == "" else str(value)


def add_config_options(parser: argparse.ArgumentParser) -> None:
    docs = _field_docs()
    sections = {group: parser.add_argument_group(group) for group in groups()}  # in the groups' order
    for f in dataclasses.fields(Config):
        if f.name in _NOT_ON_CLI:
            continue
        kind = str(f.type)
        kw: dict[str, Any] = {"default": argparse.SUPPRESS, "help": docs.get(f.name, "")}
        if kind == "bool":
            kw.update(type=_parse_bool, nargs="?", const=True, metavar="BOOL")
        elif kind.startswith("tuple[int"):
            kw.update(type=integer, nargs="+", metavar="N")
        elif kind == "float | None":
            kw.update(type=_optional_float, metavar="X")
        elif kind in ("int", "float"):
            kw.update(type=integer if kind == "int" else number, metavar=kind.upper())
        else:
            kw.update(type=str, metavar="ID" if f.name == "env" else "TEXT")
        section = sections[TAGS[f.name].group]
        section.add_argument(f"--{f.name}", dest=f.name, **kw)
        if "_" in f.name:  # the dash spelling is accepted too, and not listed twice
            section.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, **{**kw, "help": argparse.SUPPRESS})


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Option help in a column 26 characters in; the description keeps its own line breaks."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=26)


class TrainHelp(argparse.Action):
    """--help for `deepq train`: the defaults shown are those of the preset named before it (or Config's).

    `resolve` maps a preset name or env id to (its Config, the preset a bare Atari/MinAtar id trains with).
    """

    def __init__(self, option_strings: list[str], resolve: Callable[[str], tuple[Config, str]],
                 dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, **kwargs)
        self.resolve = resolve

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        name = getattr(namespace, "preset_or_env", None)
        base, whose = Config(), "deepq.Config's"
        if name:
            try:
                base, family = self.resolve(name)
                whose = f"the {name.lower()} preset's" if name.lower() in PRESETS else \
                    f"the {family} preset's, which {name} trains with" if family else f"Config's, with env {name}"
            except DeepQError as e:  # help for a name that cannot train would show values it will never use
                parser.error(str(e))
        fields = {f.name for f in dataclasses.fields(Config)}
        for action in parser._actions:
            if action.dest in fields and action.help not in (None, argparse.SUPPRESS):
                action.help = f"{action.help} (default {_show(getattr(base, action.dest))})"
        parser.description = f"{parser.description}\nDefaults shown are {whose}."
        parser.print_help()
        parser.exit()


