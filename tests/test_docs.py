"""The docs run as written: every code example in README.md and docs/**/*.md, the references and the site build.

What runs, by the fence's language:

- ```python (or ```py): all Python blocks of one page run in order as one script, in a subprocess whose cwd is a
  fresh temp directory, and must exit 0. The script keeps each block on its page line, so a traceback's line
  numbers are the page's own.
- ```bash: each line starting with `deepq ` is checked. `deepq train ...` must build a valid Config (parsed
  as the command line parses it, then Config.validate; nothing is trained); `deepq ... --help` exits 0;
  `deepq presets` runs; `deepq play ...` parses; `deepq eval ...` runs for real. A path such as
  `runs/cartpole-3-...` (a name, a seed, then `...`) stands for a run directory: it is replaced by a tiny run of
  that preset or env id with that seed, made once per session (eval and --resume use it; play only parses).
  Any other `...` in a deepq line fails. Other lines (`make`, `pip`, `python benchmarks/...`, `tensorboard`,
  `cd`, ...) are shown, never run.
- ```console, ```text and anything else: shown, not run.

Markers: an HTML comment on the line before a fence (blank lines between are fine), invisible on the site:

    <!-- docs-test: slow -->            python: the block runs only under `pytest -m slow` (make test-slow), in
                                        order with the page's other blocks; bash: its train lines also run
                                        for real, capped with --max_minutes 0.05 appended.
    <!-- docs-test: skip: REASON -->    never run or checked (e.g. needs a GPU); listed as a skip with REASON.
    <!-- docs-test: signature -->       API signatures (docs/reference/api.md): not run; each line must match
                                        the named object (see test_api_signatures_match_the_code).

A marker that is none of these, or that no code block follows, fails test_markers_are_valid.

The references: docs/reference/cli.md must equal `python -m deepq.cli_reference` (make docs-reference
regenerates it). The site: `mkdocs build --strict` into a temp dir, so a broken link or anchor, a page missing
from mkdocs.yml's nav, or a nav entry with no page fails the suite.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from docs_harness import (
    ALL_BLOCKS,
    DOCS,
    PYTHON,
    ROOT,
    Block,
    TinyRuns,
    bash_checks,
    check_deepq,
    check_signature_line,
    deepq_lines,
    mkdocs_config,
    nav_pages,
    page_blocks,
    pages,
    parse,
    python_pages,
    python_script,
    rel,
    run_python_page,
)


@pytest.fixture(scope="session")
def page_runs() -> dict[Path, tuple[subprocess.CompletedProcess[str], Path]]:
    return {}  # each page's default run, shared by the tests that look at what it left behind


def _default_run(path: Path, cache: dict[Path, Any], tmp: pytest.TempPathFactory) -> tuple[Any, Path]:
    if path not in cache:
        base = tmp.mktemp(path.stem)
        cache[path] = (run_python_page(path, base), base / "cwd")
    return cache[path]


@pytest.mark.parametrize("path", python_pages(slow=False), ids=rel)
def test_python_examples_run(path: Path, page_runs: dict[Path, Any],
                             tmp_path_factory: pytest.TempPathFactory) -> None:
    _default_run(path, page_runs, tmp_path_factory)


@pytest.mark.slow
@pytest.mark.parametrize("path", python_pages(slow=True), ids=rel)
def test_python_examples_run_with_the_slow_ones(path: Path, tmp_path: Path) -> None:
    run_python_page(path, tmp_path, slow=True, timeout=3600)


def test_the_readme_quickstart_does_what_it_says(page_runs: dict[Path, Any],
                                                tmp_path_factory: pytest.TempPathFactory) -> None:
    """The README's runnable Python trains (a run directory with agent.pt), prints an evaluation (`mean ...`),
    and writes every file it saves with agent.save(...)."""
    readme = ROOT / "README.md"
    code = python_script(page_blocks(readme), slow=False)
    if "deepq.train(" not in code:
        pytest.skip("the README's runnable Python does not train")
    proc, cwd = _default_run(readme, page_runs, tmp_path_factory)
    assert list(cwd.glob("runs/*/agent.pt")), f"no runs/*/agent.pt under {cwd}"
    if "deepq.evaluate(" in code and "print(" in code:
        assert "mean " in proc.stdout, proc.stdout[-2000:]
    for saved in re.findall(r"\.save\(\s*['\"]([^'\"]+)['\"]", code):
        assert (cwd / saved).is_file(), f"the README saves {saved}, but it is not in {cwd}"


# ---- bash blocks: deepq command lines --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> TinyRuns:
    return TinyRuns(tmp_path_factory.mktemp("tiny-runs"))


@pytest.mark.parametrize(("block", "line", "argv"), bash_checks(slow=False),
                         ids=[f"{b.page}:{n} deepq {' '.join(a)}"[:90] for b, n, a in bash_checks(slow=False)])
def test_deepq_commands_are_accepted(block: Block, line: int, argv: list[str], tiny_runs: TinyRuns) -> None:
    check_deepq(argv, f"{block.page}:{line}", tiny_runs)


@pytest.mark.slow
@pytest.mark.parametrize(("block", "line", "argv"), bash_checks(slow=True),
                         ids=[f"{b.page}:{n} deepq {' '.join(a)}"[:90] for b, n, a in bash_checks(slow=True)])
def test_slow_deepq_commands_run(block: Block, line: int, argv: list[str], tiny_runs: TinyRuns,
                                 tmp_path: Path) -> None:
    check_deepq(argv, f"{block.page}:{line}", tiny_runs, run_train=tmp_path)


# ---- markers and skips -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", pages(), ids=rel)
def test_markers_are_valid(path: Path) -> None:
    problems = parse(path.read_text(), rel(path))[1]
    assert not problems, "\n".join(problems)


SKIPPED = [pytest.param(b, id=b.where) for b in ALL_BLOCKS if b.marker == "skip"] or [pytest.param(None, id="none")]


@pytest.mark.parametrize("block", SKIPPED)
def test_skipped_example(block: Block | None) -> None:
    """Each `<!-- docs-test: skip: REASON -->` block shows up as a skip with its reason (pytest -rs)."""
    if block is not None:
        pytest.skip(f"{block.where} ({block.language}): {block.reason}")


def test_the_harness_finds_the_examples() -> None:
    """The collection itself works: the README has runnable Python and deepq commands."""
    readme = [b for b in ALL_BLOCKS if b.page == "README.md"]
    assert any(b.language in PYTHON for b in readme), "README.md: no ```python block found"
    assert any(deepq_lines(b) for b in readme if b.language == "bash"), "README.md: no `deepq` line found"


def test_the_harness_fails_on_broken_examples(tmp_path: Path, tiny_runs: TinyRuns) -> None:
    """A page whose Python errors fails, naming the page line of the error; so do refused commands and bad
    markers. Slow and skipped blocks stay out of the default script."""
    page = tmp_path / "broken.md"
    page.write_text("# A broken page\n\n```python\nx = 1\n```\n\n<!-- docs-test: slow -->\n```python\n"
                    "raise SystemExit('slow block ran')\n```\n\n<!-- docs-test: skip: needs a GPU -->\n```python\n"
                    "raise SystemExit('skipped block ran')\n```\n\nText.\n\n```python\nprint(x)\n1 / 0\n```\n")
    assert "slow block" not in python_script(page_blocks(page), slow=False)
    with pytest.raises(pytest.fail.Exception, match=r"(?s)broken.md: its Python examples failed.*line 21\b.*"
                                                    r"ZeroDivisionError"):
        run_python_page(page, tmp_path / "a")
    with pytest.raises(pytest.fail.Exception, match="slow block ran"):
        run_python_page(page, tmp_path / "b", slow=True)
    for argv, why in ((["train", "cartpole", "--learning_rate", "1e-3"], "did you mean --lr"),
                      (["train", "cartpole", "--gamma", "2"], "gamma"),
                      (["trian", "cartpole"], "did you mean 'train'"),
                      (["eval", "runs/cartpole-0-.../nothing.pt"], "nothing.pt"),
                      (["train", "...", "--seed", "3"], "not a placeholder"),
                      (["train", "openspiel:breakthrough", "(", "rows=6", ")"], "unquoted")):
        with pytest.raises(pytest.fail.Exception, match=why):
            check_deepq(argv, "broken.md:1", tiny_runs)
    assert check_signature_line("deepq.train(cfg: Config, resume: str | Path | None = None, overwrite: bool = False, "
                                "on_evaluation: Callable[[int, EvalResult], bool | None] | None = None) -> Agent"
                                ) == ""
    for wrong in ("deepq.train(cfg: Config) -> Agent", "class deepq.errors.ConfigError(DeepQError)",
                  "deepq.EvalResult.mean: int", "deepq.EvalResult.returns: list[int]", "deepq.PRESETS: list[str]"):
        assert check_signature_line(wrong), wrong
    commands = deepq_lines(parse("```bash\n$ deepq train cartpole \\\n  --seed 3  # a comment\nmake docs\n"
                                 "deepq presets | head -3\nX=1 deepq train 'openspiel:go(board_size=9)'\n```\n",
                                 "x.md")[0][0])
    assert commands == [(2, ["train", "cartpole", "--seed", "3"]), (5, ["presets"]),
                        (6, ["train", "openspiel:go(board_size=9)"])], commands
    bad = parse("<!-- docs-test: slo -->\n```python\n```\n<!-- docs-test: skip -->\n```bash\n```\n"
                "<!-- docs-test: slow -->\ntext\n", "x.md")[1]
    assert len(bad) == 3 and "x.md:1" in bad[0] and "x.md:4" in bad[1] and "x.md:7" in bad[2], bad


# ---- references and the site -----------------------------------------------------------------------------------

def test_cli_reference_is_current() -> None:
    from deepq.cli_reference import COMMAND, render

    page = DOCS / "reference" / "cli.md"
    want = render()
    have = page.read_text() if page.exists() else ""
    diff = "".join(list(difflib.unified_diff(have.splitlines(True), want.splitlines(True), "committed",
                                             "generated"))[:60])
    assert have == want, f"docs/reference/cli.md is not what the command line says now; regenerate it with\n" \
                         f"    {COMMAND}\n(or `make docs-reference`).\n{diff}"


API_CONTRACT = [
    "deepq.Config", "deepq.Config.validate", "deepq.Config.replace", "deepq.preset", "deepq.PRESETS",
    "deepq.train", "deepq.Agent", "deepq.Agent.act", "deepq.Agent.q_values", "deepq.Agent.save", "deepq.load",
    "deepq.evaluate", "deepq.EvalResult", "deepq.EvalResult.mean", "deepq.EvalResult.std",
    "deepq.EvalResult.returns", "deepq.EvalResult.lengths", "deepq.EvalResult.protocol", "deepq.EvalResult.seats",
    *(f"deepq.errors.{e}" for e in ("DeepQError", "ConfigError", "CheckpointError", "NonFiniteLossError",
                                    "EnvError", "RunDirError", "DiskFullError", "DistributedError", "RunInterrupted")),
    "deepq.games.as_bot",
]


def test_api_signatures_match_the_code() -> None:
    """Each line of the API page's `<!-- docs-test: signature -->` blocks matches inspect.signature (or the class's
    bases, or the attribute's annotation); the public contract (DESIGN.md) and deepq.__all__ are all on it."""
    import deepq

    page = DOCS / "reference" / "api.md"
    blocks = [b for b in page_blocks(page) if b.marker == "signature"]
    wrong, documented = [], set()
    for b in blocks:
        lines, start = b.code.splitlines(), 0
        for n in range(len(lines)):  # a signature may go on over lines until its parentheses close
            text = " ".join(lines[start:n + 1])
            if text.count("(") > text.count(")"):
                continue
            line, first, start = text, start, n + 1
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name = re.match(r"(?:class )?([\w.]+)", line.strip())
            documented.add(name.group(1) if name else "")
            try:
                actual = check_signature_line(line.strip())
            except (AttributeError, LookupError, ImportError) as e:
                actual = f"(no such object: {e})"
            if actual:
                wrong.append(f"docs/reference/api.md:{b.line + first}: the page says\n    {line.strip()}\n"
                             f"  the code says\n    {actual}")
    assert not wrong, "\n".join(wrong)
    wanted = API_CONTRACT + [f"deepq.{n}" for n in deepq.__all__ if f"deepq.errors.{n}" not in API_CONTRACT]
    missing = [n for n in wanted if n not in documented]
    assert not missing, f"docs/reference/api.md has no signature line for {missing}"


def test_every_page_is_in_the_nav_and_every_nav_entry_exists() -> None:
    listed = set(nav_pages(mkdocs_config()))
    present = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    missing, unlisted = sorted(listed - present), sorted(present - listed)
    assert not missing, f"mkdocs.yml's nav lists pages that do not exist (yet): {', '.join(missing)}; write them " \
                        "under docs/ or take them out of nav"
    assert not unlisted, f"pages under docs/ that mkdocs.yml's nav does not list: {', '.join(unlisted)}"


def test_the_site_builds_strict(tmp_path: Path) -> None:
    """`mkdocs build --strict`: a broken link or anchor, a missing page, a page left out of nav all fail."""
    try:
        import material  # noqa: F401
        import mkdocs  # noqa: F401
    except ImportError:
        pytest.fail("mkdocs-material is not installed: pip install -e '.[docs]' (make installs it)", pytrace=False)
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    problems = [ln for ln in proc.stderr.splitlines() if ln.startswith(("WARNING", "ERROR"))]
    missing = [p for p in nav_pages(mkdocs_config()) if not (DOCS / p).is_file()]
    why = f"(pages in nav not written yet: {', '.join(missing)})\n" if missing else ""
    assert proc.returncode == 0, f"mkdocs build --strict failed {why}" + "\n".join(problems or [proc.stderr[-3000:]])
    assert (tmp_path / "site" / "index.html").is_file()


def test_readme_links_resolve() -> None:
    """The README's relative links point at files in the repository (mkdocs does not check README.md)."""
    text = (ROOT / "README.md").read_text()
    broken = [target for target in re.findall(r"\]\(([^)\s]+)\)", text)
              if not re.match(r"[a-z]+:|#", target) and not (ROOT / target.split("#")[0]).exists()]
    assert not broken, f"README.md links to files that do not exist: {broken}"
