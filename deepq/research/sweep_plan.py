"""What a `deepq sweep` command asks for: its settings (every combination of the --set lists), common fields and
seeds, each setting's Config checked as `deepq train` checks it, and sweep.json (written first, extended or
refused on a rerun)."""

from __future__ import annotations

import argparse
import difflib
import itertools
import json
import math
import re
from pathlib import Path
from typing import Any, NoReturn

from deepq.cli_args import add_config_options
from deepq.config import FIELD_ALIASES, GAMES, PIXELS, TAGS, Config
from deepq.errors import ConfigError
from deepq.files import read_small_text
from deepq.presets import PRESETS, preset
from deepq.research.checks import MAX_SEED

RESERVED = {"seed": "the seeds are --seeds N and --first-seed S",  # the fields the sweep sets itself
            "run_dir": "each run's directory is SWEEP/runs/<label>/seed-<S>"}
MAX_RUNS = 10_000  # each run is a process of its own: a few seconds to start (torch) before it trains a step
NAME_MAX = 255  # bytes in one file name (ext4, XFS, Btrfs, APFS): a setting's label is one
PROCESS_BYTES = 350_000_000  # a `deepq train cartpole` process peaks at 355 MB (torch, gymnasium), its replay aside
ENV_FIELDS = {name for name, t in TAGS.items() if t.group in (PIXELS, GAMES)} | {"env"}  # what makes the env


def plan(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Config], int]:
    """sweep.json's content for this command, each setting's Config, checked as `deepq train` checks it (its env
    made once), and the bytes of memory the largest of its runs needs."""
    from deepq.training.setup import check

    parser = FieldParser(add_help=False, allow_abbrev=False)
    add_config_options(parser)
    given = [parsed("--common", c, parser) for c in args.common]
    given += [("total_steps", [args.total_steps])] if args.total_steps is not None else []
    swept = [parsed("--set", s, parser) for s in args.sets]
    every = [field for field, _ in given + swept]
    if twice := [f for f in every if every.count(f) > 1]:
        raise ConfigError(f"{twice[0]} is given twice (in --set, --common or --total_steps); give each field once")
    common = {field: values[0] for field, values in given}
    names = [field for field, _ in swept]
    if (runs := math.prod(len(values) for _, values in swept) * args.seeds) > MAX_RUNS:  # before they are made
        raise ConfigError(f"--seeds {args.seeds:,} x {runs // args.seeds:,} setting(s) of --set make {runs:,} runs; "
                          f"a sweep holds at most {MAX_RUNS:,} (each run is a process, seconds to start before it "
                          "trains): sweep fewer seeds or values, or split them over several --dir")
    combos = [dict(zip(names, c, strict=True)) for c in itertools.product(*(values for _, values in swept))]
    settings: list[dict[str, Any]] = [{"label": label(o), "overrides": o} for o in combos if o] or \
        [{"label": "default", "overrides": {}}]
    if args.target.endswith(".json"):  # a saved config (deepq tune's best.json, a run's config.json)
        args.target = str(Path(args.target).absolute())  # the runs may start in another directory
        base = config_file(Path(args.target))
    else:
        base = preset(args.target) if args.target.lower() in PRESETS else Config(env=args.target)
    configs: dict[str, Config] = {}
    needs: list[int] = []
    envs: dict[str, tuple[Any, ...]] = {}  # each env made once: one that cannot be made would fail all its runs
    for s in settings:
        try:
            if problem := folder_problem(s["label"]):
                raise ConfigError(f"{problem}; sweep that field with shorter values, or set it with --common")
            cfg = configs[s["label"]] = check(base.replace(**common, **s["overrides"], seed=args.first_seed))
            key = json.dumps({k: v for k, v in cfg.to_dict().items() if k in ENV_FIELDS}, sort_keys=True)
            if key not in envs:
                envs[key] = env_of(cfg)
            needs.append(run_bytes(cfg, envs[key]))
        except ConfigError as e:
            shown = s["label"] if len(s["label"]) <= 80 else s["label"][:77] + "..."
            raise ConfigError(f"setting {shown}: {e}" if s["overrides"] else str(e)) from None
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    spec = {"target": args.target, "seeds": seeds, "settings": settings, "common": common, "version": 1}
    return spec, configs, max(needs)


def env_of(cfg: Config) -> tuple[Any, ...]:
    """(observation shape, its dtype, the number of actions, its env kind) of cfg's env, made with one copy."""
    from deepq.training.setup import env_kind

    kind = env_kind(cfg)
    env = kind.make_vec_env(cfg.replace(num_envs=1))
    env.close()
    return env.obs_shape, env.obs_dtype, env.n_actions, kind


def run_bytes(cfg: Config, env: tuple[Any, ...]) -> int:
    """The memory one run of cfg needs: its process, and what its settings allocate (deepq.memory)."""
    from deepq.memory import estimate

    shape, dtype, actions, kind = env
    needs = estimate(cfg, shape, dtype, actions, kind.arch(cfg, shape), game=kind.two_player)
    return PROCESS_BYTES + sum(n.nbytes for n in needs)


def config_file(path: Path) -> Config:
    """The Config in a JSON file of Config fields, as `deepq train --config FILE` reads it (its run_dir dropped)."""
    try:
        fields = json.loads(read_small_text(path))
        fields.pop("run_id", None)
        fields.pop("run_dir", None)
        return Config.from_dict(fields).validate()  # its seed too, though the sweep sets its own: a file train takes
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise ConfigError(f"{path}: not a JSON object of Config fields ({e}); pass a file that `deepq train "
                          "--config FILE` takes, such as deepq tune's best.json") from None


class FieldParser(argparse.ArgumentParser):
    """`deepq train`'s options for the Config fields; a bad value is a ConfigError instead of an exit."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(re.sub(r"^argument [^:]+: ", "", message))


def parsed(flag: str, item: str, parser: FieldParser) -> tuple[str, list[Any]]:
    """(field, values) of --set FIELD=V1,V2 or --common FIELD=VALUE, parsed as `deepq train --FIELD VALUE` does."""
    field, eq, text = item.partition("=")
    field, many = field.strip().replace("-", "_"), flag == "--set"
    words = re.split(r",(?![^()]*\))", text) if many else [text]  # a comma in parentheses belongs to the value
    if not eq or not field or not all(w.strip() for w in words):
        example = "--set lr=1e-3,5e-4" if many else "--common eval_interval=500"
        raise ConfigError(f"{flag} {item!r}: write FIELD={'V1,V2' if many else 'VALUE'}, e.g. {example}")
    if field in RESERVED:
        raise ConfigError(f"{flag} {item!r}: {field} is set by the sweep ({RESERVED[field]})")
    known = {a.dest for a in parser._actions}
    if field not in known:
        close = [FIELD_ALIASES[field][0]] if field in FIELD_ALIASES else difflib.get_close_matches(field, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{flag} {item!r}: {field!r} is not a Config field{hint}; `deepq train --help` lists them")
    values = []
    for word in words:
        inner = word.strip()
        if inner.startswith("(") and inner.endswith(")"):  # a tuple field's value: (64,64) is --hidden_sizes 64 64
            inner = inner[1:-1].replace(",", " ")
        try:
            values.append(getattr(parser.parse_args([f"--{field}", *inner.split()]), field))
        except ConfigError as e:
            raise ConfigError(f"{flag} {item!r}: {e}") from None
    if len({label({field: v}) for v in values}) < len(values):
        raise ConfigError(f"{flag} {item!r}: a value is given twice; give each value once")
    return field, values


def cli_words(value: Any) -> list[str]:
    """A field's value as `deepq train` takes it after --FIELD."""
    if isinstance(value, tuple | list):
        return [str(v) for v in value]
    return [str(value).lower() if isinstance(value, bool) else "none" if value is None else str(value)]


def label(overrides: dict[str, Any]) -> str:
    """A setting's name and folder: field=value[,field=value], one path component."""
    return ",".join(f"{k}={'_'.join(cli_words(v))}" for k, v in overrides.items()).replace("/", "_")


def extend(path: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """The sweep to run, written to `path` before any run: `spec`, or the sweep there extended by spec's new ones."""
    from deepq.run.log import atomic_write_text

    spec = json.loads(json.dumps(spec))  # as the file holds it (tuples as lists), to compare with the old one
    if path.exists():
        try:
            old = json.loads(read_small_text(path))
        except (OSError, ValueError) as e:
            raise ConfigError(f"{path} cannot be read ({e}); sweep into another --dir") from None
        if problem := spec_problem(old):
            raise ConfigError(f"{path} is not a sweep.json written by deepq sweep ({problem}); sweep into another "
                              "--dir") from None
        old_settings, old_seeds = list(old["settings"]), list(old["seeds"])
        dropped = [s["label"] for s in old_settings if s not in spec["settings"]]
        dropped += [f"seed {n}" for n in old_seeds if n not in spec["seeds"]]
        changes = [f"{what} {json.dumps(was)} -> {json.dumps(now)}" for what, was, now in (
            ("target", old.get("target"), spec["target"]), ("common fields", old.get("common"), spec["common"]))
            if was != now]
        if changes := changes + ([f"this command leaves out {', '.join(dropped)}"] if dropped else []):
            raise ConfigError(f"--dir {path.parent} holds another sweep ({'; '.join(changes)}): repeat its command "
                              "(more --set values or --seeds extend it), or sweep into another --dir")
        spec = {**old, "seeds": sorted({*old_seeds, *spec["seeds"]}),
                "settings": old_settings + [s for s in spec["settings"] if s not in old_settings]}
        if (runs := len(spec["seeds"]) * len(spec["settings"])) > MAX_RUNS:
            raise ConfigError(f"--dir {path.parent}: extended by this command its sweep would hold {runs:,} runs, "
                              f"more than a sweep may ({MAX_RUNS:,}); sweep the new seeds or values into another --dir")
    atomic_write_text(path, json.dumps(spec, indent=2) + "\n")
    return spec


def folder_problem(label: Any) -> str | None:
    """Why a setting's label cannot be one folder name (SWEEP/runs/<label>/), or None."""
    if not isinstance(label, str) or label in ("", ".", "..") or "/" in label or "\0" in label:
        return f"the label {label!r:.60} is not a folder name"
    if len(label.encode()) > NAME_MAX:
        return f"its folder name is {len(label.encode()):,} bytes, more than a file name can be ({NAME_MAX})"
    return None


def spec_problem(data: Any) -> str | None:
    """What makes `data` (sweep.json's content) not a sweep deepq wrote, or None: its seeds must be seeds training
    takes, and each setting's label one folder name (a run's directory is SWEEP/runs/<label>/seed-<S>)."""
    if not isinstance(data, dict):
        return "it is not a JSON object"
    seeds, settings = data.get("seeds"), data.get("settings")
    if not isinstance(seeds, list) or not all(type(s) is int and 0 <= s <= MAX_SEED for s in seeds):
        return f'"seeds" must be a list of integers from 0 to {MAX_SEED:,}, not {json.dumps(seeds):.60}'
    if not isinstance(settings, list) or not all(isinstance(s, dict) for s in settings):
        return f'"settings" must be a list of objects, not {json.dumps(settings):.60}'
    if len(seeds) * len(settings) > MAX_RUNS:
        return f"its {len(seeds):,} seeds x {len(settings):,} settings are more runs than a sweep holds ({MAX_RUNS:,})"
    return next((p for s in settings if (p := folder_problem(s.get("label")))), None)
