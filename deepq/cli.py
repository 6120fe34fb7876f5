"""The `deepq` command. `deepq train`'s options are generated from the Config dataclass."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import itertools
import sys
from pathlib import Path
from typing import Any

from deepq.config import Config
from deepq.errors import ConfigError, DeepQError
from deepq.presets import PRESETS, describe_presets, preset

# Fields that are Python-only (code) or given positionally.
_NOT_ON_CLI = {"env", "network"}


def _field_docs() -> dict[str, str]:
    """Each Config field's docstring (the string literal under it), for --help."""
    import inspect

    tree = ast.parse(inspect.getsource(Config))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, nxt in itertools.pairwise(body):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr) \
                and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
            docs[node.target.id] = nxt.value.value
    return docs


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
    return float(text)


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    docs = _field_docs()
    group = parser.add_argument_group("config fields (override the preset; see `deepq presets`)")
    for f in dataclasses.fields(Config):
        if f.name in _NOT_ON_CLI:
            continue
        kind = str(f.type)
        kw: dict[str, Any] = {"default": argparse.SUPPRESS, "help": f"{docs.get(f.name, '')} (default {f.default})"}
        if kind == "bool":
            kw.update(type=_parse_bool, nargs="?", const=True, metavar="BOOL")
        elif kind.startswith("tuple[int"):
            kw.update(type=int, nargs="+", metavar="N")
        elif kind == "float | None":
            kw.update(type=_optional_float, metavar="X")
        elif kind in ("int", "float"):
            kw.update(type=int if kind == "int" else float, metavar=kind.upper())
        else:
            kw.update(type=str, metavar="TEXT")
        group.add_argument(f"--{f.name}", f"--{f.name.replace('_', '-')}", dest=f.name, **kw)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepq", description="Deep Q-Learning for Gymnasium environments.")
    sub = parser.add_subparsers(dest="command", required=True)

    tr = sub.add_parser("train", help="train a preset or any Gymnasium env id",
                        description="Train a DQN agent. Example: deepq train cartpole --seed 3")
    tr.add_argument("preset_or_env", nargs="?", metavar="PRESET_OR_ENV_ID",
                    help=f"a preset ({', '.join(PRESETS)}) or a Gymnasium id such as CartPole-v1")
    tr.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    _add_config_options(tr)

    ev = sub.add_parser("eval", help="evaluate a saved agent", description="Evaluate a saved agent.")
    ev.add_argument("path", metavar="PATH", help="an agent.pt file or a run directory")
    ev.add_argument("--episodes", type=int, default=10, help="episodes to run (default 10)")
    ev.add_argument("--env", help="environment id (default: the one the agent was trained on)")
    ev.add_argument("--eps", type=float, default=None, help="epsilon while evaluating (default: eval_eps)")
    ev.add_argument("--seed", type=int, default=None, help="seed for the evaluation episodes")
    ev.add_argument("--video", action="store_true", help="record the first episode to PATH's folder/videos")
    ev.add_argument("--opponent", help="two-player games: 'random', 'perfect' (minimax, small games) or 'mcts:N'; "
                    "--episodes games are played from each seat")

    pl = sub.add_parser("play", help="play a two-player game against a trained agent in the terminal",
                        description="Play against a trained agent. Example: deepq play runs/tictactoe-0-...")
    pl.add_argument("path", metavar="RUN_OR_AGENT", help="a run directory or an agent.pt file (OpenSpiel games)")
    pl.add_argument("--seat", type=int, choices=(1, 2), help="1: you move first, 2: the agent does (default: ask)")
    pl.add_argument("--temperature", type=float, default=0.0,
                    help="0: the agent plays its greedy move; > 0: it samples softmax(Q / temperature)")
    pl.add_argument("--mcts", type=int, default=0, metavar="N",
                    help="the agent searches N simulations per move (Q-guided MCTS) instead of playing its Q directly")

    sub.add_parser("presets", help="list presets with their key settings")
    return parser


def config_from_args(args: argparse.Namespace) -> tuple[Config, Path | None]:
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if hasattr(args, f.name)}
    if args.resume:
        from deepq.runlog import read_config

        run_dir = Path(args.resume)
        if not (run_dir / "config.json").is_file():
            raise ConfigError(f"--resume {run_dir}: no config.json there; pass a run directory made by deepq train")
        saved = read_config(run_dir)
        if str(saved.get("env", "")).startswith("<callable"):
            raise ConfigError(f"{run_dir} was trained on an env factory from Python; resume it with "
                              "deepq.train(cfg, resume=run_dir)")
        return Config.from_dict(saved).replace(**overrides), run_dir
    if not args.preset_or_env:
        raise ConfigError("deepq train needs a preset or env id (e.g. `deepq train cartpole`), or --resume RUN_DIR")
    name = args.preset_or_env
    if name.lower() in PRESETS:
        return preset(name, **overrides), None
    from deepq.games.adapters import is_game, make_game

    if is_game(name):  # 'openspiel:<game>' or 'pettingzoo:<game>': an unknown or unsupported game fails here
        make_game(name)
        return Config(env=name, name=name.partition(":")[2].split("(")[0]).replace(**overrides), None
    import difflib

    import gymnasium as gym

    from deepq.envs import make_env

    looks_like_env = bool(difflib.get_close_matches(name, list(gym.registry), n=1))
    if name not in gym.registry and not looks_like_env \
            and (close := difflib.get_close_matches(name.lower(), PRESETS, n=1)):
        raise ConfigError(f"unknown preset or environment {name!r}; did you mean the preset {close[0]!r}? "
                          f"Presets: {', '.join(PRESETS)}; or pass a Gymnasium id such as CartPole-v1")
    make_env(name).close()  # an unknown id fails here, with suggestions
    return Config(env=name).replace(**overrides), None


def _cmd_train(args: argparse.Namespace) -> int:
    from deepq.evaluate import evaluate
    from deepq.train import train

    cfg, resume = config_from_args(args)
    agent = train(cfg, resume=resume)
    result = evaluate(agent, episodes=cfg.eval_episodes)
    print(f"final evaluation: {result}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from deepq.agent import load
    from deepq.evaluate import evaluate

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
    from deepq.agent import load
    from deepq.games.bot import as_bot, game_of
    from deepq.games.play import play_session

    agent = load(Path(args.path))
    game = game_of(agent)
    play_session(game.game, lambda player: as_bot(agent, temperature=args.temperature, mcts_simulations=args.mcts),
                 None if args.seat is None else args.seat - 1)
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
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            return _cmd_train(args)
        if args.command == "eval":
            return _cmd_eval(args)
        if args.command == "play":
            return _cmd_play(args)
        return _cmd_presets()
    except DeepQError as e:
        print(f"deepq: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
