"""The `deepq` command. `deepq train`'s options are generated from the Config dataclass.

Every mistake on the command line is one line on stderr, `deepq: error: ...`, and exit code 2:
argparse's own errors too (cli_args.Parser), never a usage dump or a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

from deepq.cli_args import HelpFormatter, Parser, TrainHelp, add_config_options, integer, number, unknown_option
from deepq.config import Config
from deepq.errors import ConfigError, DeepQError
from deepq.files import read_small_text
from deepq.presets import PRESETS, describe_presets, preset
from deepq.research import compare, sweep, tune
from deepq.signals import Interrupts
from deepq.signals import name as signal_name

RESEARCH = {"sweep": sweep, "compare": compare, "tune": tune}  # each module adds its parser and runs its command


def build_parser() -> Parser:
    parser = Parser(prog="deepq", description="Deep Q-Learning for Gymnasium environments.", allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train a preset or any Gymnasium env id", allow_abbrev=False, add_help=False,
                        usage="deepq train [PRESET_OR_ENV_ID] [--config FILE] [--resume RUN_DIR] [--overwrite] "
                              "[--FIELD VALUE ...]",
                        description="Train a DQN agent. Example: deepq train cartpole --seed 3",
                        formatter_class=HelpFormatter)
    tr.add_argument("-h", "--help", action=TrainHelp, resolve=_base_config,
                    help="show this help; after a preset, with its values as the defaults")
    tr.add_argument("preset_or_env", nargs="?", metavar="PRESET_OR_ENV_ID",
                    help="a preset (`deepq presets` lists them) or a Gymnasium id such as CartPole-v1")
    tr.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    tr.add_argument("--config", metavar="FILE", help="start from a JSON object of Config fields (a run's config.json, "
                    "deepq tune's best.json) instead of a preset; flags override its fields")
    tr.add_argument("--overwrite", action="store_true",
                    help="a fresh run into a --run_dir that holds a run deletes that run's files (without it: refused)")
    add_config_options(tr)

    ev = sub.add_parser("eval", help="evaluate a saved agent", description="Evaluate a saved agent.",
                        allow_abbrev=False)
    ev.add_argument("path", metavar="PATH", help="an agent.pt file or a run directory")
    ev.add_argument("--episodes", type=integer, default=10, help="episodes to run (default 10)")
    ev.add_argument("--env", help="environment id (default: the one the agent was trained on)")
    ev.add_argument("--eps", type=number, default=None, help="epsilon while evaluating (default: eval_eps)")
    ev.add_argument("--seed", type=integer, default=None, help="seed for the evaluation episodes")
    ev.add_argument("--video", action="store_true", help="record the first episode to PATH's folder/videos")
    ev.add_argument("--opponent", help="two-player games: 'random', 'perfect' (minimax, small games) or 'mcts:N'; "
                    "--episodes games are played from each seat")

    pl = sub.add_parser("play", help="play a two-player game against a trained agent in the terminal",
                        description="Play against a trained agent. Example: deepq play runs/tictactoe-0-...",
                        allow_abbrev=False)
    pl.add_argument("path", metavar="RUN_OR_AGENT", help="a run directory or an agent.pt file (OpenSpiel games)")
    pl.add_argument("--seat", type=integer, choices=(1, 2), help="1: you move first, 2: the agent does (default: ask)")
    pl.add_argument("--temperature", type=number, default=0.0,
                    help="0: the agent plays its greedy move; > 0: it samples softmax(Q / temperature)")
    pl.add_argument("--mcts", type=integer, default=0, metavar="N",
                    help="the agent searches N simulations per move (Q-guided MCTS) instead of playing its Q directly")

    ex = sub.add_parser("export", help="write a trained Q-network as an ONNX file (onnxruntime, no deepq needed)",
                        description="Export a saved agent's Q-network: a float32 batch of observations in, Q values "
                                    "out. Example: deepq export runs/cartpole-0-... --out cartpole.onnx",
                        allow_abbrev=False)
    ex.add_argument("path", metavar="RUN_OR_AGENT", help="a run directory or an agent.pt file")
    ex.add_argument("--format", choices=("onnx",), default="onnx", help="the file format (default onnx)")
    ex.add_argument("--out", metavar="PATH", help="the file to write (default: beside the agent, RUN/agent.onnx)")

    sub.add_parser("presets", help="list presets with their key settings", allow_abbrev=False)
    for module in RESEARCH.values():
        module.add_parser(sub)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line parsed; anything argparse cannot place is one `deepq: error:` line (SystemExit 2)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
        parser.error(unknown_option(extra, commands.get(args.command, parser)))
    return args


def _short(env_id: str) -> str:
    """A run-name slug for an env id: 'ALE/SpaceInvaders-v5' -> 'spaceinvaders', 'openspiel:connect_four' ->
    'connect_four'."""
    tail = re.split(r"[/:]", env_id)[-1].split("(")[0]
    return re.sub(r"(NoFrameskip)?-v\d+$", "", tail).lower()


def _base_config(name: str) -> tuple[Config, str]:
    """The Config a preset name or an env id trains with, and for a bare Atari or MinAtar id the preset whose
    settings it takes ('' otherwise). An unknown name is a ConfigError with the close presets and ids."""
    if name.lower() in PRESETS:
        return preset(name), ""
    from deepq.games.kind import GameKind
    from deepq.training.setup import env_kind, game_kind

    game = game_kind(name)
    if isinstance(game, GameKind):  # 'openspiel:<game>', 'pettingzoo:<game>': an unknown or unsupported game fails here
        game.make_game()
        return Config(env=name, name=_short(name)), ""
    import gymnasium as gym

    from deepq.envs.gym import make_env, register_namespace

    register_namespace(name)  # ale-py and MinAtar register their ids on import: before looking the id up
    looks_like_env = bool(difflib.get_close_matches(name, list(gym.registry), n=1))
    if name not in gym.registry and not looks_like_env \
            and (close := difflib.get_close_matches(name.lower(), PRESETS, n=1)):
        raise ConfigError(f"unknown preset or environment {name!r}; did you mean the preset {close[0]!r}? "
                          f"Presets: {', '.join(PRESETS)}; or pass a Gymnasium id such as CartPole-v1")
    make_env(name).close()  # an unknown id fails here, with suggestions
    family, kind = None, env_kind(Config(env=name))
    if kind.name == "atari":
        family, run_name = "atari", _short(name)
    elif kind.name == "minatar":
        family = f"minatar-{_short(name)}" if f"minatar-{_short(name)}" in PRESETS else "minatar-breakout"
        run_name = f"minatar-{_short(name)}"
    if family is None:
        return Config(env=name, name=name.replace("/", "-") if "/" in name else ""), ""
    return PRESETS[family].replace(env=name, name=run_name), family


def _read_saved(path: Path) -> dict[str, Any]:
    """A JSON file of Config fields (a run's config.json, or --config FILE) as a dict without the run id, or a
    ConfigError naming the file, what is wrong and what to do."""
    redo = ("repair it (one JSON object of Config fields, as deepq train wrote it) or start a new run; "
            "`deepq train --help` lists the fields")
    try:
        saved = json.loads(read_small_text(path))
    except json.JSONDecodeError as e:
        what = "is empty" if not e.doc.strip() else f"is not valid JSON (line {e.lineno} column {e.colno}: {e.msg})"
        raise ConfigError(f"{path} {what}; {redo}") from None
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ConfigError(f"{path} cannot be read ({why}); {redo}") from None
    if not isinstance(saved, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(saved), "a number")
        raise ConfigError(f"{path} holds {kind}, not a JSON object of Config fields; {redo}")
    saved.pop("run_id", None)
    known = [f.name for f in dataclasses.fields(Config)]
    unknown = sorted(set(saved) - set(known))
    if unknown:
        close = {u: difflib.get_close_matches(u, known, n=1) for u in unknown}
        names = ", ".join(f"{u!r}" + (f" (did you mean {c[0]!r}?)" if c else "") for u, c in close.items())
        raise ConfigError(f"{path} has unknown field(s) {names}; {redo}")
    if str(saved.get("env", "")).startswith("<callable"):
        raise ConfigError(f"{path} was written for an env factory from Python; train it with deepq.train(cfg) "
                          "(resume: deepq.train(cfg, resume=run_dir))")
    return saved


def _checked_from(saved: dict[str, Any], overrides: dict[str, Any], path: Path) -> Config:
    """Config.from_dict(saved) with the flags' overrides, checked; a bad value the flags did not set names the
    file."""
    from deepq.training.setup import check

    try:
        return check(Config.from_dict(saved).replace(**overrides))  # the fields, then the env kind's (games)
    except TypeError as e:  # e.g. hidden_sizes: 5
        raise ConfigError(f"{path}: a field has a value of the wrong type ({e}); fix the file") from None
    except ConfigError as e:
        field = re.match(r"(\w+)=", str(e))
        if field and field.group(1) in overrides:
            raise
        raise ConfigError(f"{path}: {e}; fix the file, or set the field with its flag") from None


def config_from_args(args: argparse.Namespace) -> tuple[Config, Path | None, str]:
    """(the Config to train, the run directory to resume or None, a line to tell the user or '')."""
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if hasattr(args, f.name)}
    if args.resume:
        if args.config:
            raise ConfigError("--resume continues a run with its own config.json; --config starts a new run: "
                              "give one of them")
        run_dir = Path(args.resume)
        if not (run_dir / "config.json").is_file():
            raise ConfigError(f"--resume {run_dir}: no config.json there; pass a run directory made by deepq train")
        return _checked_from(_read_saved(run_dir / "config.json"), overrides, run_dir / "config.json"), run_dir, ""
    if args.config:  # a saved config (flags override it)
        path = Path(args.config)
        saved = _read_saved(path)
        if args.preset_or_env:
            raise ConfigError(f"--config {path} holds the env ({saved.get('env', Config.env)}) and every setting; "
                              f"drop {args.preset_or_env!r}, or pass --env ID to train these settings on another env")
        saved.pop("run_dir", None)  # a new run: never the directory the file came from
        return _checked_from(saved, overrides, path), None, ""
    name = args.preset_or_env or overrides.get("env")
    if not name:
        raise ConfigError("deepq train needs a preset or env id (e.g. `deepq train cartpole`), or --resume RUN_DIR")
    cfg, family = _base_config(name)
    note = (f"{name} trains with the {family} preset's settings (run name {cfg.name!r}); change any with its "
            f"flag (e.g. --lr 5e-5), or name another preset: deepq train PRESET --env {name}") if family else ""
    env = overrides.pop("env", cfg.env)
    if env != cfg.env:  # --env: the preset's settings on another env
        if env.lower() in PRESETS:
            own = PRESETS[env.lower()].env
            raise ConfigError(f"--env {env}: that is a preset; --env takes an env id such as {own} "
                              f"(the {env.lower()} preset's), or train the preset: deepq train {env.lower()}")
        _base_config(env)  # an unknown id fails here, as it would alone
        cfg, note = cfg.replace(env=env, name=f"{cfg.run_name}-{_short(env)}"), ""
    return cfg.replace(**overrides), None, note


def _cmd_train(args: argparse.Namespace) -> int:
    from deepq.training.loop import train

    cfg, resume, note = config_from_args(args)
    if note:
        print(f"deepq: {note}", file=sys.stderr)
    agent = train(cfg, resume=resume, overwrite=args.overwrite)
    if not cfg.progress:  # with progress on, train() printed it
        print(f"final evaluation: {agent.final_evaluation}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from deepq.training.evaluate import evaluate
    from deepq.training.setup import load

    path = Path(args.path)
    agent = load(path)
    video_dir = ((path if path.is_dir() else path.parent) / "videos") if args.video else None
    result = evaluate(agent, env=args.env, episodes=args.episodes, eps=args.eps, seed=args.seed,
                      video_dir=video_dir, opponent=args.opponent)
    print(f"{result}")
    print("returns: " + " ".join(f"{r:g}" for r in result.returns))
    if video_dir is not None:
        print(f"video: {video_dir}")
    return 0


def _cmd_play(args: argparse.Namespace) -> int:
    from deepq.games.bot import as_bot, game_of
    from deepq.games.play import play_session
    from deepq.training.setup import load

    agent = load(Path(args.path))
    game = game_of(agent)
    play_session(game.game, lambda player: as_bot(agent, temperature=args.temperature, mcts_simulations=args.mcts),
                 None if args.seat is None else args.seat - 1)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from deepq.export import default_out, export_onnx
    from deepq.training.setup import load

    out = Path(args.out) if args.out else default_out(args.path, args.format)
    print(export_onnx(load(Path(args.path)), out))
    return 0


def _cmd_presets() -> int:
    rows = describe_presets()
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in cols))
    print("\nany field can be overridden: deepq train cartpole --seed 3 --lr 5e-4")
    return 0


def main(argv: list[str] | None = None) -> int:
    # SIGINT, SIGTERM and SIGHUP raise at every stage (training defers them to a checkpoint): cleanup runs, and
    # the exit is one line and 128 + the signal's number, as a shell's
    with Interrupts():
        try:
            args = parse_args(argv)
            if args.command == "train":
                return _cmd_train(args)
            if args.command == "eval":
                return _cmd_eval(args)
            if args.command == "play":
                return _cmd_play(args)
            if args.command == "export":
                return _cmd_export(args)
            if args.command in RESEARCH:
                return RESEARCH[args.command].run(args)
            return _cmd_presets()
        except DeepQError as e:
            print(f"deepq: error: {e}", file=sys.stderr)
            return 2
        except BrokenPipeError:  # stdout closed by its reader (`deepq eval RUN | head -1`): stop quietly, as cat does
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the flush at exit is quiet too
            return 128 + signal.SIGPIPE
        except KeyboardInterrupt as e:  # RunInterrupted, or Python's own for a Ctrl-C
            signum = int(getattr(e, "signum", signal.SIGINT))
            if not getattr(e, "reported", False):  # the stage that stopped said nothing of what it kept
                print(f"deepq: stopped by {signal_name(signum)}", file=sys.stderr, flush=True)
            return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
