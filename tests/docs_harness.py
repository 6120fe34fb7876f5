"""The machinery of tests/test_docs.py, which says what runs and the docs-test markers: the fenced code blocks
of README.md and docs/**/*.md, running a page's Python as one script, checking a `deepq` command line, tiny runs
for `runs/NAME-SEED-...` placeholders, and the API page's signature lines."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import io
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PYTHON = ("python", "py")
TINY = ["--total_steps", "200", "--learning_starts", "50", "--batch_size", "16", "--buffer_size", "200",
        "--eval_interval", "0", "--eval_episodes", "2", "--stop_at_return", "none", "--checkpoint_interval", "100",
        "--mcts_simulations", "4", "--mcts_episodes", "2", "--progress", "false", "--device", "cpu"]
PLACEHOLDER = re.compile(r"(?:\./)?runs/(?P<name>[\w.:/-]+?)-(?P<seed>\d+)-\.\.\.")
MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<what>.*?)\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*?)\s*$")


@dataclasses.dataclass(frozen=True)
class Block:
    page: str  # relative to the repository root
    line: int  # the page line of the block's first code line
    language: str
    code: str  # dedented by the fence's indentation
    marker: str = ""  # '', 'slow', 'skip' or 'signature'
    reason: str = ""  # for 'skip'

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def parse(text: str, page: str) -> tuple[list[Block], list[str]]:
    """The page's fenced code blocks, and the problems with its docs-test markers."""
    lines, blocks, problems = text.splitlines(), [], []
    marker: tuple[str, str, int] | None = None  # (kind, reason, page line)
    i = 0
    while i < len(lines):
        m, f = MARKER.match(lines[i]), FENCE.match(lines[i])
        if m:
            kind, _, reason = m.group("what").partition(":")
            kind, reason = kind.strip(), reason.strip()
            if kind not in ("slow", "skip", "signature") or (kind == "skip") != bool(reason):
                problems.append(f"{page}:{i + 1}: {lines[i].strip()!r} is not a docs-test marker; use "
                                "<!-- docs-test: slow -->, <!-- docs-test: skip: REASON --> or "
                                "<!-- docs-test: signature -->")
            marker = (kind, reason, i + 1)
        elif f:
            indent, fence = f.group("indent"), f.group("fence")
            end = next((j for j in range(i + 1, len(lines))
                        if re.fullmatch(rf"[ \t]*{fence[0]}{{{len(fence)},}}\s*", lines[j])), len(lines))
            body = [ln[len(indent):] if ln.startswith(indent) else ln.lstrip() for ln in lines[i + 1:end]]
            language = (f.group("info").split() or [""])[0].strip("{}.").lower()
            kind, reason, _ = marker or ("", "", 0)
            blocks.append(Block(page, i + 2, language, "\n".join(body) + "\n", kind, reason))
            marker, i = None, end
        elif lines[i].strip() and marker is not None:
            problems.append(f"{page}:{marker[2]}: a docs-test marker must be followed by a code block "
                            f"(line {i + 1} is text)")
            marker = None
        i += 1
    if marker is not None:
        problems.append(f"{page}:{marker[2]}: a docs-test marker must be followed by a code block")
    return blocks, problems


def page_blocks(path: Path) -> list[Block]:
    return parse(path.read_text(), rel(path))[0]


ALL_BLOCKS = [b for p in pages() for b in page_blocks(p)]


# ---- python blocks ---------------------------------------------------------------------------------------------

def python_script(blocks: list[Block], slow: bool) -> str:
    """The page's runnable Python blocks as one script, each block on its own page lines (blank lines between)."""
    wanted = ("", "slow") if slow else ("",)
    lines: list[str] = []
    for b in blocks:
        if b.language in PYTHON and b.marker in wanted:
            lines += [""] * (b.line - 1 - len(lines)) + b.code.splitlines()
    return "\n".join(lines) + "\n"


def run_python_page(path: Path, tmp: Path, slow: bool = False,
                    timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    """Run the page's Python examples as one script with cwd a fresh directory under tmp; fail loudly."""
    page = rel(path)
    script = tmp / "script" / (path.name + ".py")  # the traceback names it: 'getting-started.md.py', line N
    cwd = tmp / "cwd"
    script.parent.mkdir(parents=True)
    cwd.mkdir()
    script.write_text(python_script(page_blocks(path), slow))
    try:
        proc = subprocess.run([sys.executable, str(script)], cwd=cwd, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{page}: its Python examples did not finish in {timeout:.0f} s; mark a long one with "
                    "<!-- docs-test: slow --> or make it shorter", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(f"{page}: its Python examples failed (exit {proc.returncode}). They ran as one script, "
                    f"{script}, in {cwd}; the traceback's line numbers are the page's lines.\n"
                    f"--- stderr ---\n{proc.stderr[-4000:]}\n--- stdout ---\n{proc.stdout[-1500:]}", pytrace=False)
    return proc


def python_pages(slow: bool) -> list[Path]:
    kinds = ("slow",) if slow else ("",)
    return [p for p in pages() if any(b.language in PYTHON and b.marker in kinds for b in page_blocks(p))]



# ---- bash blocks: deepq command lines --------------------------------------------------------------------------

def deepq_lines(block: Block) -> list[tuple[int, list[str]]]:
    """Each `deepq ...` command of a bash block, as (page line, argv without 'deepq'); `\\` continues a line,
    `# ...` is a comment, and a pipe, redirection or `&&` ends the command."""
    out, start, pending = [], 0, ""
    for n, raw in enumerate(block.code.splitlines()):
        if not pending:
            start = block.line + n
        pending += raw.rstrip("\\") + " " if raw.rstrip().endswith("\\") else raw
        if raw.rstrip().endswith("\\"):
            continue
        lexer = shlex.shlex(pending.strip().removeprefix("$ "), posix=True, punctuation_chars=True)
        lexer.whitespace_split, pending = True, ""
        words = list(lexer)
        cut = next((k for k, w in enumerate(words) if w and set(w) <= set("|&;<>")), len(words))  # ( ) stay
        words = words[:cut]
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):  # VAR=value deepq ...
            words = words[1:]
        if words and Path(words[0]).name == "deepq":
            out.append((start, words[1:]))
    return out


def bash_checks(slow: bool) -> list[tuple[Block, int, list[str]]]:
    return [(b, n, argv) for b in ALL_BLOCKS if b.language in ("bash", "sh", "shell") and b.marker != "skip"
            and (b.marker == "slow" or not slow) for n, argv in deepq_lines(b)]


class TinyRuns:
    """Run directories for `runs/NAME-SEED-...` placeholders: `deepq train NAME --seed SEED` with TINY settings."""

    def __init__(self, root: Path) -> None:
        self.root, self.made = root, dict[tuple[str, str], Path]()

    def get(self, name: str, seed: str) -> Path:
        if (name, seed) not in self.made:
            import deepq
            from deepq.cli import config_from_args, parse_args

            run_dir = self.root / f"{name.replace('/', '-')}-{seed}-tiny"
            cfg, _, _ = config_from_args(parse_args(["train", name, "--seed", seed, "--run_dir", str(run_dir), *TINY]))
            deepq.train(cfg)
            self.made[(name, seed)] = run_dir
        return self.made[(name, seed)]


def resolve(argv: list[str], runs: TinyRuns | None, where: str) -> list[str]:
    """argv with each `runs/NAME-SEED-...` replaced: by a tiny run's directory, or (runs=None) a made-up path."""
    def real(m: re.Match[str]) -> str:
        return str(runs.get(m["name"], m["seed"]) if runs else Path("runs") / f"{m['name']}-{m['seed']}-0")

    out = [PLACEHOLDER.sub(real, word) for word in argv]
    for word in out:
        if "..." in word:
            pytest.fail(f"{where}: `{word}` is not a placeholder the docs tests understand; write a run directory "
                        "as runs/<preset>-<seed>-... (e.g. runs/cartpole-3-...), or move a synopsis with "
                        "placeholders to a ```text block", pytrace=False)
    return out


def check_deepq(argv: list[str], where: str, runs: TinyRuns | None, run_train: Path | None = None) -> None:
    """Check one documented `deepq` command (argv without 'deepq'), failing with the page line and the reason.
    `run_train`: a directory to also run a train command in, for real, capped at 0.05 minutes."""
    from deepq.cli import config_from_args, main, parse_args
    from deepq.errors import DeepQError
    from deepq.training.setup import check

    command = "deepq " + " ".join(argv)
    if any(set(w) <= set("()") for w in argv):
        pytest.fail(f"{where}: `{command}` has an unquoted ( or ), which the shell refuses (syntax error); quote "
                    "that argument, e.g. 'openspiel:breakthrough(rows=6,columns=6)'", pytrace=False)
    needs_run = argv[:1] == ["eval"] or (argv[:1] == ["train"] and "--resume" in argv)
    argv = resolve(argv, runs if needs_run else None, where)
    err, out = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            args = parse_args(argv)  # --help exits here (0)
            assert "--help" not in argv and "-h" not in argv, "--help did not exit"
            if args.command == "train":
                cfg, _, _ = config_from_args(args)
                check(cfg)  # Config.validate and the env kind's checks, as train() runs them
            elif args.command in ("eval", "presets"):
                assert main(argv) == 0, "exit code not 0"
    except SystemExit as e:
        if e.code == 0 and ("--help" in argv or "-h" in argv):
            return
        pytest.fail(f"{where}: `{command}` is refused (exit {e.code}): {err.getvalue().strip()}", pytrace=False)
    except (DeepQError, AssertionError) as e:
        pytest.fail(f"{where}: `{command}` fails: {e}\n{err.getvalue()[-2000:]}", pytrace=False)
    if run_train is not None and argv[:1] == ["train"]:
        if "--resume" in argv:  # resume a copy: the tiny run is shared
            k = argv.index("--resume") + 1
            argv[k] = str(shutil.copytree(argv[k], run_train / "resumed"))
        proc = subprocess.run([sys.executable, "-m", "deepq.cli", *argv, "--max_minutes", "0.05"], cwd=run_train,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"{where}: `{command}` exited {proc.returncode}:\n{proc.stderr[-3000:]}"


# ---- the API page's signature lines ---------------------------------------------------------------------------

def _resolve_name(dotted: str) -> Any:
    """deepq.train is the function (an attribute wins over the submodule of the same name); deepq.errors.X
    imports deepq.errors when it is not an attribute yet."""
    first, *rest = dotted.split(".")
    obj, path = importlib.import_module(first), first
    for part in rest:
        path += "." + part
        obj = getattr(obj, part) if hasattr(obj, part) else importlib.import_module(path)
    return obj


def _plain(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


class _Raw:
    """An annotation string that prints without quotes (deepq's modules use `from __future__ import annotations`,
    so inspect sees 'str | None')."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _shown(sig: inspect.Signature) -> str:
    def raw(a: Any) -> Any:
        return _Raw(a) if isinstance(a, str) else a

    return str(sig.replace(parameters=[p.replace(annotation=raw(p.annotation)) for p in sig.parameters.values()],
                           return_annotation=raw(sig.return_annotation)))


def _annotation_of(module: Any, value: Any, name: str) -> str:
    """A module attribute's annotation, from the module that defines it (deepq.PRESETS: deepq.presets)."""
    for mod in [m for k, m in list(sys.modules.items()) if k == module.__name__ or k.startswith(module.__name__ + ".")]:
        if vars(mod).get(name) is value and name in inspect.get_annotations(mod):
            return str(inspect.get_annotations(mod)[name])
    return ""


def check_signature_line(line: str) -> str:
    """'' when a signature line of the API page matches the code, else what the code says."""
    if m := re.fullmatch(r"class (?P<name>[\w.]+)(?:\((?P<bases>.*)\))?", line):
        obj = _resolve_name(m["name"])
        bases = ", ".join(b.__name__ for b in obj.__bases__ if b is not object)
        return "" if bases == (m["bases"] or "") else f"class {m['name']}" + (f"({bases})" if bases else "")
    if m := re.fullmatch(r"(?P<name>[\w.]+)(?P<sig>\(.*\)(?: -> .+)?)", line):
        obj = _resolve_name(m["name"])
        sig = inspect.signature(obj)
        if inspect.isfunction(obj) and "." in obj.__qualname__ and next(iter(sig.parameters), "") == "self":
            sig = sig.replace(parameters=list(sig.parameters.values())[1:])  # a method: without self
        if inspect.isclass(obj):
            sig = sig.replace(return_annotation=inspect.Signature.empty)
        return "" if _plain(_shown(sig)) == _plain(m["sig"]) else f"{m['name']}{_plain(_shown(sig))}"
    if m := re.fullmatch(r"(?P<owner>[\w.]+)\.(?P<attr>\w+): (?P<type>.+)", line):
        owner = _resolve_name(m["owner"])
        # a module's names may be imported on first use (deepq's, PEP 562): getattr, not getattr_static, for those
        value = (getattr(owner, m["attr"], None) if inspect.ismodule(owner)
                 else inspect.getattr_static(owner, m["attr"], None))
        if isinstance(value, property):
            actual = str(inspect.signature(value.fget).return_annotation) if value.fget else ""
        elif inspect.isclass(owner):  # a dataclass field, or another annotated class attribute
            actual = next((str(inspect.get_annotations(c)[m["attr"]]) for c in owner.__mro__
                           if m["attr"] in inspect.get_annotations(c)), "(not an attribute)")
        else:
            actual = _annotation_of(owner, value, m["attr"])
        return "" if _plain(actual) == _plain(m["type"]) else f"{m['owner']}.{m['attr']}: {actual}"
    return "(not a signature line: write `class NAME(BASES)`, `NAME(PARAMS) -> RETURN` or `OWNER.ATTR: TYPE`)"


def mkdocs_config() -> dict[str, Any]:
    import yaml  # mkdocs' dependency

    return dict(yaml.safe_load((ROOT / "mkdocs.yml").read_text()))


def nav_pages(config: dict[str, Any]) -> list[str]:
    def walk(item: Any) -> list[str]:
        if isinstance(item, str):
            return [item]
        if isinstance(item, dict):
            return [p for v in item.values() for p in walk(v)]
        return [p for v in item for p in walk(v)]

    return walk(config.get("nav", []))
