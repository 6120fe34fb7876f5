"""The command-line reference page, docs/reference/cli.md, generated from the parser `deepq` itself uses.

    python -m deepq.cli_reference > docs/reference/cli.md      # or: make docs-reference

Every `deepq train` flag comes from a Config field (deepq/cli_args.py): its group is the one the field is tagged
with (deepq/config.py), its text the field's docstring, its default Config's. The other commands' options, and the
presets table (deepq.presets.describe_presets), are read the same way, so the page cannot say what the
command line does not do. tests/test_docs.py fails when the committed page differs from this output.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from typing import Any

from deepq import cli_args
from deepq.cli import build_parser
from deepq.cli_args import _field_docs, _show
from deepq.config import TAGS, Config, groups
from deepq.presets import PRESETS, describe_presets

COMMAND = "python -m deepq.cli_reference > docs/reference/cli.md"
TABLE = '<div class="reference-table" markdown>'  # docs/stylesheets/extra.css keeps names in it on one line


def _md(text: str) -> str:
    """Plain text made safe for a Markdown table cell: `<game>` stays visible, `*` and `|` stay characters.
    Text inside backticks is left alone."""
    parts = re.split(r"(`[^`]*`)", text)
    for i in range(0, len(parts), 2):
        parts[i] = (parts[i].replace("\\", "\\\\").replace("*", "\\*").replace("|", "\\|")
                    .replace("<", "&lt;").replace(">", "&gt;"))
    return "".join(p.replace("|", "\\|") if p.startswith("`") else p for p in parts)


def _code(value: str) -> str:
    return f"`{value}`" if value else "`''`"


def _kind(action: argparse.Action, field: dataclasses.Field[Any] | None) -> str:
    """What the option takes, in the words a user types."""
    if action.nargs == 0:
        return "switch"
    if action.choices:
        return " or ".join(f"`{c}`" for c in action.choices)
    if action.type is cli_args._parse_bool:
        return "`true`/`false`"
    if action.type is cli_args._optional_float:
        return "number, or `none`"
    if action.type is cli_args.integer:
        return "integers, space-separated" if action.nargs == "+" else "integer"
    if action.type is cli_args.number:
        return "number"
    if field is not None and field.name == "env":
        return "env id"
    check = TAGS[field.name].check if field is not None else None
    if check is not None and check.options:  # a text field with fixed choices, as validate() checks them
        return " or ".join(f"`{c}`" for c in check.options)
    return "text"


def _default(action: argparse.Action, field: dataclasses.Field[Any] | None) -> str:
    if field is not None:
        return _code(_show(getattr(Config(), field.name)))
    if action.nargs == 0:
        return "off"
    if action.default not in (None, argparse.SUPPRESS):
        return _code(_show(action.default))
    said = re.search(r"\(default:? ([^()]*)\)$", action.help or "")  # '(default: the one the agent was trained on)'
    return _md(said.group(1)) if said else "—"


def _help(action: argparse.Action) -> str:
    """The option's help text without a trailing '(default ...)', which has its own column."""
    return _md(re.sub(r"\s*\(default[^()]*\)$", "", action.help or ""))


def _flag(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    return ", ".join(f"`{s}`" for s in action.option_strings)


def _table(actions: list[argparse.Action], fields: dict[str, dataclasses.Field[Any]]) -> list[str]:
    rows = [TABLE, "", "| option | takes | default | what it does |", "|---|---|---|---|"]
    for a in actions:
        f = fields.get(a.dest)
        anchor = f'<a id="{a.dest}"></a>' if f is not None else ""
        rows.append(f"| {anchor}{_flag(a)} | {_kind(a, f)} | {_default(a, f)} | {_help(a)} |")
    return [*rows, "", "</div>"]


def _visible(group: argparse._ArgumentGroup) -> list[argparse.Action]:
    return [a for a in group._group_actions if a.help != argparse.SUPPRESS]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _heading(section: str) -> tuple[str, str]:
    """A Config section comment as (a short heading, a sentence under it or ''):
    'MCTS (target='mcts' trains ...)' -> ('MCTS', "target='mcts' trains ..."); when the words after the short
    name are not one parenthesis, the sentence is the whole comment."""
    short = re.split(r" \(|: |; ", section, maxsplit=1)[0]
    rest = section[len(short):].strip()
    heading = short[0].upper() + short[1:]
    if not rest:
        return heading, ""
    if rest.startswith("(") and rest.endswith(")") and rest.count("(") == 1:
        return heading, rest[1:-1] + "."
    return heading, heading + section[len(short):] + "."


def _train(parser: argparse.ArgumentParser) -> list[str]:
    fields = {f.name: f for f in dataclasses.fields(Config)}
    config_sections = set(groups())
    shown = [g for g in parser._action_groups if _visible(g)]
    command_options = [a for g in shown if g.title not in config_sections for a in _visible(g)]
    out = [
        "## deepq train", "",
        "```text", (parser.usage or "").strip(), "```", "",
        "Trains an agent and writes a run directory. The first word names a preset (`deepq train cartpole`) or "
        "any Gymnasium id (`deepq train Acrobot-v1`); the preset, or `deepq.Config`'s defaults for an env id, "
        "gives every field, and each option after it overrides one: `deepq train cartpole --seed 3 --lr 5e-4`.", "",
        *_table(command_options, fields), "",
        "Every other option is a field of `deepq.Config`: `--lr 5e-4` on the command line is `lr=5e-4` in Python. "
        "The dash spelling works too (`--total-steps`). A `true`/`false` option given alone means `true` "
        "(`--double` is `--double true`). Integers accept `100000`, `100_000` and `1e5`. "
        "The defaults shown are `deepq.Config`'s; a preset changes some of them "
        "([what each preset sets](#what-each-preset-sets)), and `deepq train PRESET --help` prints that "
        "preset's values as the defaults. Units: *env steps* count transitions collected, summed over all "
        "`num_envs` environments; *emulator frames* are Atari frames before `frame_skip`.", "",
    ]
    for g in shown:
        if g.title not in config_sections:
            continue
        heading, rest = _heading(g.title or "")
        out += [f"### {heading}", ""]
        if rest:
            out += [_md(rest), ""]
        out += [*_table(_visible(g), fields), ""]
    python_only = [n for n in fields if n in cli_args._NOT_ON_CLI]
    docs = _field_docs()
    out += ["### Python only", "",
            "These fields hold code, so they have no flag and are not stored in a run's `config.json`; "
            "pass them to `deepq.Config` (and again to `deepq.load`).", "",
            TABLE, "", "| field | default | what it does |", "|---|---|---|"]
    for n in python_only:
        out.append(f'| <a id="{n}"></a>`{n}` | `{_show(getattr(Config(), n))}` | {_md(docs.get(n, ""))} |')
    return [*out, "", "</div>", ""]


def _usage(parser: argparse.ArgumentParser) -> str:
    """The usage line at a fixed width (argparse wraps at the terminal's, which would make the page vary)."""
    formatter = argparse.HelpFormatter(parser.prog, width=100)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="")
    return formatter.format_help().strip()


def _command(name: str, parser: argparse.ArgumentParser, summary: str) -> list[str]:
    """A command's section; the Config options a command shares with train (tune's) are train's table above."""
    own = [g for g in parser._action_groups if g.title not in groups()]
    actions = [a for g in own for a in _visible(g) if not isinstance(a, argparse._HelpAction)]
    out = [f"## deepq {name}", "", "```text", _usage(parser), "```", "",
           _md(parser.description or summary), ""]
    if actions:
        out += [*_table(actions, {}), ""]
    if len(own) < len(parser._action_groups):
        out += [f"Every [`deepq train` option](#deepq-train) is a `deepq {name}` option too.", ""]
    return out


def _presets() -> list[str]:
    rows = describe_presets()
    cols = list(rows[0])
    out = ["The table `deepq presets` prints:", "", TABLE, "",
           "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [_code(str(v)) if c in ("preset", "env") else "—" if v in (None, "-")
                 else _md(str(v).replace(",", ", ")) for c, v in r.items()]
        out.append("| " + " | ".join(cells) + " |")
    base = Config()
    out += ["", "</div>", "", "### What each preset sets", "",
            "Each preset is `deepq.Config` with these fields changed; `deepq train cartpole` is the same run as "
            "`deepq train CartPole-v1` followed by the cartpole line's options.", "", TABLE, ""]
    for name, cfg in PRESETS.items():
        changed = [f"`--{f.name} {_show(getattr(cfg, f.name))}`" for f in dataclasses.fields(Config)
                   if f.name not in cli_args._NOT_ON_CLI and getattr(cfg, f.name) != getattr(base, f.name)]
        out.append(f"- **`{name}`**: {' '.join(changed)}")
    return [*out, "", "</div>", ""]


def render() -> str:
    """The whole page, as Markdown."""
    parser = build_parser()
    commands = _subparsers(parser)
    out = [
        "# Command line reference", "",
        f"<!-- Generated by `{COMMAND}` (make docs-reference). Do not edit: tests/test_docs.py fails when "
        "this file differs from the generator's output. -->", "",
        "The `deepq` command has eight subcommands. `deepq --help` and `deepq COMMAND --help` print the same "
        "information in the terminal. A mistake on the command line is one line on stderr, "
        "`deepq: error: ...`, and exit code 2.", "",
        TABLE, "", "| command | what it does |", "|---|---|",
    ]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out += [f"| [`deepq {c.dest}`](#deepq-{c.dest}) | {_md(c.help or '')} |" for c in sub._choices_actions]
    out += ["", "</div>", "", *_train(commands["train"])]
    summaries = {c.dest: (c.help or "")[:1].upper() + (c.help or "")[1:] + "." for c in sub._choices_actions}
    for name in ("eval", "play", "export"):
        out += _command(name, commands[name], summaries[name])
    out += _command("presets", commands["presets"], summaries["presets"]) + _presets()
    for name in ("sweep", "compare", "tune"):  # the research tools (deepq/research)
        out += _command(name, commands[name], summaries[name])
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
