"""The package's shape: its modules import each other in one direction, down the layers, with no cycle; every
module has a layer; no module is over 400 lines.

The graph is read from the source with `ast`, not by importing: each module's own import statements (at the
top, inside functions, under `if TYPE_CHECKING:`), absolute (`deepq.x`) and relative (`.x`, `..x`). Python
runs every parent package's __init__ when it imports `deepq.core.agent`; that is not a source dependency of
the importing module, so it is not an edge here. `from deepq.core import agent` is an edge to the module
deepq.core.agent; `from deepq.core import Thing` (a name, not a module) is an edge to the package deepq.core.
The checker itself is tested below on small packages written to a temporary directory.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "deepq"
MAX_LINES = 400

# Lowest first. A module may import modules of its own layer or lower ones, never a higher one.
# "deepq.core" stands for the package and everything under it; a top-level module is named one by one, so a new
# top-level file has no layer until someone places it (test_every_module_has_a_layer).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("deepq.errors", "deepq.signals", "deepq.config_checks", "deepq.files")),
    ("core", ("deepq.core.*",)),  # the pieces, each with its own small config: never the flat Config
    # the user's single surface, above the core it configures; cli_args (Config fields as command-line values) is
    # the vocabulary every command parses with: train's and the research tools' (deepq/research)
    ("config", ("deepq.config", "deepq.presets", "deepq.cli_args")),
    # the core's pieces assembled from a Config: each one's small config, the Agent, what a run's memory needs,
    # the Agent's network exported (ONNX), the observations the Agent takes and their encoding
    ("agent", ("deepq.components", "deepq.agent", "deepq.memory", "deepq.export", "deepq.observations")),
    ("envs", ("deepq.envs.*",)),
    ("games", ("deepq.games.*",)),
    ("run side channels", ("deepq.run.*",)),  # run dir, log, progress, plot: they never import the loop
    ("training", ("deepq.training.*",)),
    ("research", ("deepq.research.*",)),  # sweep, compare, tune: they run and read training runs
    ("api", ("deepq", "deepq.cli", "deepq.cli_reference")),  # deepq/__init__ is the public API
)


class Module(NamedTuple):
    path: str  # as printed in messages: relative to the directory above the package
    text: str
    is_package: bool  # an __init__.py


class Edge(NamedTuple):
    src: str
    dst: str
    where: str  # "deepq/config.py:17"


def read_package(package_dir: Path) -> dict[str, Module]:
    """Every module under package_dir by dotted name ('deepq.core.agent'; 'deepq.core' for its __init__)."""
    root = package_dir.parent
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        out[name] = Module(str(path.relative_to(root)), path.read_text(encoding="utf-8"), is_package)
    return out


def layer_of(name: str) -> int | None:
    for i, (_, patterns) in enumerate(LAYERS):
        for pattern in patterns:
            if name == pattern or (pattern.endswith(".*") and (name == pattern[:-2]
                                                                 or name.startswith(pattern[:-1]))):
                return i
    return None


def _resolve(name: str, modules: Mapping[str, Module]) -> str | None:
    """The module an imported dotted name lives in: itself, else its longest prefix that is a module;
    None outside the package."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports(modules: Mapping[str, Module]) -> list[Edge]:
    """Every import of one package module by another, from the source."""
    edges = []
    for src, mod in modules.items():
        package = src if mod.is_package else src.rpartition(".")[0]  # what `from . import x` means here
        for node in ast.walk(ast.parse(mod.text, mod.path)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                # one edge per statement and module (`from x import a, b` is one edge to x)
                found = {dst for name in _imported_names(node, package, modules)
                         if (dst := _resolve(name, modules)) is not None and dst != src}
                edges += [Edge(src, dst, f"{mod.path}:{node.lineno}") for dst in sorted(found)]
    return edges


def _imported_names(node: ast.Import | ast.ImportFrom, package: str, modules: Mapping[str, Module]) -> list[str]:
    """The dotted names one import statement brings in, made absolute."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:  # relative: level 1 is this package, 2 its parent, ...
        base = package.split(".")
        stem = ".".join(base[:len(base) - (node.level - 1)] + ([node.module] if node.module else []))
    else:
        stem = node.module or ""
    # `from stem import x`: the submodule stem.x when there is one, else a name defined in stem
    return [f"{stem}.{a.name}" if f"{stem}.{a.name}" in modules else stem for a in node.names]


class Cycle(NamedTuple):
    members: list[str]  # a strongly connected component: modules that all reach each other by imports
    path: list[Edge]  # one shortest cycle through its first member, edge by edge


def cycles(edges: Iterable[Edge]) -> list[Cycle]:
    """One cycle per strongly connected component with more than one module."""
    graph: dict[str, dict[str, Edge]] = {}
    for e in edges:
        graph.setdefault(e.src, {}).setdefault(e.dst, e)  # the first statement that makes the edge
        graph.setdefault(e.dst, {})
    # Tarjan's strongly connected components, iteratively (no recursion limit on a deep package)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.append(top)
                        if top == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return [Cycle(c, _shortest_cycle(c[0], set(c), graph)) for c in sorted(components)]


def _shortest_cycle(start: str, within: set[str], graph: Mapping[str, Mapping[str, Edge]]) -> list[Edge]:
    """A shortest path start -> ... -> start inside one strongly connected component (breadth first)."""
    came_from: dict[str, Edge] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child not in within or child in came_from:
                    continue
                came_from[child] = graph[node][child]
                if child == start:
                    path = [came_from[start]]
                    while path[-1].src != start:
                        path.append(came_from[path[-1].src])
                    return path[::-1]
                following.append(child)
        frontier = following
    raise AssertionError(f"{start} is in a strongly connected component but on no cycle")


def upward(edges: Iterable[Edge]) -> list[str]:
    """Each import from a lower layer into a higher one, as a line naming both modules, layers and the place."""
    out = []
    for e in edges:
        lo, hi = layer_of(e.src), layer_of(e.dst)
        if lo is not None and hi is not None and lo < hi:
            out.append(f"{e.where}: {e.src} (layer {lo} {LAYERS[lo][0]}) imports {e.dst} (layer {hi} {LAYERS[hi][0]})")
    return sorted(set(out))


def unplaced(modules: Mapping[str, Module]) -> list[str]:
    return sorted(name for name in modules if layer_of(name) is None)


def too_long(modules: Mapping[str, Module]) -> list[str]:
    """'path (lines)' of each module over MAX_LINES, longest first."""
    counts = sorted(((len(m.text.splitlines()), m.path) for m in modules.values()), reverse=True)
    return [f"{path} ({n})" for n, path in counts if n > MAX_LINES]


def describe(cycle: Cycle) -> str:
    path = cycle.path
    text = " -> ".join([path[0].src, *(e.dst for e in path)])
    text += f"  ({'; '.join(f'{e.where} imports {e.dst}' for e in path)})"
    if len(cycle.members) > len(path):  # cutting this cycle may leave others among the same modules
        text += f"; the loop spans {len(cycle.members)} modules: {', '.join(cycle.members)}"
    return text


# ---- the package ----------------------------------------------------------------------------------------
MODULES = read_package(PACKAGE_DIR)
EDGES = imports(MODULES)


def test_no_import_cycles() -> None:
    found = [describe(c) for c in cycles(EDGES)]
    assert not found, f"{len(found)} import cycle(s); cut one edge of each:\n" + "\n".join(found)


def test_no_upward_imports() -> None:
    found = upward(EDGES)
    layers = ", ".join(f"{i} {name}" for i, (name, _) in enumerate(LAYERS))
    assert not found, (f"{len(found)} import(s) from a lower layer into a higher one (layers: {layers}):\n"
                       + "\n".join(found))


def test_every_module_has_a_layer() -> None:
    found = unplaced(MODULES)
    assert not found, (f"modules with no layer: {', '.join(found)}; place each in LAYERS in "
                       "tests/test_architecture.py, on purpose")


def test_no_module_over_400_lines() -> None:
    found = too_long(MODULES)
    assert not found, f"modules over {MAX_LINES} lines: " + ", ".join(found)


def test_the_package_is_read() -> None:
    """Guards the tests above against passing on nothing: the walk finds the package and its imports."""
    assert {"deepq", "deepq.config", "deepq.agent", "deepq.core.learner", "deepq.training.loop"} <= set(MODULES)
    assert {("deepq", "deepq.training.loop"), ("deepq.core.learner", "deepq.core.losses")} <= pairs(EDGES)


# ---- the checker, on small packages written to a temporary directory -----------------------------------
def write_package(tmp_path: Path, files: Mapping[str, str]) -> dict[str, Module]:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return read_package(tmp_path / "deepq")


def pairs(edges: Iterable[Edge]) -> set[tuple[str, str]]:
    return {(e.src, e.dst) for e in edges}


def test_checker_resolves_absolute_relative_and_package_imports(tmp_path: Path) -> None:
    modules = write_package(tmp_path, {
        "deepq/__init__.py": "from deepq.training.loop import train\nfrom deepq import config\n",
        "deepq/config.py": "import os\nimport deepq.errors\n",
        "deepq/errors.py": "",
        "deepq/core/__init__.py": "THING = 1\n",
        "deepq/core/agent.py": ("from . import losses\nfrom .losses import td\nfrom ..errors import E\n"
                                "from deepq.core import THING\nimport deepq.core.losses as L\n"),
        "deepq/core/losses.py": "def f():\n    from deepq.errors import E  # inside a function\n",
        "deepq/training/__init__.py": "",
        "deepq/training/loop.py": "from ..core import agent\nfrom deepq.core.agent import Agent\n",
    })
    assert pairs(imports(modules)) == {
        ("deepq", "deepq.training.loop"), ("deepq", "deepq.config"), ("deepq.config", "deepq.errors"),
        ("deepq.core.agent", "deepq.core.losses"), ("deepq.core.agent", "deepq.errors"),
        ("deepq.core.agent", "deepq.core"), ("deepq.core.losses", "deepq.errors"),
        ("deepq.training.loop", "deepq.core.agent")}
    assert cycles(imports(modules)) == [] and upward(imports(modules)) == []


def test_checker_finds_a_planted_cycle_and_names_its_path(tmp_path: Path) -> None:
    modules = write_package(tmp_path, {
        "deepq/__init__.py": "",
        "deepq/core/__init__.py": "",
        "deepq/core/a.py": "from deepq.core.b import x\n",
        "deepq/core/b.py": "def f():\n    from . import c\n",
        "deepq/core/c.py": "import deepq.core.a\n",
        "deepq/core/d.py": "from deepq.core import a\n",  # into the cycle, not on it
    })
    found = cycles(imports(modules))
    assert [describe(c) for c in found] == [
        "deepq.core.a -> deepq.core.b -> deepq.core.c -> deepq.core.a  (deepq/core/a.py:1 imports deepq.core.b; "
        "deepq/core/b.py:2 imports deepq.core.c; deepq/core/c.py:1 imports deepq.core.a)"]


def test_checker_finds_a_cycle_through_a_package_init(tmp_path: Path) -> None:
    modules = write_package(tmp_path, {
        "deepq/__init__.py": "",
        "deepq/games/__init__.py": "from deepq.games.bot import as_bot\nNAME = 1\n",
        "deepq/games/bot.py": "from deepq.games import NAME\n",  # a name of the package: its __init__
    })
    assert [describe(c).split("  ")[0] for c in cycles(imports(modules))] == [
        "deepq.games -> deepq.games.bot -> deepq.games"]


def test_checker_finds_a_planted_upward_import(tmp_path: Path) -> None:
    modules = write_package(tmp_path, {
        "deepq/__init__.py": "from deepq.training.loop import train\n",  # the top imports down: fine
        "deepq/config.py": "",
        "deepq/core/__init__.py": "",
        "deepq/core/replay.py": "import numpy\nfrom deepq.config import Config\n",  # up: the core gets small configs
        "deepq/core/agent.py": "def f():\n    from ..run.log import RunLog\n",  # up, inside a function
        "deepq/agent.py": "from deepq.config import Config\nfrom deepq.core import replay\n",  # down: fine
        "deepq/run/__init__.py": "",
        "deepq/run/log.py": "from deepq.training import loop\n",  # up: the side channel imports the loop
        "deepq/training/__init__.py": "",
        "deepq/training/loop.py": "from deepq.run.log import RunLog\n",
    })
    assert upward(imports(modules)) == [
        "deepq/core/agent.py:2: deepq.core.agent (layer 1 core) imports deepq.run.log (layer 6 run side channels)",
        "deepq/core/replay.py:2: deepq.core.replay (layer 1 core) imports deepq.config (layer 2 config)",
        "deepq/run/log.py:1: deepq.run.log (layer 6 run side channels) imports deepq.training.loop (layer 7 "
        "training)"]
    assert [describe(c).split("  ")[0] for c in cycles(imports(modules))] == [
        "deepq.run.log -> deepq.training.loop -> deepq.run.log"]


def test_checker_places_modules_in_layers() -> None:
    assert [layer_of(n) for n in ("deepq.errors", "deepq.core", "deepq.core.learner", "deepq.presets",
                                  "deepq.config", "deepq.agent", "deepq.envs.gym", "deepq.games", "deepq.run.log",
                                  "deepq.training.loop", "deepq.research.sweep", "deepq",
                                  "deepq.cli")] == [0, 1, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9, 9]
    assert layer_of("deepq.evaluate") is None  # a new top-level file has no layer until placed
    assert layer_of("deepq.corex") is None and layer_of("deepq.extras.thing") is None


def test_checker_flags_unplaced_and_long_modules(tmp_path: Path) -> None:
    modules = write_package(tmp_path, {
        "deepq/__init__.py": "", "deepq/config.py": "x = 1\n" * MAX_LINES,
        "deepq/evaluate.py": "x = 1\n" * (MAX_LINES + 1), "deepq/extras/__init__.py": "",
    })
    assert unplaced(modules) == ["deepq.evaluate", "deepq.extras"]
    assert too_long(modules) == [f"deepq/evaluate.py ({MAX_LINES + 1})"]
